"""The generic REST handlers: one set of verbs for every kind.

A request is resolved to a :class:`Target`, its body decoded and checked,
then handed to :class:`ObjectStore`; kind-specific behaviour comes from the
ResourceType hooks and from ``subresources.py``, never from branches here.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from corral.api import subresources
from corral.api.admission import require_live_namespace
from corral.api.admit import admit
from corral.api.authz.endpoints import custom_handler
from corral.api.codec import deep_copy
from corral.api.content import decode_object, media_type, parse_json
from corral.api.context import ServerContext
from corral.api.errors import ApiError, BadRequest, MethodNotAllowed, UnsupportedMediaType
from corral.api.listwatch import Filter, list_objects, parse_resource_version
from corral.api.objects import DeleteOptions
from corral.api.patch import apply_patch, apply_status_patch, update_managed_fields
from corral.api.patch.managed_fields import created_managed_fields
from corral.api.paths import Target, resolve
from corral.api.prune import prune_unknown
from corral.api.selectors import parse_field_selector, parse_label_selector
from corral.api.tables import table, wants_table
from corral.api.watchstream import serve_watch
from corral.clock import format_timestamp
from corral.resources.schema_check import (
    check_changed_fields,
    check_fields,
    decode_error,
    strict_error,
    strict_warnings,
)
from corral.resources.types import ResourceType

Obj = dict[str, Any]

PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _warning_headers(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    # One header line per warning would be correct HTTP; aiohttp's multidict
    # response headers take a joined value, which clients split on ", 299".
    return {"Warning": ", ".join(f'299 - "{w}"' for w in warnings[:20])}


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise BadRequest(f'dryRun: Unsupported value: "{v}": supported values: "All"')
    return bool(values)


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)  # type: ignore[arg-type]
    except ValueError:
        raise BadRequest(f'{name}: Invalid value: "{raw}": must be an integer') from None


class RestHandlers:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        # Status writes and bindings read the stored pod this process's
        # watch fan-out has most likely just parsed: share that parse.
        ctx.objects.shared_decode = ctx.watch_fanout.decode

    # -- entry ---------------------------------------------------------------

    async def core(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request, "", "v1", request.match_info["tail"])

    async def grouped(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        return await self._dispatch(request, info["group"], info["version"], info["tail"])

    async def _dispatch(self, request: web.Request, group: str, version: str, tail: str) -> web.StreamResponse:
        target = resolve(self.ctx.registry, group, version, tail.split("/"), request.path)
        custom = custom_handler(target.rt, target.subresource, request.method)
        if custom is not None:  # kinds that answer instead of storing (reviews, tokens)
            return await custom(self, request, target)
        if target.subresource:
            return await subresources.handle(self, request, target)
        method = request.method
        if target.is_collection:
            if method == "GET":
                return await self.list_or_watch(request, target)
            if method == "POST":
                return await self.create(request, target)
            if method == "DELETE":
                return await self.delete_collection(request, target)
        else:
            if method == "GET":
                return await self.get(request, target)
            if method == "PUT":
                return await self.replace(request, target)
            if method == "PATCH":
                return await self.patch(request, target)
            if method == "DELETE":
                return await self.delete(request, target)
        raise MethodNotAllowed(f"the server does not allow this method on the requested resource ({method})")

    # -- shared steps --------------------------------------------------------

    async def read_object(self, request: web.Request, target: Target) -> tuple[Obj, list[str]]:
        """Decode, check type meta, drop unknown fields (or refuse them under
        Strict); returns the object and the warnings to send."""
        body = await request.read()
        obj = decode_object(body, request.headers.get("Content-Type"))
        self.check_type_meta(target.rt, obj)
        return obj, self.field_validation(request, target.rt, obj)

    def check_type_meta(self, rt: ResourceType, obj: Obj) -> None:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version and api_version != rt.api_version:
            raise BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API version ({rt.api_version})"
            )
        if kind and kind != rt.kind:
            raise BadRequest(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        if not isinstance(obj.get("metadata", {}), dict):
            raise BadRequest("metadata: Invalid value: must be an object")

    def field_validation(self, request: web.Request, rt: ResourceType, obj: Obj, old: Obj | None = None) -> list[str]:
        """Wrong types are a 400 (Kubernetes fails to decode them); unknown
        fields are refused under Strict, else dropped, with warnings under Warn.
        With the stored ``old``, only what differs from it is walked."""
        mode = request.query.get("fieldValidation", "Warn")
        if mode not in ("Strict", "Warn", "Ignore"):
            raise BadRequest(f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", "Strict", "Warn"')
        report = check_fields(obj, rt.schema) if old is None else check_changed_fields(obj, old, rt.schema)
        if report.type_errors:
            raise decode_error(report, kind=rt.kind, version=rt.version)
        if not report.unknown:
            return []
        if mode == "Strict":
            raise strict_error(report.unknown, kind=rt.kind, version=rt.version)
        if old is None:
            prune_unknown(obj, rt.schema)
        else:
            _prune_unshared(obj, old, rt.schema)
        return strict_warnings(report.unknown) if mode == "Warn" else []

    def namespace_of(self, target: Target, obj: Obj) -> str | None:
        if not target.rt.namespaced:
            return None
        meta = obj.setdefault("metadata", {})
        body_ns = meta.get("namespace")
        ns = target.namespace or body_ns or "default"
        if body_ns and body_ns != ns:
            raise BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        return ns

    # -- verbs ---------------------------------------------------------------

    async def get(self, request: web.Request, target: Target) -> web.StreamResponse:
        obj = await self.ctx.objects.get(target.rt, target.namespace, target.name or "")
        if wants_table(request.headers.get("Accept", "")):
            now = self.ctx.clock.now()
            return json_response(table(target.rt, [obj], now, include=request.query.get("includeObject", "Metadata")))
        return json_response(obj)

    def _filter(self, request: web.Request, rt: ResourceType) -> Filter:
        labels = parse_label_selector(request.query.get("labelSelector"))
        allowed = {"metadata.name"} | ({"metadata.namespace"} if rt.namespaced else set())
        try:
            allowed |= set(rt.field_selectors({"metadata": {}, "spec": {}, "status": {}}))
        except (KeyError, TypeError, AttributeError):
            pass
        fields = parse_field_selector(request.query.get("fieldSelector"), allowed)
        return Filter(labels, fields)

    async def list_or_watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        flt = self._filter(request, target.rt)
        if request.query.get("watch") in ("1", "true", "True"):
            return await serve_watch(self.ctx, request, target, flt)
        limit = _int_param(request, "limit") or 0
        page = await list_objects(
            self.ctx.store, target.rt, target.namespace, flt,
            limit=limit,
            continue_token=request.query.get("continue", ""),
            resource_version=request.query.get("resourceVersion"),
            resource_version_match=request.query.get("resourceVersionMatch"),
        )
        rv = str(page.revision)
        if wants_table(request.headers.get("Accept", "")):
            now = self.ctx.clock.now()
            return json_response(table(
                target.rt, page.items, now, resource_version=rv, continue_token=page.continue_token,
                include=request.query.get("includeObject", "Metadata"),
            ))
        meta: dict[str, Any] = {"resourceVersion": rv}
        if page.continue_token:
            meta["continue"] = page.continue_token
        return json_response({
            "kind": f"{target.rt.kind}List",
            "apiVersion": target.rt.api_version,
            "metadata": meta,
            "items": page.items,
        })

    async def create(self, request: web.Request, target: Target) -> web.StreamResponse:
        obj, warnings = await self.read_object(request, target)
        created = await self.create_object(request, target, obj)
        return json_response(created, 201, _warning_headers(warnings))

    async def create_object(self, request: web.Request, target: Target, obj: Obj, *, record: bool = True) -> Obj:
        """Admission, then the write. ``record`` is off for server-side apply,
        which has written its own managedFields."""
        rt = target.rt
        ns = self.namespace_of(target, obj)
        if ns is not None:
            await require_live_namespace(self.ctx.objects, self.ctx.registry, ns)
        if _is_service(rt):
            rt.defaulter(obj)
            await self.ctx.services.allocate(self.ctx.objects, rt, obj, ns or "", dry_run=_dry_run(request))
        await admit(request, target, obj, None)
        if record:
            self.record_manager(request, rt, None, obj, "Update")
        return await self.ctx.objects.create(rt, ns, obj, dry_run=_dry_run(request))

    def record_manager(self, request: web.Request, rt: ResourceType, old: Obj | None, new: Obj, operation: str,
                       subresource: str | None = None, now: str | None = None) -> None:
        """managedFields for ordinary writes, as Kubernetes records them (a
        status write in an entry of its own, ``subresource: status``);
        ``now`` is the write's timestamp if the caller has taken it."""
        manager = request.query.get("fieldManager") or _manager_from_agent(request.headers.get("User-Agent", ""))
        now = now or format_timestamp(self.ctx.clock.now())
        if old is None:
            entries = created_managed_fields(new, manager, operation, rt.api_version, now, rt.schema)
            if entries is not None:
                new.setdefault("metadata", {})["managedFields"] = entries
                return
        updated = update_managed_fields(old, new, manager, operation, rt.api_version, now, rt.schema,
                                        subresource="status" if subresource == "status" else "")
        new.setdefault("metadata", {})["managedFields"] = updated.get("metadata", {}).get("managedFields", [])

    async def replace(self, request: web.Request, target: Target) -> web.StreamResponse:
        body = await request.read()
        obj = decode_object(body, request.headers.get("Content-Type"))
        self.check_type_meta(target.rt, obj)
        warnings: list[str] | None = None

        async def transform(current: Obj) -> Obj:
            nonlocal warnings
            if warnings is None:  # once, against the first object read (what equals it was checked)
                warnings = self.field_validation(request, target.rt, obj, current)
            await admit(request, target, obj, current)
            self.record_manager(request, target.rt, current, obj, "Update", target.subresource)
            return obj

        try:
            updated = await self._replace(request, target, obj, transform)
        except ApiError:
            if warnings is None:  # Kubernetes decodes the body before anything else: its errors come first
                self.field_validation(request, target.rt, obj)
            raise
        return json_response(updated, 200, _warning_headers(warnings or []))

    async def _replace(self, request: web.Request, target: Target, obj: Obj, transform: Any) -> Obj:
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != target.name:
            raise BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({target.name})"
            )
        meta["name"] = target.name
        self.namespace_of(target, obj)
        expected_rv = meta.get("resourceVersion") or None
        if expected_rv:
            parse_resource_version(expected_rv, "metadata.resourceVersion")
        return await self.ctx.objects.update(
            target.rt, target.namespace, target.name or "", transform,
            expected_rv=expected_rv, subresource=target.subresource, dry_run=_dry_run(request),
            transform_reads_only=True,
        )

    async def patch(self, request: web.Request, target: Target) -> web.StreamResponse:
        content_type = media_type(request.headers.get("Content-Type"))
        if content_type not in PATCH_TYPES:
            raise UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types include: {', '.join(PATCH_TYPES)}"
            )
        body = await request.read()
        if not body:
            raise BadRequest("the request body is empty")
        rt = target.rt
        force = request.query.get("force") in ("true", "1")
        manager = request.query.get("fieldManager")
        is_apply = content_type == "application/apply-patch+yaml"
        if is_apply and not manager:
            raise BadRequest("PATCH, application/apply-patch+yaml requests must supply a fieldManager")
        warnings: list[str] = []
        now = format_timestamp(self.ctx.clock.now())

        async def transform(current: Obj) -> Obj:
            # apply_patch never modifies current and shares nothing with its
            # result; admission and record_manager only read the old object.
            before = current
            patched = None
            if target.subresource == "status" and not force:
                patched = apply_status_patch(current, body, content_type, rt.schema)
            if patched is None:
                patched = apply_patch(current, body, content_type, rt.schema, field_manager=manager, force=force,
                                      now=now)
            self.check_type_meta(rt, patched)
            warnings.extend(self.field_validation(request, rt, patched, before))
            await admit(request, target, patched, before)
            if not is_apply:
                self.record_manager(request, rt, before, patched, "Update", target.subresource, now)
            elif target.subresource == "status":
                _keep_managed_fields(patched, before)
            return patched

        async def create_missing() -> Obj:
            obj = apply_patch({}, body, content_type, rt.schema, field_manager=manager, force=force, now=now)
            self.check_type_meta(rt, obj)
            warnings.extend(self.field_validation(request, rt, obj))
            obj.setdefault("metadata", {})["name"] = target.name
            return await self.create_object(request, target, obj, record=False)

        updated = await self.ctx.objects.update(
            rt, target.namespace, target.name or "", transform,
            subresource=target.subresource, dry_run=_dry_run(request),
            create_missing=create_missing if is_apply and not target.subresource else None,
            transform_reads_only=True,
        )
        return json_response(updated, 200, _warning_headers(warnings))

    async def delete_options(self, request: web.Request) -> DeleteOptions:
        opts = DeleteOptions(dry_run=_dry_run(request))
        body = await request.read()
        if body:
            mt = media_type(request.headers.get("Content-Type"))
            if mt not in ("application/json", ""):
                raise UnsupportedMediaType(f"DeleteOptions must be JSON, not {mt}")
            data = parse_json(body)
            if not isinstance(data, dict):
                raise BadRequest("DeleteOptions must be an object")
            self._options_from(opts, data)
        q = request.query
        if (grace := _int_param(request, "gracePeriodSeconds")) is not None:
            opts.grace_period_seconds = grace
        if q.get("propagationPolicy"):
            opts.propagation_policy = q["propagationPolicy"]
        if q.get("orphanDependents") in ("true", "false"):
            opts.propagation_policy = "Orphan" if q["orphanDependents"] == "true" else "Background"
        if opts.propagation_policy not in (None, "Background", "Foreground", "Orphan"):
            raise BadRequest(
                f'propagationPolicy: Unsupported value: "{opts.propagation_policy}": '
                'supported values: "Background", "Foreground", "Orphan"'
            )
        return opts

    @staticmethod
    def _options_from(opts: DeleteOptions, data: Obj) -> None:
        grace = data.get("gracePeriodSeconds")
        if grace is not None:
            if not isinstance(grace, int):
                raise BadRequest("gracePeriodSeconds: Invalid value: must be an integer")
            opts.grace_period_seconds = grace
        if data.get("propagationPolicy"):
            opts.propagation_policy = data["propagationPolicy"]
        if data.get("orphanDependents") is not None:
            opts.propagation_policy = "Orphan" if data["orphanDependents"] else "Background"
        pre = data.get("preconditions") or {}
        opts.precondition_uid = pre.get("uid")
        opts.precondition_resource_version = pre.get("resourceVersion")
        if data.get("dryRun"):
            opts.dry_run = True

    async def delete(self, request: web.Request, target: Target) -> web.StreamResponse:
        opts = await self.delete_options(request)
        obj, gone = await self.ctx.objects.delete(target.rt, target.namespace, target.name or "", opts)
        await self._after_delete(target.rt, obj, gone, opts)
        return json_response(obj, 200)

    async def _after_delete(self, rt: ResourceType, obj: Obj, gone: bool, opts: DeleteOptions) -> None:
        """A Service removed for good gives back its address and ports."""
        if gone and not opts.dry_run and _is_service(rt):
            await self.ctx.services.release(self.ctx.objects, obj)

    async def delete_collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        opts = await self.delete_options(request)
        flt = self._filter(request, target.rt)
        page = await list_objects(self.ctx.store, target.rt, target.namespace, flt)
        deleted = []
        for obj in page.items:
            meta = obj["metadata"]
            try:
                gone, removed = await self.ctx.objects.delete(target.rt, meta.get("namespace"), meta["name"], opts)
                deleted.append(gone)
                await self._after_delete(target.rt, gone, removed, opts)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        return json_response({
            "kind": f"{target.rt.kind}List",
            "apiVersion": target.rt.api_version,
            "metadata": {"resourceVersion": str(page.revision)},
            "items": deleted,
        })


