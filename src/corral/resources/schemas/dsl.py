"""Short constructors for :class:`~corral.resources.schema.Schema`.

The kind schemas are hundreds of fields; these helpers keep each field to one
readable line and put Kubernetes' list/patch semantics next to the field they
belong to. A schema built with ``ref=`` is a named type: the OpenAPI generator
publishes it once under ``components.schemas`` and points every use at it, so
a named type's description is written to read well wherever it is used.
"""

from __future__ import annotations

from corral.resources.schema import Schema

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
CORE = "io.k8s.api.core.v1"
QUANTITY_REF = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING_REF = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


def obj(
    description: str,
    properties: dict[str, Schema],
    *,
    required: tuple[str, ...] = (),
    ref: str = "",
    map_type: str = "",
) -> Schema:
    return Schema(
        type="object",
        description=description,
        properties=properties,
        required=required,
        ref=ref,
        map_type=map_type,
    )


def free_form(description: str, *, ref: str = "") -> Schema:
    """An object whose content we do not model (kept as sent)."""
    return Schema(type="object", description=description, preserve_unknown=True, ref=ref)


def string(description: str = "", *, enum: tuple[str, ...] = (), fmt: str = "") -> Schema:
    return Schema(type="string", description=description, enum=enum, format=fmt)


def integer(description: str = "") -> Schema:
    return Schema(type="integer", description=description, format="int32")


def int64(description: str = "") -> Schema:
    return Schema(type="integer", description=description, format="int64")


def boolean(description: str = "") -> Schema:
    return Schema(type="boolean", description=description)


def number(description: str = "") -> Schema:
    return Schema(type="number", description=description, format="double")


def byte_string(description: str = "") -> Schema:
    """Base64 text on the wire, raw bytes to the user."""
    return Schema(type="string", description=description, format="byte")


QUANTITY = Schema(
    type="string",
    description=(
        "An amount of a resource: a plain or decimal number with an optional SI or "
        "binary suffix, e.g. 100m, 0.5, 128Mi, 2Gi."
    ),
    int_or_string=True,
    ref=QUANTITY_REF,
)

INT_OR_STRING = Schema(
    type="string",
    description="Either an integer or a string (a port number or a port name, 3 or 25%).",
    format="int-or-string",
    int_or_string=True,
    ref=INT_OR_STRING_REF,
)

TIME = Schema(
    type="string",
    description="A timestamp in RFC 3339 form with second precision, e.g. 2024-05-01T10:00:00Z.",
    format="date-time",
    ref=f"{META}.Time",
)

MICRO_TIME = Schema(
    type="string",
    description="A timestamp in RFC 3339 form with microsecond precision.",
    format="date-time",
    ref=f"{META}.MicroTime",
)


def quantity() -> Schema:
    return QUANTITY


def int_or_string() -> Schema:
    return INT_OR_STRING


def time() -> Schema:
    return TIME


def micro_time() -> Schema:
    return MICRO_TIME


def arr(
    items: Schema,
    description: str = "",
    *,
    list_type: str = "atomic",
    keys: tuple[str, ...] = (),
    merge_key: str = "",
    strategy: str = "",
) -> Schema:
    """A list. ``list_type``/``keys`` drive server-side apply, ``merge_key``/``strategy``
    strategic merge patch; Kubernetes sets them independently, and so do we."""
    return Schema(
        type="array",
        description=description,
        items=items,
        list_type=list_type,
        list_map_keys=keys,
        merge_key=merge_key,
        patch_strategy=strategy,
    )


def strings(description: str = "", *, list_type: str = "atomic") -> Schema:
    return arr(string(), description, list_type=list_type)


def map_of(values: Schema, description: str = "", *, map_type: str = "") -> Schema:
    return Schema(
        type="object", description=description, additional_properties=values, map_type=map_type
    )


def string_map(description: str = "", *, map_type: str = "") -> Schema:
    return map_of(string(), description, map_type=map_type)


def resource_list(description: str) -> Schema:
    """Resource name → quantity, e.g. ``{"cpu": "500m", "memory": "1Gi"}``."""
    return map_of(QUANTITY, description)


def kind_object(
    ref: str,
    description: str,
    properties: dict[str, Schema],
    *,
    metadata: Schema,
    required: tuple[str, ...] = (),
) -> Schema:
    """A top-level kind: apiVersion, kind and metadata around its own fields."""
    props: dict[str, Schema] = {
        "apiVersion": string("Versioned schema of this object, e.g. v1 or apps/v1."),
        "kind": string("The REST resource this object represents, in CamelCase."),
        "metadata": metadata,
    }
    props.update(properties)
    return obj(description, props, required=required, ref=ref)
