"""core/v1 reference and selector types used across many kinds."""

from __future__ import annotations

from corral.resources.schemas.dsl import CORE, boolean, obj, quantity, string

LOCAL_OBJECT_REFERENCE = obj(
    "Names an object in the same namespace.",
    {"name": string("Name of the referenced object.")},
    ref=f"{CORE}.LocalObjectReference",
    map_type="atomic",
)

OBJECT_REFERENCE = obj(
    "Points at an object, optionally at one field of it.",
    {
        "apiVersion": string("API version of the referent."),
        "fieldPath": string("A field within the referent, e.g. spec.containers{web}."),
        "kind": string("Kind of the referent."),
        "name": string("Name of the referent."),
        "namespace": string("Namespace of the referent."),
        "resourceVersion": string("The referent's resourceVersion this refers to."),
        "uid": string("UID of the referent."),
    },
    ref=f"{CORE}.ObjectReference",
    map_type="atomic",
)

TYPED_LOCAL_OBJECT_REFERENCE = obj(
    "Names an object of a given kind and API group in the same namespace.",
    {
        "apiGroup": string("API group of the referent; empty for the core group."),
        "kind": string("Kind of the referent."),
        "name": string("Name of the referent."),
    },
    required=("kind", "name"),
    ref=f"{CORE}.TypedLocalObjectReference",
    map_type="atomic",
)

TYPED_OBJECT_REFERENCE = obj(
    "Names an object of a given kind and API group, possibly in another namespace.",
    {
        "apiGroup": string("API group of the referent; empty for the core group."),
        "kind": string("Kind of the referent."),
        "name": string("Name of the referent."),
        "namespace": string("Namespace of the referent."),
    },
    required=("kind", "name"),
    ref=f"{CORE}.TypedObjectReference",
)

CONFIG_MAP_KEY_SELECTOR = obj(
    "One key of a ConfigMap.",
    {
        "key": string("The key to select."),
        "name": string("Name of the ConfigMap."),
        "optional": boolean("Whether the ConfigMap or key may be missing."),
    },
    required=("key",),
    ref=f"{CORE}.ConfigMapKeySelector",
    map_type="atomic",
)

SECRET_KEY_SELECTOR = obj(
    "One key of a Secret.",
    {
        "key": string("The key to select."),
        "name": string("Name of the Secret."),
        "optional": boolean("Whether the Secret or key may be missing."),
    },
    required=("key",),
    ref=f"{CORE}.SecretKeySelector",
    map_type="atomic",
)

OBJECT_FIELD_SELECTOR = obj(
    "A field of the pod, e.g. metadata.name or status.podIP.",
    {
        "apiVersion": string("Schema version fieldPath is written in; defaults to v1."),
        "fieldPath": string("Path of the field to select."),
    },
    required=("fieldPath",),
    ref=f"{CORE}.ObjectFieldSelector",
    map_type="atomic",
)

RESOURCE_FIELD_SELECTOR = obj(
    "A container's resource request or limit, e.g. limits.cpu.",
    {
        "containerName": string("Container to read; required for volumes."),
        "divisor": quantity(),
        "resource": string("The resource to select, e.g. requests.memory."),
    },
    required=("resource",),
    ref=f"{CORE}.ResourceFieldSelector",
    map_type="atomic",
)
