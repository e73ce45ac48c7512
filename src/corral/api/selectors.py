"""Label and field selectors, parsed once per request and matched per object.

Grammar follows Kubernetes: label selectors take ``k=v``, ``k==v``,
``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` and ``!k`` joined by
commas; field selectors take only the equality forms. A malformed selector
is a 400 that quotes the offending part.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from corral.api.errors import BadRequest

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")
_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s+(in|notin)\s*\(([^()]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*(\S*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")

Matcher = Callable[[Mapping[str, str]], bool]


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # =, !=, in, notin, exists, !exists
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        # != and notin match objects without the key too, as in Kubernetes.
        return not present or value not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _check_key(key: str, selector: str) -> None:
    if not _KEY_RE.match(key) or len(key) > 317:
        raise BadRequest(f'unable to parse requirement: invalid label key "{key}" in "{selector}"')


def _check_value(value: str, selector: str) -> None:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise BadRequest(
            f'unable to parse requirement: invalid label value "{value}" in "{selector}": '
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )


def _parse_one(part: str, selector: str) -> Requirement:
    if m := _SET_RE.match(part):
        neg, key, op, raw = m.groups()
        if neg:
            raise BadRequest(f'unable to parse requirement: "{part.strip()}" in "{selector}"')
        values = [v.strip() for v in raw.split(",")]
        if not any(values):
            raise BadRequest(f'for "in" and "notin" operators, values set can\'t be empty: "{selector}"')
        _check_key(key, selector)
        for v in values:
            _check_value(v, selector)
        return Requirement(key, op, frozenset(values))
    if m := _EQ_RE.match(part):
        key, op, value = m.groups()
        _check_key(key, selector)
        _check_value(value, selector)
        return Requirement(key, "!=" if op == "!=" else "=", frozenset([value]))
    if m := _EXISTS_RE.match(part):
        neg, key = m.groups()
        _check_key(key, selector)
        return Requirement(key, "!exists" if neg else "exists")
    raise BadRequest(f'unable to parse requirement: "{part.strip()}" in label selector "{selector}"')


def parse_label_selector(selector: str | None) -> list[Requirement]:
    if not selector or not selector.strip():
        return []
    return [_parse_one(p, selector) for p in _split_top_level(selector)]


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in requirements)


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    value: str
    negate: bool

    def matches(self, fields: Mapping[str, str]) -> bool:
        actual = fields.get(self.field, "")
        return (actual != self.value) if self.negate else (actual == self.value)


def parse_field_selector(selector: str | None, allowed: set[str] | None = None) -> list[FieldRequirement]:
    """Field selectors: ``a=b,c!=d``. ``allowed`` names the fields this kind
    supports; any other is a 400 as in Kubernetes ("field label not supported")."""
    if not selector or not selector.strip():
        return []
    out = []
    for part in _split_top_level(selector):
        m = _EQ_RE.match(part) or re.match(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*()$", part)
        if not m:
            raise BadRequest(f'invalid field selector: "{part.strip()}" in "{selector}"')
        field, op, value = m.groups()
        value = value.replace("\\,", ",")
        if allowed is not None and field not in allowed:
            raise BadRequest(f'field label not supported: {field}')
        out.append(FieldRequirement(field, value, op == "!="))
    return out


def fields_match(requirements: list[FieldRequirement], fields: Mapping[str, str]) -> bool:
    return all(r.matches(fields) for r in requirements)


def selector_from_label_selector(label_selector: Mapping[str, object] | None) -> list[Requirement]:
    """A metav1.LabelSelector (matchLabels + matchExpressions) as requirements."""
    if not label_selector:
        return []
    reqs: list[Requirement] = []
    for k, v in (label_selector.get("matchLabels") or {}).items():  # type: ignore[union-attr]
        reqs.append(Requirement(str(k), "=", frozenset([str(v)])))
    for expr in label_selector.get("matchExpressions") or []:  # type: ignore[union-attr]
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}.get(
            expr.get("operator", ""), ""
        )
        if not op:
            raise ValueError(f"unknown selector operator {expr.get('operator')!r}")
        reqs.append(Requirement(expr["key"], op, frozenset(expr.get("values") or [])))
    return reqs


def format_label_selector(label_selector: Mapping[str, object] | None) -> str:
    """The string form kubectl shows and Scale.status.selector carries."""
    parts: list[str] = []
    for r in selector_from_label_selector(label_selector):
        if r.op == "=":
            parts.append(f"{r.key}={next(iter(r.values))}")
        elif r.op in ("in", "notin"):
            parts.append(f"{r.key} {r.op} ({','.join(sorted(r.values))})")
        elif r.op == "exists":
            parts.append(r.key)
        else:
            parts.append(f"!{r.key}")
    return ",".join(parts)
