"""Subresources: status, scale, binding, eviction, finalize and log.

``status`` reuses the generic update path with the spec/status split;
the others translate their own small request kinds (Scale, Binding,
Eviction) into a write on the parent object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from corral.api.content import decode_object
from corral.api.errors import BadRequest, Conflict, MethodNotAllowed, NotFound
from corral.api.objects import DeleteOptions, ObjectStore
from corral.api.paths import Target
from corral.api.selectors import format_label_selector
from corral.clock import format_timestamp
from corral.resources.types import FieldCause, ResourceType
from corral.resources.validation import check as check_value
from corral.resources.validation import dns1123_subdomain_errors

if TYPE_CHECKING:
    from corral.api.rest import RestHandlers

Obj = dict[str, Any]


async def handle(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    sub, method = target.subresource, request.method
    if sub == "status":
        if method == "GET":
            return await rest.get(request, target)
        if method == "PUT":
            return await rest.replace(request, target)
        if method == "PATCH":
            return await rest.patch(request, target)
    elif sub == "scale":
        return await _scale(rest, request, target)
    elif sub == "binding" and method == "POST":
        return await _binding(rest, request, target)
    elif sub == "eviction" and method == "POST":
        return await _eviction(rest, request, target)
    elif sub == "finalize" and method == "PUT":
        return await _finalize(rest, request, target)
    elif sub == "log" and method == "GET":
        from corral.api.proxy import pod_log

        return await pod_log(rest.ctx, request, target)
    elif sub == "exec" and method in ("GET", "POST"):
        from corral.api.exec import pod_exec

        return await pod_exec(rest.ctx, request, target)
    elif sub == "portforward" and method in ("GET", "POST"):
        from corral.api.exec import pod_port_forward

        return await pod_port_forward(rest.ctx, request, target)
    raise MethodNotAllowed(f"the server does not allow this method on the requested resource ({method} {sub})")


# -- scale ---------------------------------------------------------------------

def _dig(obj: Obj, path: tuple[str, ...]) -> Any:
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)  # type: ignore[assignment]
    return obj


def _scale_of(target: Target, obj: Obj) -> Obj:
    spec = target.rt.scale
    assert spec is not None
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
        "spec": {"replicas": _dig(obj, spec.replicas_path) or 0},
        "status": {
            "replicas": _dig(obj, spec.status_replicas_path) or 0,
            "selector": format_label_selector(_dig(obj, spec.selector_path)),
        },
    }


async def _scale(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    from corral.api.rest import json_response

    rt, objects = target.rt, rest.ctx.objects
    if rt.scale is None:
        raise NotFound(f"{rt.plural} have no scale subresource")
    if request.method == "GET":
        return json_response(_scale_of(target, await objects.get(rt, target.namespace, target.name or "")))
    if request.method not in ("PUT", "PATCH"):
        raise MethodNotAllowed(f"the server does not allow this method on the requested resource ({request.method} scale)")
    body = await request.read()
    content_type = request.headers.get("Content-Type")
    wanted: Obj = {}

    def transform(current: Obj) -> Obj:
        scale = _scale_of(target, current)
        if request.method == "PUT":
            new_scale = decode_object(body, content_type)
        else:
            from corral.api.content import media_type
            from corral.api.patch import apply_patch
            from corral.api.rest import PATCH_TYPES

            mt = media_type(content_type)
            if mt not in PATCH_TYPES:
                raise BadRequest(f"unsupported patch type {mt}")
            new_scale = apply_patch(scale, body, mt, _SCALE_SCHEMA, field_manager=request.query.get("fieldManager"),
                                    force=False, now=format_timestamp(rest.ctx.clock.now()))
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise BadRequest("spec.replicas: Invalid value: must be an integer")
        wanted["rv"] = (new_scale.get("metadata") or {}).get("resourceVersion")
        if wanted["rv"] and wanted["rv"] != current["metadata"]["resourceVersion"]:
            from corral.api.objects import conflict_error

            raise conflict_error(rt, target.name or "")
        node = current
        for step in rt.scale.replicas_path[:-1]:  # type: ignore[union-attr]
            node = node.setdefault(step, {})
        node[rt.scale.replicas_path[-1]] = replicas  # type: ignore[union-attr]
        return current

    updated = await objects.update(rt, target.namespace, target.name or "", transform)
    return json_response(_scale_of(target, updated))


def _scale_schema() -> Any:
    from corral.resources.schema import Schema

    integer = Schema(type="integer")
    return Schema(type="object", properties={
        "apiVersion": Schema(type="string"), "kind": Schema(type="string"),
        "metadata": Schema(type="object", preserve_unknown=True),
        "spec": Schema(type="object", properties={"replicas": integer}),
        "status": Schema(type="object", preserve_unknown=True),
    })


_SCALE_SCHEMA = _scale_schema()


# -- binding -------------------------------------------------------------------

async def _binding(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    from corral.api.rest import json_response

    binding = decode_object(await request.read(), request.headers.get("Content-Type"))
    node = ((binding.get("target") or {}).get("name") or "").strip()
    if not node:
        raise BadRequest("target.name: Required value: a binding must name a node")
    await bind_pod(rest.ctx.objects, target.rt, target.namespace, target.name or "", node,
                   format_timestamp(rest.ctx.clock.now()))
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)


async def bind_pod(objects: ObjectStore, rt: ResourceType, namespace: str | None, name: str, node: str,
                   now: str) -> Obj:
    """Set the pod's spec.nodeName and a PodScheduled=True condition, as
    Kubernetes' binding does, and nothing else. Binding writes spec and
    status together, which no client endpoint may; only the node name is
    new to judge (the rest of the pod was judged when it was stored)."""

    def change(pod: Obj) -> Obj:
        if pod["metadata"].get("deletionTimestamp"):
            raise Conflict(f"pod {name} is being deleted, cannot be assigned to a host")
        spec = pod.get("spec")
        spec = spec if isinstance(spec, dict) else {}
        if spec.get("nodeName"):
            raise Conflict(
                f'Operation cannot be fulfilled on pods/binding "{name}": '
                f"pod {name} is already assigned to node \"{spec['nodeName']}\""
            )
        pod["spec"] = {**spec, "nodeName": node}
        status = pod.get("status")
        status = status if isinstance(status, dict) else {}
        conditions = [c for c in status.get("conditions") or []
                      if not isinstance(c, dict) or c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": now})
        pod["status"] = {**status, "conditions": conditions}
        return pod

    def check(pod: Obj) -> list[FieldCause]:
        return check_value("spec.nodeName", node, dns1123_subdomain_errors(node))

    return await objects.update_fields(rt, namespace, name, change, check)


# -- eviction ------------------------------------------------------------------

async def _eviction(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    from corral.api.rest import json_response

    eviction = decode_object(await request.read(), request.headers.get("Content-Type"))
    name = (eviction.get("metadata") or {}).get("name")
    if name and name != target.name:
        raise BadRequest(f"name in URL does not match name in Eviction object ({name} vs {target.name})")
    opts = DeleteOptions()
    rest._options_from(opts, eviction.get("deleteOptions") or {})
    from corral.api.disruption import check_eviction

    pod = await rest.ctx.objects.get(target.rt, target.namespace, target.name or "")
    await check_eviction(rest.ctx, target.namespace or "", pod)
    await rest.ctx.objects.delete(target.rt, target.namespace, target.name or "", opts)
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)


# -- namespace finalize ----------------------------------------------------------

async def _finalize(rest: RestHandlers, request: web.Request, target: Target) -> web.StreamResponse:
    from corral.api.rest import json_response

    body = decode_object(await request.read(), request.headers.get("Content-Type"))
    finalizers = (body.get("spec") or {}).get("finalizers") or []

    def transform(ns: Obj) -> Obj:
        ns.setdefault("spec", {})["finalizers"] = list(finalizers)
        return ns

    updated = await rest.ctx.objects.update(target.rt, None, target.name or "", transform,
                                            subresource="finalize")
    return json_response(updated)