def _prune_unshared(obj: Obj, old: Obj, schema: Any) -> None:
    """``prune_unknown`` of the top-level values ``obj`` does not share with
    the stored ``old``: a status patch's result shares the pod's spec with
    the stored version, which the watch fan-out's cache holds for every
    watcher and must never be modified (and only what changed can hold an
    unknown field the client sent). The others are pruned as copies: a
    merge patch's status shares the maps it left alone with the stored
    status (this runs only when there is an unknown field to drop)."""
    for key in list(obj):
        value = obj[key]
        shared = isinstance(value, dict | list) and key in old and value is old[key]
        one = {key: None if shared else deep_copy(value)}  # a shared value: only its key is judged
        prune_unknown(one, schema)
        if key not in one:
            del obj[key]
        elif not shared:
            obj[key] = one[key]


def _keep_managed_fields(new: Obj, old: Obj) -> None:
    """Server-side apply knows no subresources: through status it would
    record the applied status as the manager's whole configuration and drop
    its main-resource fields. A status write keeps the stored entries then
    (as every status write did before they were recorded at all)."""
    stored = (old.get("metadata") or {}).get("managedFields")
    meta = new.setdefault("metadata", {})
    if stored is None:
        meta.pop("managedFields", None)
    else:
        meta["managedFields"] = stored


def _is_service(rt: ResourceType) -> bool:
    return rt.kind == "Service" and rt.group == ""


def _manager_from_agent(user_agent: str) -> str:
    """Kubernetes names an unnamed manager after the client's user agent."""
    name = user_agent.split("/", 1)[0].strip()
    return name[:128] or "unknown"
