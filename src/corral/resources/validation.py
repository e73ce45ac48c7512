"""Checks shared by every kind, with Kubernetes' wording.

Messages are what Kubernetes' ``field.Error.ErrorBody()`` prints (``Invalid
value: -1: must be greater than or equal to 0``), so clients and people who
know Kubernetes' errors recognise them. Nothing here raises: every check
returns a list of :class:`FieldCause` for the API layer to turn into a 422.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from corral.resources.quantity import QuantityError, parse_quantity
from corral.resources.tables import as_dict, as_list
from corral.resources.types import FieldCause

Causes = list[FieldCause]
NameFormat = Literal["subdomain", "label", "dns1035", "path-segment"]

# --- field errors, in Kubernetes' field.Error forms --------------------------


def go_value(value: Any) -> str:
    """A value the way Go's field errors print it (%q strings, %#v maps)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, Mapping):
        if all(isinstance(v, str) for v in value.values()):
            inner = ", ".join(f"{go_quote(str(k))}:{go_quote(v)}" for k, v in sorted(value.items()))
            return f"map[string]string{{{inner}}}"
        inner = ", ".join(f"{go_quote(str(k))}:{go_value(v)}" for k, v in sorted(value.items()))
        return f"map[string]interface {{}}{{{inner}}}"
    if isinstance(value, list | tuple):
        if all(isinstance(v, str) for v in value):
            return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
        return "[]interface {}{" + ", ".join(go_value(v) for v in value) + "}"
    return go_quote(str(value))


def go_quote(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _with_detail(head: str, detail: str) -> str:
    return f"{head}: {detail}" if detail else head


def invalid(path: str, value: Any, detail: str) -> FieldCause:
    return FieldCause(path, _with_detail(f"Invalid value: {go_value(value)}", detail),
                      "FieldValueInvalid")


def required(path: str, detail: str = "") -> FieldCause:
    return FieldCause(path, _with_detail("Required value", detail), "FieldValueRequired")


def duplicate(path: str, value: Any) -> FieldCause:
    return FieldCause(path, f"Duplicate value: {go_value(value)}", "FieldValueDuplicate")


def not_supported(path: str, value: Any, supported: Iterable[str]) -> FieldCause:
    listed = ", ".join(go_quote(s) for s in supported)
    return FieldCause(path, f"Unsupported value: {go_value(value)}: supported values: {listed}",
                      "FieldValueNotSupported")


def forbidden(path: str, detail: str) -> FieldCause:
    return FieldCause(path, _with_detail("Forbidden", detail), "FieldValueForbidden")


def too_long(path: str, max_bytes: int) -> FieldCause:
    unit = "byte" if max_bytes == 1 else "bytes"
    return FieldCause(path, f"Too long: may not be more than {max_bytes} {unit}",
                      "FieldValueTooLong")


def not_found(path: str, value: Any) -> FieldCause:
    return FieldCause(path, f"Not found: {go_value(value)}", "FieldValueNotFound")


def immutable(path: str, value: Any) -> FieldCause:
    return invalid(path, value, "field is immutable")


# --- names ---------------------------------------------------------------------

_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + r"(\." + _LABEL_FMT + ")*"
_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QUALIFIED_FMT + ")?"
_ENV_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"

_RE = {name: re.compile(fmt) for name, fmt in {
    "label": _LABEL_FMT, "subdomain": _SUBDOMAIN_FMT, "dns1035": _DNS1035_FMT,
    "qualified": _QUALIFIED_FMT, "label_value": _LABEL_VALUE_FMT, "env": _ENV_FMT,
    "config_key": _CONFIG_KEY_FMT,
}.items()}

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    f"regex used for validation is '{_SUBDOMAIN_FMT}')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    f"regex used for validation is '{_LABEL_FMT}')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    f"'abc-123', regex used for validation is '{_DNS1035_FMT}')"
)
QUALIFIED_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{_QUALIFIED_FMT}')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE_FMT}')"
)
ENV_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', "
    "'-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  "
    f"or 'MyEnvName1', regex used for validation is '{_ENV_FMT}')"
)
CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    f"'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '{_CONFIG_KEY_FMT}')"
)


def _too_many(n: int) -> str:
    return f"must be no more than {n} characters"


def dns1123_subdomain_errors(value: str) -> list[str]:
    errs = [_too_many(253)] if len(value) > 253 else []
    if not _RE["subdomain"].fullmatch(value):
        errs.append(SUBDOMAIN_MSG)
    return errs


def dns1123_label_errors(value: str) -> list[str]:
    errs = [_too_many(63)] if len(value) > 63 else []
    if not _RE["label"].fullmatch(value):
        errs.append(LABEL_MSG)
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    errs = [_too_many(63)] if len(value) > 63 else []
    if not _RE["dns1035"].fullmatch(value):
        errs.append(DNS1035_MSG)
    return errs


