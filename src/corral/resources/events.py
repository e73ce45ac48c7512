"""v1 Event (the core group's, which ``kubectl describe`` and ``get events`` read)."""

from __future__ import annotations

from datetime import datetime

from corral.resources import validation as v
from corral.resources.schema import Schema
from corral.resources.tables import age_since, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType

EVENT_TYPES = ("Normal", "Warning")
FIELD_LIMIT = 128
NOTE_LIMIT = 1024


def default_event(obj: Obj) -> None:
    if not obj.get("type"):
        obj["type"] = "Normal"


def _validate_series_event(new: Obj) -> list[FieldCause]:
    """Events with eventTime set follow the events.k8s.io rules: who reported it, and why."""
    causes: list[FieldCause] = []
    controller = new.get("reportingComponent")
    if not controller:
        causes.append(v.required("reportingComponent"))
    else:
        causes += v.check("reportingComponent", controller,
                          v.qualified_name_errors(str(controller)))
    for key in ("reportingInstance", "action", "reason"):
        value = new.get(key)
        if not value:
            causes.append(v.required(key))
        elif len(str(value)) > FIELD_LIMIT:
            causes.append(v.invalid(key, "", f"can have at most {FIELD_LIMIT} characters"))
    if len(str(new.get("message") or "")) > NOTE_LIMIT:
        causes.append(v.invalid("message", "", f"can have at most {NOTE_LIMIT} characters"))
    return causes


def validate_event(new: Obj, old: Obj | None) -> list[FieldCause]:
    namespace = get_path(new, "metadata", "namespace", default="")
    involved_ns = get_path(new, "involvedObject", "namespace", default="")
    causes: list[FieldCause] = []
    # Events about cluster-scoped objects (nodes) live in "default".
    if involved_ns and involved_ns != namespace or (
        not involved_ns and namespace not in ("", "default")
    ):
        causes.append(v.invalid("involvedObject.namespace", involved_ns,
                                "does not match event.namespace"))
    causes += v.one_of("type", new.get("type"), EVENT_TYPES)
    if new.get("eventTime"):
        causes += _validate_series_event(new)
    elif len(str(new.get("reason") or "")) > FIELD_LIMIT:
        causes.append(v.invalid("reason", "", f"can have at most {FIELD_LIMIT} characters"))
    causes += v.non_negative("count", new.get("count"))
    return causes


def _first_seen(ev: Obj, now: datetime) -> str:
    if ev.get("firstTimestamp"):
        return age_since(ev["firstTimestamp"], now)
    return age_since(ev.get("eventTime"), now)


def _last_seen(ev: Obj, now: datetime) -> str:
    series_time = get_path(ev, "series", "lastObservedTime")
    if series_time:
        return age_since(series_time, now)
    if ev.get("lastTimestamp"):
        return age_since(ev["lastTimestamp"], now)
    return _first_seen(ev, now)


def _count(ev: Obj, now: datetime) -> int:
    series_count = get_path(ev, "series", "count")
    if v.is_int(series_count):
        return int(series_count)
    count = ev.get("count")
    return int(count) if v.is_int(count) and count > 0 else 1


def _object(ev: Obj, now: datetime) -> str:
    kind = str(get_path(ev, "involvedObject", "kind", default="")).lower()
    name = get_path(ev, "involvedObject", "name", default="")
    return f"{kind}/{name}" if name else kind


def _source(ev: Obj, now: datetime) -> str:
    component = get_path(ev, "source", "component", default="") or ev.get("reportingComponent", "")
    instance = get_path(ev, "source", "host", default="") or ev.get("reportingInstance", "")
    return f"{component}, {instance}" if instance else str(component)


COLUMNS = (
    Column("Last Seen", "string", _last_seen, "Time when this Event was last observed."),
    Column("Type", "string", lambda o, n: str(o.get("type", "")),
           "Type of this event (Normal, Warning), new types could be added in the future."),
    Column("Reason", "string", lambda o, n: str(o.get("reason", "")),
           "Why the action was taken. Human-readable."),
    Column("Object", "string", _object, "The object that this event is about."),
    Column("Subobject", "string",
           lambda o, n: str(get_path(o, "involvedObject", "fieldPath", default="")),
           "The part of the object this event is about.", priority=1),
    Column("Source", "string", _source, "The component reporting this event.", priority=1),
    Column("Message", "string", lambda o, n: str(o.get("message", "")).strip(),
           "A human-readable description of the status of this operation."),
    Column("First Seen", "string", _first_seen,
           "The time at which the event was first recorded.", priority=1),
    Column("Count", "integer", _count,
           "The number of times this event has occurred.", priority=1),
    Column("Name", "string", lambda o, n: str(get_path(o, "metadata", "name", default="")),
           "Name of the event.", format="name", priority=1),
)


def event_fields(ev: Obj) -> dict[str, str]:
    fields = {
        f"involvedObject.{key}": str(get_path(ev, "involvedObject", key, default=""))
        for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                    "fieldPath")
    }
    fields["reason"] = str(ev.get("reason", ""))
    fields["reportingComponent"] = str(ev.get("reportingComponent", ""))
    fields["source"] = str(get_path(ev, "source", "component", default=""))
    fields["type"] = str(ev.get("type", ""))
    return fields


def event_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="", version="v1", kind="Event", plural="events", singular="event",
        namespaced=True, schema=schema, short_names=("ev",), columns=COLUMNS,
        defaulter=default_event, validator=validate_event, field_selectors=event_fields,
    )
