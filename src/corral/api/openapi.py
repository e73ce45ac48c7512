"""The OpenAPI v3 documents served at ``/openapi/v3`` and
``/openapi/v3/<api/v1 | apis/GROUP/VERSION>``, generated from the registry.

kubectl reads them for three things: ``explain`` renders the component
schemas; ``apply`` reads the patch merge keys to compute strategic merge
patches; and when the group/version's ``patch`` operation for a kind carries
``x-kubernetes-group-version-kind`` and a ``fieldValidation`` parameter,
kubectl skips its own validation and asks the server for
``fieldValidation=Strict`` instead (without these documents it falls back to
protobuf-only ``/openapi/v2`` and apply fails).

The documents are a pure function of the registry, so they are built once per
registry and kept with their JSON bytes and content hash.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass, replace
from typing import Any

import orjson

from corral.api.openapi_paths import resource_paths
from corral.api.openapi_schema import ComponentSet, ref_to
from corral.resources.registry import Registry
from corral.resources.schema import Schema
from corral.resources.schemas import meta
from corral.resources.types import ResourceType

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
PATCH_REF = f"{META}.Patch"


@dataclass(frozen=True, slots=True)
class Document:
    body: dict[str, Any]
    raw: bytes
    hash: str


def group_version_path(group: str, version: str) -> str:
    """``api/v1`` or ``apis/apps/v1``: the key in the index and the URL tail."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def kind_ref(rt: ResourceType) -> str:
    """The component name of a kind; a schema without one gets Kubernetes' pattern."""
    if rt.schema.ref:
        return rt.schema.ref
    short = rt.group.split(".")[0] if rt.group else "core"
    return f"io.k8s.api.{short}.{rt.version}.{rt.kind}"


def gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


def _list_schema(rt: ResourceType, ref: str) -> dict[str, Any]:
    return {
        "description": f"A list of {rt.kind} objects.",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string", "description": "Versioned schema of this list."},
            "items": {"type": "array", "items": {"allOf": [ref_to(ref)], "default": {}}},
            "kind": {"type": "string", "description": f"Always {rt.kind}List."},
            "metadata": {"allOf": [ref_to(meta.LIST_META.ref)], "default": {}},
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [gvk(rt.group, rt.version, f"{rt.kind}List")],
    }


def _publish_kind(components: ComponentSet, rt: ResourceType) -> None:
    ref = kind_ref(rt)
    schema: Schema = rt.schema if rt.schema.ref else replace(rt.schema, ref=ref)
    components.publish(
        schema, {"x-kubernetes-group-version-kind": [gvk(rt.group, rt.version, rt.kind)]}
    )
    components.schemas[f"{ref}List"] = _list_schema(rt, ref)
    components.publish(meta.LIST_META)


def _publish_shared(components: ComponentSet) -> None:
    components.publish(meta.STATUS)
    components.publish(meta.DELETE_OPTIONS)
    components.publish(meta.WATCH_EVENT)
    components.schemas[PATCH_REF] = {
        "description": "A patch body; its form is given by the request's Content-Type.",
        "type": "object",
    }


def build_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    components = ComponentSet()
    _publish_shared(components)
    paths: dict[str, Any] = {}
    for rt in sorted(types, key=lambda t: t.plural):
        _publish_kind(components, rt)
        paths.update(resource_paths(rt, kind_ref(rt), components))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(components.schemas.items()))},
    }


class OpenAPIDocuments:
    """Every group/version document of one registry, built on first use."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._docs: dict[str, Document | None] = {}
        self._size = -1
        self._lock = threading.Lock()

    def document(self, group: str, version: str) -> Document | None:
        key = group_version_path(group, version)
        with self._lock:
            self._forget_if_registry_grew()
            if key not in self._docs:
                body = build_document(self._registry, group, version)
                self._docs[key] = None if body is None else _document(body)
            return self._docs[key]

    def index(self) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        for group, versions in self._registry.groups():
            for version in versions:
                doc = self.document(group, version)
                if doc is None:
                    continue
                key = group_version_path(group, version)
                paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={doc.hash}"}
        return {"paths": dict(sorted(paths.items()))}

    def _forget_if_registry_grew(self) -> None:
        size = len(self._registry.all())
        if size != self._size:
            self._docs.clear()
            self._size = size


def _document(body: dict[str, Any]) -> Document:
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return Document(body=body, raw=raw, hash=hashlib.sha512(raw).hexdigest().upper())


_CACHE: weakref.WeakKeyDictionary[Registry, OpenAPIDocuments] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def documents_for(registry: Registry) -> OpenAPIDocuments:
    """The cached documents of a registry (one set per registry object)."""
    with _CACHE_LOCK:
        docs = _CACHE.get(registry)
        if docs is None:
            docs = _CACHE[registry] = OpenAPIDocuments(registry)
        return docs


def openapi_v3_index(registry: Registry) -> dict[str, Any]:
    """``GET /openapi/v3``: one entry per group/version with a content hash."""
    return documents_for(registry).index()


def openapi_v3_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """``GET /openapi/v3/api/v1`` etc.; None when the group/version is not served."""
    doc = documents_for(registry).document(group, version)
    return None if doc is None else doc.body


def openapi_v3_document_bytes(registry: Registry, group: str, version: str) -> bytes | None:
    """The same document already encoded, for the handler to send as is."""
    doc = documents_for(registry).document(group, version)
    return None if doc is None else doc.raw