def path_segment_errors(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


_NAME_CHECKS = {
    "subdomain": dns1123_subdomain_errors,
    "label": dns1123_label_errors,
    "dns1035": dns1035_label_errors,
    "path-segment": path_segment_errors,
}


def name_errors(value: str, fmt: NameFormat = "subdomain", prefix: bool = False) -> list[str]:
    """Problems with an object name; ``prefix`` checks a generateName (trailing '-' is fine)."""
    if prefix and value.endswith("-"):
        value = value[:-1] + "a"
    return _NAME_CHECKS[fmt](value)


def qualified_name_errors(value: str) -> list[str]:
    """Label keys, annotation keys, finalizers: ``[prefix/]name``."""
    parts = value.split("/")
    if len(parts) == 1:
        prefix, name = "", parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
    else:
        return ["a qualified name " + QUALIFIED_MSG + " with an optional DNS subdomain prefix "
                "and '/' (e.g. 'example.com/MyName')"]
    errs = [f"prefix part {m}" for m in dns1123_subdomain_errors(prefix)] if prefix else []
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _too_many(63))
    if name and not _RE["qualified"].fullmatch(name):
        errs.append("name part " + QUALIFIED_MSG)
    return errs


def label_value_errors(value: str) -> list[str]:
    errs = [_too_many(63)] if len(value) > 63 else []
    if not _RE["label_value"].fullmatch(value):
        errs.append(LABEL_VALUE_MSG)
    return errs


def env_name_errors(value: str) -> list[str]:
    return [] if _RE["env"].fullmatch(value) else [ENV_MSG]


