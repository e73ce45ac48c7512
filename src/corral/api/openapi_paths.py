"""The ``paths`` of an OpenAPI v3 document: the REST operations of one
resource and its subresources, named and annotated as Kubernetes does
(``operationId`` like ``patchAppsV1NamespacedDeployment``,
``x-kubernetes-action``, ``x-kubernetes-group-version-kind``)."""

from __future__ import annotations

from typing import Any

from corral.api.openapi_schema import ComponentSet, ref_to
from corral.resources.schema import Schema
from corral.resources.schemas import kind_schema
from corral.resources.types import ResourceType

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)

# The kind a subresource reads and writes, when it is not the resource's own.
SUBRESOURCE_KINDS: dict[str, tuple[str, str, str]] = {
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
}


def _query(name: str, description: str, type_: str = "string") -> dict[str, Any]:
    return {
        "name": name, "in": "query", "description": description,
        "schema": {"type": type_, "uniqueItems": True},
    }


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name, "in": "path", "required": True, "description": description,
        "schema": {"type": "string", "uniqueItems": True},
    }


DRY_RUN = _query("dryRun", "When All, validate and admit the request but persist nothing.")
FIELD_MANAGER = _query("fieldManager", "Name of the actor making the change (field ownership).")
FIELD_VALIDATION = _query(
    "fieldValidation",
    "Ignore, Warn or Strict: what to do with unknown or duplicate fields in the body.",
)
FORCE = _query("force", "Take ownership of conflicting fields on apply.", "boolean")
PRETTY = _query("pretty", "Indent the output.")
NAME = _path_param("name", "Name of the object.")
NAMESPACE = _path_param("namespace", "Namespace of the object.")
LIST_PARAMS = [
    _query("allowWatchBookmarks", "Ask for BOOKMARK events in a watch.", "boolean"),
    _query("continue", "Token of the next page from a previous list."),
    _query("fieldSelector", "Select objects by fields, e.g. spec.nodeName=n1."),
    _query("labelSelector", "Select objects by labels, e.g. app=web."),
    _query("limit", "Maximum number of items in one page.", "integer"),
    _query("resourceVersion", "Read at (or watch from) this store revision."),
    _query("resourceVersionMatch", "Exact or NotOlderThan: how resourceVersion applies."),
    _query("sendInitialEvents", "Start a watch with the current objects.", "boolean"),
    _query("timeoutSeconds", "End the list or watch after this many seconds.", "integer"),
    _query("watch", "Stream changes instead of listing.", "boolean"),
]


def _camel(rt: ResourceType) -> str:
    """``CoreV1``, ``AppsV1``, ``CoordinationV1``: Kubernetes' operationId stem."""
    if not rt.group:
        group = "Core"
    else:
        group = "".join(p.capitalize() for p in rt.group.removesuffix(".k8s.io").split("."))
    return group + rt.version.capitalize()


def _json(ref: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ref}"}
    return {
        "application/json": {"schema": schema},
        "application/yaml": {"schema": schema},
        "application/vnd.kubernetes.protobuf": {"schema": schema},
    }


def _responses(ref: str, *codes: str) -> dict[str, Any]:
    out = {code: {"description": _CODE_TEXT[code], "content": _json(ref)} for code in codes}
    out["401"] = {"description": "Unauthorized"}
    return out


_CODE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}


def _op(
    verb: str, op_id: str, description: str, kind: dict[str, str], action: str,
    responses: dict[str, Any], *, params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "description": description,
        "operationId": op_id,
        "tags": [kind["group"].split(".")[0] + "_" + kind["version"] if kind["group"] else "core_" + kind["version"]],
        "responses": responses,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": kind,
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"content": body, "required": True}
    return op


def _item_ops(
    verbs: set[str], ref: str, kind: dict[str, str], stem: str, what: str
) -> dict[str, Any]:
    """get/put/patch of one object (or of one object's subresource)."""
    write = [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION]
    item: dict[str, Any] = {}
    if "get" in verbs:
        item["get"] = _op("get", f"read{stem}", f"read the specified {what}", kind, "get",
                          _responses(ref, "200"))
    if "update" in verbs:
        item["put"] = _op("put", f"replace{stem}", f"replace the specified {what}", kind, "put",
                          _responses(ref, "200", "201"), params=write, body=_json(ref))
    if "patch" in verbs:
        patch_ref = {"schema": ref_to(f"{META}.Patch")}
        item["patch"] = _op(
            "patch", f"patch{stem}", f"partially update the specified {what}", kind, "patch",
            _responses(ref, "200", "201"), params=[*write, FORCE],
            body={ct: patch_ref for ct in PATCH_TYPES},
        )
    return item


def _kind_of(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "kind": rt.kind, "version": rt.version}


