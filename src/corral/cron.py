"""Cron schedules as Kubernetes reads them (the standard five-field syntax).

Fields: minute hour day-of-month month day-of-week, each ``*``, ``?``, a
number or name, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n``, or a
comma list of those; plus the descriptors @yearly, @annually, @monthly,
@weekly, @daily, @midnight and @hourly. As in the cron library Kubernetes
uses, when both day fields are restricted a day matches if either does, and
when one is ``*`` both must.

Times are computed in the schedule's time zone (``spec.timeZone``, through
zoneinfo) and returned in UTC. No I/O: pure functions over datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (name, low, high, names)
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_SEARCH_YEARS = 5


class CronError(ValueError):
    """A schedule that does not parse; the message says which field and why."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_star: bool
    weekday_star: bool
    zone: tzinfo

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = ((t.weekday() + 1) % 7) in self.weekdays  # Python Monday=0, cron Sunday=0
        if self.day_star or self.weekday_star:
            return dom and dow
        return dom or dow

    def next_after(self, after: datetime) -> datetime | None:
        """The first scheduled time strictly after ``after`` (UTC), or None
        if none falls within five years (e.g. 30 February)."""
        local = after.astimezone(self.zone).replace(tzinfo=None, second=0, microsecond=0)
        t = local + timedelta(minutes=1)
        limit = local.replace(year=local.year + _SEARCH_YEARS) if not (
            local.month == 2 and local.day == 29) else local + timedelta(days=365 * _SEARCH_YEARS)
        while t <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            aware = t.replace(tzinfo=self.zone)
            result = aware.astimezone(UTC)
            # A local time skipped by a DST jump does not exist: move on.
            if result.astimezone(self.zone).replace(tzinfo=None) != t:
                t += timedelta(minutes=1)
                continue
            if result > after:
                return result
            t += timedelta(minutes=1)
        return None

    def most_recent(self, start: datetime, end: datetime, cap: int = 100) -> tuple[datetime | None, int]:
        """The latest scheduled time in (start, end] and how many there were,
        counted up to cap + 1 (Kubernetes only needs to know "too many")."""
        count = 0
        latest = None
        t = self.next_after(start)
        while t is not None and t <= end:
            count += 1
            latest = t
            if count > cap:
                return self._latest_before(start, end), count
            t = self.next_after(t)
        return latest, count

    def _latest_before(self, start: datetime, end: datetime) -> datetime | None:
        """Searches windows growing backwards from end, so a long gap costs
        a few windows rather than every missed minute."""
        for window in (timedelta(hours=1), timedelta(days=1), timedelta(days=32),
                       timedelta(days=367), timedelta(days=367 * _SEARCH_YEARS)):
            probe = max(start, end - window)
            latest = None
            t = self.next_after(probe)
            while t is not None and t <= end:
                latest = t
                t = self.next_after(t)
            if latest is not None or probe == start:
                return latest
        return None


def _parse_value(text: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}: strconv.Atoi: parsing {text!r}: invalid syntax"
                        if not names else f"failed to parse {field} {text!r}")
    value = int(text)
    if field == "day of week" and value == 7:
        value = 0
    if not low <= value <= high:
        raise CronError(f"{field} value {value} out of range ({low}-{high})")
    return value


def _parse_field(text: str, low: int, high: int, names: dict[str, int], field: str) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise CronError(f"empty element in {field} field {text!r}")
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"invalid step {step_text!r} in {field} field")
            step = int(step_text)
        if body in ("*", "?"):
            start, end = low, high
            star = star or not slash
        elif "-" in body:
            a, _, b = body.partition("-")
            start = _parse_value(a, low, high, names, field)
            end = _parse_value(b, low, high, names, field)
            if start > end:
                raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {body}")
        else:
            start = _parse_value(body, low, high, names, field)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def parse_schedule(text: str, time_zone: str | None = None) -> Schedule:
    """A parsed schedule; raises CronError with the reason."""
    spec = (text or "").strip()
    if not spec:
        raise CronError("empty spec string")
    upper = spec.upper()
    if upper.startswith("TZ=") or upper.startswith("CRON_TZ="):
        raise CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if spec.startswith("@"):
        if spec.lower() not in DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = DESCRIPTORS[spec.lower()]
    parts = spec.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: {text.strip()!r}")
    parsed = [_parse_field(p, low, high, names, name)
              for p, (name, low, high, names) in zip(parts, _FIELDS, strict=True)]
    return Schedule(
        minutes=parsed[0][0], hours=parsed[1][0], days=parsed[2][0], months=parsed[3][0],
        weekdays=parsed[4][0], day_star=parsed[2][1], weekday_star=parsed[4][1],
        zone=load_zone(time_zone),
    )


def load_zone(name: str | None) -> tzinfo:
    """UTC for None or empty, else the IANA zone; raises CronError if unknown."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name}") from exc
