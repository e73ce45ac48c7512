"""v1 ConfigMap and Secret: key/value stores mounted into pods.

Secret ``data`` travels base64-encoded; ``stringData`` is a write-only
convenience folded into ``data`` on the way in, as Kubernetes does, so it is
never stored.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from corral.resources import validation as v
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, as_dict, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType

MAX_SIZE = 1024 * 1024
IMMUTABLE = "field is immutable when `immutable` is set"

# Keys each well-known Secret type must carry (any one of a tuple's keys).
_SECRET_TYPE_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "kubernetes.io/dockercfg": ((".dockercfg",),),
    "kubernetes.io/dockerconfigjson": ((".dockerconfigjson",),),
    "kubernetes.io/basic-auth": (("username", "password"),),
    "kubernetes.io/ssh-auth": (("ssh-privatekey",),),
    "kubernetes.io/tls": (("tls.crt",), ("tls.key",)),
}
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"


def _decode(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _validate_keys(data: Any, path: str) -> list[FieldCause]:
    if data is None:
        return []
    if not isinstance(data, dict):
        return [v.invalid(path, data, "must be a map of string keys to values")]
    causes: list[FieldCause] = []
    for key in data:
        causes += v.check(f"{path}[{key}]", key, v.config_key_errors(str(key)))
    return causes


def _validate_immutable(new: Obj, old: Obj | None, fields: tuple[str, ...]) -> list[FieldCause]:
    if old is None or old.get("immutable") is not True:
        return []
    causes = []
    if new.get("immutable") is not True:
        causes.append(v.forbidden("immutable", IMMUTABLE))
    for name in fields:
        if (new.get(name) or {}) != (old.get(name) or {}):
            causes.append(v.forbidden(name, IMMUTABLE))
    return causes


# --- ConfigMap --------------------------------------------------------------------


def validate_configmap(new: Obj, old: Obj | None) -> list[FieldCause]:
    data, binary = new.get("data") or {}, new.get("binaryData") or {}
    causes = _validate_keys(data, "data") + _validate_keys(binary, "binaryData")
    if causes:
        return causes
    size = 0
    for key, value in data.items():
        if not isinstance(value, str):
            causes.append(v.invalid(f"data[{key}]", value, "must be a string"))
            continue
        size += len(key) + len(value.encode())
        if key in binary:
            causes.append(v.invalid(f"data[{key}]", key,
                                    "duplicate of key present in binaryData"))
    for key, value in binary.items():
        decoded = _decode(value)
        if decoded is None:
            causes.append(v.invalid(f"binaryData[{key}]", "<value omitted>",
                                    "illegal base64 data"))
            continue
        size += len(key) + len(decoded)
    if size > MAX_SIZE:
        causes.append(v.too_long("data", MAX_SIZE))
    return causes + _validate_immutable(new, old, ("data", "binaryData"))


def _data_count(obj: Obj) -> int:
    return len(as_dict(obj.get("data"))) + len(as_dict(obj.get("binaryData")))


CONFIGMAP_COLUMNS = (
    NAME_COLUMN,
    Column("Data", "integer", lambda o, n: _data_count(o), "Number of data entries"),
    AGE_COLUMN,
)


def configmap_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="", version="v1", kind="ConfigMap", plural="configmaps", singular="configmap",
        namespaced=True, schema=schema, short_names=("cm",), columns=CONFIGMAP_COLUMNS,
        validator=validate_configmap,
    )


# --- Secret -----------------------------------------------------------------------


def default_secret(obj: Obj) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"
    string_data = obj.get("stringData")
    if isinstance(string_data, dict) and all(isinstance(x, str) for x in string_data.values()):
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()
        del obj["stringData"]


def _validate_secret_type(new: Obj, data: dict[str, Any]) -> list[FieldCause]:
    kind = new.get("type")
    causes: list[FieldCause] = []
    if kind == "kubernetes.io/service-account-token":
        if not get_path(new, "metadata", "annotations", SA_NAME_ANNOTATION):
            causes.append(v.required(f"metadata.annotations[{SA_NAME_ANNOTATION}]"))
    for alternatives in _SECRET_TYPE_KEYS.get(str(kind), ()):
        if not any(data.get(k) for k in alternatives):
            causes += [v.required(f"data[{k}]") for k in alternatives]
    return causes


def validate_secret(new: Obj, old: Obj | None) -> list[FieldCause]:
    data = new.get("data") or {}
    causes = _validate_keys(data, "data")
    if new.get("stringData") is not None:
        causes.append(v.invalid("stringData", "<value omitted>",
                                "must be a map of string keys to string values"))
    if causes:
        return causes
    size = 0
    for key, value in data.items():
        decoded = _decode(value)
        if decoded is None:
            causes.append(v.invalid(f"data[{key}]", "<value omitted>", "illegal base64 data"))
            continue
        size += len(key) + len(decoded)
    if size > MAX_SIZE:
        causes.append(v.too_long("data", MAX_SIZE))
    causes += _validate_secret_type(new, data)
    if old is not None and old.get("type") and new.get("type") != old.get("type"):
        causes.append(v.immutable("type", new.get("type")))
    return causes + _validate_immutable(new, old, ("data",))


SECRET_COLUMNS = (
    NAME_COLUMN,
    Column("Type", "string", lambda o, n: str(o.get("type", "")),
           "The type of the secret"),
    Column("Data", "integer", lambda o, n: len(as_dict(o.get("data"))),
           "The number of entries in the secret"),
    AGE_COLUMN,
)


def secret_fields(obj: Obj) -> dict[str, str]:
    return {"type": str(obj.get("type", ""))}


def secret_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="", version="v1", kind="Secret", plural="secrets", singular="secret",
        namespaced=True, schema=schema, columns=SECRET_COLUMNS, defaulter=default_secret,
        validator=validate_secret, field_selectors=secret_fields,
    )