def resource_paths(rt: ResourceType, ref: str, components: ComponentSet) -> dict[str, Any]:
    """Every path of one resource, keyed by URL template."""
    prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    base = f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
    scope = [NAMESPACE] if rt.namespaced else []
    named = "Namespaced" if rt.namespaced else ""
    stem = f"{_camel(rt)}{named}{rt.kind}"
    kind = _kind_of(rt)
    verbs = set(rt.verbs)
    paths: dict[str, Any] = {}

    collection: dict[str, Any] = {"parameters": [*scope, PRETTY]}
    if "list" in verbs:
        collection["get"] = _op("get", f"list{stem}", f"list or watch objects of kind {rt.kind}",
                                kind, "list", _responses(f"{ref}List", "200"), params=LIST_PARAMS)
    if "create" in verbs:
        collection["post"] = _op("post", f"create{stem}", f"create a {rt.kind}", kind, "post",
                                 _responses(ref, "200", "201", "202"),
                                 params=[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], body=_json(ref))
    if "deletecollection" in verbs:
        collection["delete"] = _op("delete", f"deletecollection{stem}",
                                   f"delete collection of {rt.kind}", kind, "deletecollection",
                                   _responses(f"{META}.Status", "200"), params=LIST_PARAMS)
    paths[base] = collection

    item = {"parameters": [NAME, *scope, PRETTY], **_item_ops(verbs, ref, kind, stem, rt.kind)}
    if "delete" in verbs:
        item["delete"] = _op("delete", f"delete{stem}", f"delete a {rt.kind}", kind, "delete",
                             _responses(f"{META}.Status", "200", "202"),
                             params=[DRY_RUN, _query("gracePeriodSeconds", "Seconds before deletion.", "integer"),
                                     _query("propagationPolicy", "Orphan, Background or Foreground.")],
                             body=_json(f"{META}.DeleteOptions"))
    paths[f"{base}/{{name}}"] = item

    if rt.namespaced and "list" in verbs:
        paths[f"{prefix}/{rt.plural}"] = {
            "parameters": [PRETTY],
            "get": _op("get", f"list{_camel(rt)}{rt.kind}ForAllNamespaces",
                       f"list or watch objects of kind {rt.kind} in all namespaces", kind, "list",
                       _responses(f"{ref}List", "200"), params=LIST_PARAMS),
        }
    for sub in rt.subresources:
        paths.update(_subresource(rt, sub, ref, base, stem, scope, components))
    return paths


def _subresource(
    rt: ResourceType, sub: str, ref: str, base: str, stem: str,
    scope: list[dict[str, Any]], components: ComponentSet,
) -> dict[str, Any]:
    path = f"{base}/{{name}}/{sub}"
    params = [NAME, *scope, PRETTY]
    suffix = sub.capitalize()
    if sub in ("status", "ephemeralcontainers", "scale", "resize"):
        sub_ref, kind = ref, _kind_of(rt)
        if sub in SUBRESOURCE_KINDS:
            sub_ref, kind = _publish_body(sub, components)
        verbs = {"get"} | ({"update", "patch"} & set(rt.verbs))
        what = f"{sub} of the {rt.kind}"
        ops = _item_ops(verbs, sub_ref, kind, f"{stem}{suffix}", what)
        return {path: {"parameters": params, **ops}}
    if sub in ("binding", "eviction"):
        sub_ref, kind = _publish_body(sub, components)
        return {path: {"parameters": params, "post": _op(
            "post", f"create{stem}{suffix}", f"create {sub} of a {rt.kind}", kind, "post",
            _responses(sub_ref, "200", "201", "202"),
            params=[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], body=_json(sub_ref))}}
    if sub == "log":
        text = {"text/plain": {"schema": {"type": "string"}}}
        return {path: {"parameters": params, "get": _op(
            "get", f"read{stem}Log", f"read log of the specified {rt.kind}", _kind_of(rt), "get",
            {"200": {"description": "OK", "content": text}, "401": {"description": "Unauthorized"}},
            params=[_query("container", "Container to read."), _query("follow", "Stream the log.", "boolean"),
                    _query("tailLines", "Lines from the end to show.", "integer")])}}
    if sub in ("exec", "attach", "portforward", "proxy"):
        text = {"*/*": {"schema": {"type": "string"}}}
        connect = {"200": {"description": "OK", "content": text}, "401": {"description": "Unauthorized"}}
        return {path: {"parameters": params, **{
            m: _op(m, f"connect{m.capitalize()}{stem}{suffix}", f"connect {m.upper()} requests to {sub} of {rt.kind}",
                   _kind_of(rt), "connect", connect)
            for m in ("get", "post")}}}
    return {}


def _publish_body(sub: str, components: ComponentSet) -> tuple[str, dict[str, str]]:
    group, version, kind = SUBRESOURCE_KINDS[sub]
    schema: Schema = kind_schema(group, version, kind)
    components.publish(schema, {"x-kubernetes-group-version-kind": [
        {"group": group, "kind": kind, "version": version}]})
    return schema.ref, {"group": group, "kind": kind, "version": version}

