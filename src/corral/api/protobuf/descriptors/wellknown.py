"""Protobuf descriptors for the apimachinery types whose JSON form is not an object.

Facts from k8s.io/apimachinery v0.36.3 ``generated.proto`` files. The decoder
turns each of these messages into its JSON form (a timestamp string, a
quantity string, an int-or-string, raw JSON) rather than a dict; see
:mod:`corral.api.protobuf.wellknown`. Both fields of a Time are marked ``*``:
an empty message means "no time" (JSON null) while an explicit 0 is the Unix
epoch, so presence must survive decoding.
"""

from __future__ import annotations

TABLES: dict[str, dict[str, dict[int, str]]] = {
    "meta.v1": {
        "Time": {1: "seconds int64 *", 2: "nanos int32 *"},
        "MicroTime": {1: "seconds int64 *", 2: "nanos int32 *"},
        "Duration": {1: "duration int64"},
        "FieldsV1": {1: "Raw raw"},
    },
    "resource": {
        "Quantity": {1: "string string"},
    },
    "intstr": {
        "IntOrString": {1: "type int64", 2: "intVal int32", 3: "strVal string"},
    },
    "runtime": {
        "TypeMeta": {1: "apiVersion string", 2: "kind string"},
        "Unknown": {
            1: "typeMeta TypeMeta", 2: "raw raw", 3: "contentEncoding string",
            4: "contentType string",
        },
        "RawExtension": {1: "raw raw"},
    },
}