def config_key_errors(value: str) -> list[str]:
    errs = [_too_many(253)] if len(value) > 253 else []
    if not _RE["config_key"].fullmatch(value):
        errs.append(CONFIG_KEY_MSG)
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def iana_svc_name_errors(value: str) -> list[str]:
    """Named ports: at most 15 of [a-z0-9-], a letter, no '--', no leading/trailing '-'."""
    errs = []
    if len(value) > 15:
        errs.append(_too_many(15))
    if not re.fullmatch("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def check(path: str, value: Any, errors: list[str]) -> Causes:
    """One Invalid cause per message, Kubernetes-style."""
    return [invalid(path, value, msg) for msg in errors]


def check_name(path: str, value: Any, fmt: NameFormat = "label") -> Causes:
    if value is None or value == "":
        return [required(path)]
    if not isinstance(value, str):
        return [invalid(path, value, "must be a string")]
    return check(path, value, name_errors(value, fmt))


# --- numbers, ports, enums, IPs ---------------------------------------------------


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def non_negative(path: str, value: Any) -> Causes:
    if value is None:
        return []
    if not is_int(value) or value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def positive(path: str, value: Any) -> Causes:
    if value is None:
        return []
    if not is_int(value) or value <= 0:
        return [invalid(path, value, "must be greater than 0")]
    return []


def in_range(path: str, value: Any, low: int, high: int) -> Causes:
    if not is_int(value) or not low <= value <= high:
        return [invalid(path, value, f"must be between {low} and {high}, inclusive")]
    return []


def port_number(path: str, value: Any) -> Causes:
    return in_range(path, value, 1, 65535)


def one_of(path: str, value: Any, allowed: tuple[str, ...], need: bool = True) -> Causes:
    """An enum field: Required when missing (if ``need``), NotSupported when unknown."""
    if value is None or value == "":
        return [required(path)] if need else []
    if value not in allowed:
        return [not_supported(path, value, allowed)]
    return []


PROTOCOLS = ("SCTP", "TCP", "UDP")


def protocol(path: str, value: Any) -> Causes:
    return one_of(path, value, PROTOCOLS)


def ip_errors(value: Any) -> list[str]:
    if not isinstance(value, str):
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def cidr_errors(value: Any) -> list[str]:
    if not isinstance(value, str):
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return []


def quantity(path: str, value: Any, allow_negative: bool = False) -> Causes:
    try:
        parsed = parse_quantity(value)
    except QuantityError as exc:
        return [invalid(path, value, str(exc))]
    if parsed < 0 and not allow_negative:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def immutable_field(path: str, new: Any, old: Any) -> Causes:
    return [] if new == old else [immutable(path, new)]


# --- metadata -------------------------------------------------------------------

TOTAL_ANNOTATION_SIZE = 256 * 1024


def validate_labels(labels: Any, path: str) -> Causes:
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [invalid(path, labels, "must be a map of string keys to string values")]
    causes: Causes = []
    for key, value in labels.items():
        causes += check(path, key, qualified_name_errors(str(key)))
        if not isinstance(value, str):
            causes.append(invalid(f"{path}[{key}]", value, "must be a string"))
        else:
            causes += check(path, value, label_value_errors(value))
    return causes


def validate_annotations(annotations: Any, path: str) -> Causes:
    if annotations is None:
        return []
    if not isinstance(annotations, Mapping):
        return [invalid(path, annotations, "must be a map of string keys to string values")]
    causes: Causes = []
    size = 0
    for key, value in annotations.items():
        causes += check(path, key, qualified_name_errors(str(key).lower()))
        size += len(str(key)) + len(str(value) if value is not None else "")
    if size > TOTAL_ANNOTATION_SIZE:
        causes.append(too_long(path, TOTAL_ANNOTATION_SIZE))
    return causes


def _validate_owner_references(refs: Any, path: str) -> Causes:
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [invalid(path, refs, "must be a list")]
    causes: Causes = []
    controllers = []
    for i, ref in enumerate(refs):
        p = f"{path}[{i}]"
        if not isinstance(ref, Mapping):
            causes.append(invalid(p, ref, "must be an object"))
            continue
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                causes.append(required(f"{p}.{key}"))
        if ref.get("controller") is True:
            controllers.append(str(ref.get("name", "")))
    if len(controllers) > 1:
        names = ", ".join(controllers)
        causes.append(invalid(path, f"{len(refs)} owner references",
                              "Only one reference can have Controller set to true. "
                              f"Found \"true\" in references for {names}"))
    return causes


def validate_object_meta(
    meta: Any, namespaced: bool, name_format: NameFormat = "subdomain"
) -> Causes:
    """Every kind's metadata: name/generateName format, namespace, labels, annotations,
    finalizers, ownerReferences. Presence of a name is the API layer's business."""
    if not isinstance(meta, Mapping):
        return [required("metadata")]
    causes: Causes = []
    name, generate = meta.get("name"), meta.get("generateName")
    if isinstance(name, str) and name:
        causes += check("metadata.name", name, name_errors(name, name_format))
    elif name not in (None, ""):
        causes.append(invalid("metadata.name", name, "must be a string"))
    if isinstance(generate, str) and generate and not name:
        causes += check("metadata.generateName", generate,
                        name_errors(generate, name_format, prefix=True))
    namespace = meta.get("namespace")
    if namespaced:
        if not namespace:
            causes.append(required("metadata.namespace"))
        elif not isinstance(namespace, str):
            causes.append(invalid("metadata.namespace", namespace, "must be a string"))
        else:
            causes += check("metadata.namespace", namespace, dns1123_label_errors(namespace))
    elif namespace:
        causes.append(forbidden("metadata.namespace", "not allowed on this type"))
    causes += validate_labels(meta.get("labels"), "metadata.labels")
    causes += validate_annotations(meta.get("annotations"), "metadata.annotations")
    for i, fin in enumerate(as_list(meta.get("finalizers"))):
        if not isinstance(fin, str):
            causes.append(invalid(f"metadata.finalizers[{i}]", fin, "must be a string"))
        else:
            causes += check(f"metadata.finalizers[{i}]", fin, qualified_name_errors(fin))
    causes += _validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences")
    return causes


def stricter_name(meta: Any, fmt: NameFormat) -> Causes:
    """For kinds whose names are DNS labels (Namespace, Service): the extra
    causes beyond the subdomain check every kind gets from validate_object_meta,
    so a name is never reported twice."""
    if not isinstance(meta, Mapping):
        return []
    causes: Causes = []
    for field, prefix in (("name", False), ("generateName", True)):
        value = meta.get(field)
        if field == "generateName" and meta.get("name"):
            continue
        if isinstance(value, str) and value and not name_errors(value, "subdomain", prefix):
            causes += check(f"metadata.{field}", value, name_errors(value, fmt, prefix))
    return causes


# --- label selectors --------------------------------------------------------------

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(selector: Any, path: str) -> Causes:
    if selector is None:
        return []
    if not isinstance(selector, Mapping):
        return [invalid(path, selector, "must be a label selector object")]
    causes = validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(as_list(selector.get("matchExpressions"))):
        p = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            causes.append(invalid(p, expr, "must be an object"))
            continue
        op, values = expr.get("operator"), as_list(expr.get("values"))
        causes += one_of(f"{p}.operator", op, SELECTOR_OPERATORS)
        if op in ("In", "NotIn") and not values:
            causes.append(required(f"{p}.values",
                                   "must be specified when `operator` is 'In' or 'NotIn'"))
        if op in ("Exists", "DoesNotExist") and values:
            causes.append(forbidden(f"{p}.values",
                                    "may not be specified when `operator` is 'Exists' or "
                                    "'DoesNotExist'"))
        key = expr.get("key")
        if not key:
            causes.append(required(f"{p}.key"))
        else:
            causes += check(f"{p}.key", key, qualified_name_errors(str(key)))
        for j, v in enumerate(values):
            causes += check(f"{p}.values[{j}]", v, label_value_errors(str(v)))
    return causes


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector selects an object with these labels."""
    for key, value in as_dict(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expr in as_list(selector.get("matchExpressions")):
        if not isinstance(expr, Mapping):
            return False
        key, op, values = expr.get("key"), expr.get("operator"), as_list(expr.get("values"))
        present = isinstance(key, str) and key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def selector_is_empty(selector: Mapping[str, Any]) -> bool:
    return not selector.get("matchLabels") and not selector.get("matchExpressions")
