"""The API server: routes, middleware and its life cycle.

Every request passes the same middleware: errors become ``Status`` bodies,
authentication, and a body-size bound. Routes are few and generic; kinds
come from the registry.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from corral.api import discovery, nodeproxy, readiness
from corral.api.auth import TokenAuthenticator
from corral.api.authz.keys import USER_KEY
from corral.api.content import MAX_BODY_BYTES
from corral.api.context import ServerContext, ServerSettings
from corral.api.errors import ApiError, InternalError, NotFound, RequestEntityTooLarge
from corral.api.metrics import RESOURCES as VIRTUAL
from corral.api.metrics import MetricsApi
from corral.api.rest import RestHandlers, json_response
from corral.api.slowclients import slow_client_middleware
from corral.clock import Clock, RealClock
from corral.resources.registry import Registry
from corral.store.protocol import Store

log = logging.getLogger(__name__)

CONTEXT_KEY = web.AppKey("ctx", ServerContext)
AUTH_KEY = web.AppKey("auth", TokenAuthenticator)
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _status_response(exc: ApiError) -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return json_response(exc.status(), exc.code, headers)


def error_response(request: web.Request, exc: Exception) -> web.Response | None:
    """The Status answer for an exception a handler raised; None for an aiohttp
    HTTP exception that should travel on unchanged."""
    if isinstance(exc, ApiError):
        return _status_response(exc)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return _status_response(RequestEntityTooLarge(
            f"the request body is larger than the limit of {MAX_BODY_BYTES} bytes"))
    if isinstance(exc, web.HTTPNotFound):
        return _status_response(NotFound(f"the server could not find the requested resource ({request.path})"))
    if isinstance(exc, web.HTTPMethodNotAllowed):
        from corral.api.errors import MethodNotAllowed

        return _status_response(MethodNotAllowed(f"the server does not allow this method ({request.method})"))
    if isinstance(exc, web.HTTPException):
        return None
    # a bug: say so, log it, never leak a traceback
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return _status_response(InternalError(f"internal error: {type(exc).__name__}"))


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        response = error_response(request, exc)
        if response is None:
            raise
        return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    auth = request.app[AUTH_KEY]
    request[USER_KEY] = auth.authenticate(request.headers.get("Authorization"), request.path)
    return await handler(request)


class Routes:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.rest = RestHandlers(ctx)

    async def version(self, request: web.Request) -> web.Response:
        return json_response(self.ctx.settings.version)

    async def health(self, request: web.Request) -> web.Response:
        await self.ctx.store.current_revision()
        return web.Response(text="ok")

    def _discovery(self, request: web.Request, *, core: bool, legacy: dict[str, Any]) -> web.Response:
        version = discovery.wants_aggregated(request.headers.get("Accept", ""))
        if version is None:
            return json_response(legacy)
        body = discovery.aggregated(self.ctx.registry, core=core, version=version, virtual=VIRTUAL)
        ct = discovery.AGGREGATED_V2 if version == "v2" else discovery.AGGREGATED_V2BETA1
        return web.Response(body=orjson.dumps(body), headers={"Content-Type": ct})

    async def api(self, request: web.Request) -> web.Response:
        legacy = discovery.legacy_api_versions(self.ctx.settings.advertise_address)
        return self._discovery(request, core=True, legacy=legacy)

    async def apis(self, request: web.Request) -> web.Response:
        return self._discovery(request, core=False,
                               legacy=discovery.legacy_group_list(self.ctx.registry, VIRTUAL))

    async def api_group(self, request: web.Request) -> web.Response:
        body = discovery.legacy_group(self.ctx.registry, request.match_info["group"], VIRTUAL)
        if body is None:
            raise NotFound(f"the server could not find the requested resource ({request.path})")
        return json_response(body)

    async def resource_list(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        version = request.match_info.get("version", "v1")
        body = discovery.legacy_resource_list(self.ctx.registry, group, version, VIRTUAL)
        if body is None:
            raise NotFound(f"the server could not find the requested resource ({request.path})")
        return json_response(body)

    async def openapi_index(self, request: web.Request) -> web.Response:
        from corral.api.openapi import openapi_v3_index

        return json_response(openapi_v3_index(self.ctx.registry))

    async def openapi_doc(self, request: web.Request) -> web.Response:
        from corral.api.openapi import openapi_v3_document_bytes

        path = request.match_info["path"]
        if path.startswith("api/"):
            group, version = "", path[4:]
        elif path.startswith("apis/") and path.count("/") == 2:
            _, group, version = path.split("/")
        else:
            raise NotFound(f"no OpenAPI document for {path}")
        raw = openapi_v3_document_bytes(self.ctx.registry, group, version)  # encoded once per registry
        if raw is None:
            raise NotFound(f"no OpenAPI document for {path}")
        return web.Response(body=raw, content_type="application/json",
                            headers={"Cache-Control": "public, immutable"})


def build_app(ctx: ServerContext, auth: TokenAuthenticator, security: Any = None) -> web.Application:
    """``security`` (api/security.py) adds audit, authorization and fair
    shares around the handlers; without it only tokens are checked."""
    # security's one middleware does the slow-client guard's part itself
    middlewares = [slow_client_middleware, error_middleware, auth_middleware] if security is None \
        else security.middlewares(error_middleware)
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[CONTEXT_KEY] = ctx
    app[AUTH_KEY] = auth
    if security is not None:
        security.install(app)
        # Service account issuer discovery: what lets a party outside the
        # cluster verify a pod's token (system:service-account-issuer-discovery).
        from corral.api import tokenrequest
        from corral.api.satoken import DISCOVERY_PATH, JWKS_PATH

        app.router.add_get(DISCOVERY_PATH, tokenrequest.openid_configuration)
        app.router.add_get(JWKS_PATH, tokenrequest.jwks)
    r = Routes(ctx)
    router = app.router
    router.add_get("/version", r.version)
    for path in ("/healthz", "/livez"):
        router.add_get(path, r.health)
    readiness.install(app)  # /readyz (with the leader-election role) and /metrics
    router.add_get("/api", r.api)
    router.add_get("/api/", r.api)
    router.add_get("/api/v1", r.resource_list)
    router.add_get("/apis", r.apis)
    router.add_get("/apis/", r.apis)
    router.add_get("/apis/{group}", r.api_group)
    router.add_get("/apis/{group}/{version}", r.resource_list)
    router.add_get("/openapi/v3", r.openapi_index)
    router.add_get("/openapi/v3/{path:.+}", r.openapi_doc)
    metrics = MetricsApi(ctx)
    router.add_route("*", "/apis/metrics.k8s.io/v1beta1/{tail:.+}", metrics.handle)
    for path in nodeproxy.ROUTES:  # before /api/v1/{tail}: nodes/proxy has a path after it
        router.add_route("*", path, nodeproxy.handle)
    router.add_route("*", "/api/v1/{tail:.+}", r.rest.core)
    router.add_route("*", "/apis/{group}/{version}/{tail:.+}", r.rest.grouped)
    return app


async def ensure_default_namespaces(ctx: ServerContext) -> None:
    from corral.api.errors import AlreadyExists

    rt = ctx.registry.lookup("", "v1", "namespaces")
    assert rt is not None
    for name in DEFAULT_NAMESPACES:
        if await ctx.store.get(rt.key(None, name)) is not None:
            continue
        try:
            await ctx.objects.create(rt, None, {"metadata": {"name": name}})
        except AlreadyExists:
            pass
    await _ensure_default_runtime_classes(ctx)


async def _ensure_default_runtime_classes(ctx: ServerContext) -> None:
    """RuntimeClasses ``process`` and ``docker`` exist from the start, so a pod
    can name either without setup (an admin may delete or add others)."""
    from corral.api.errors import AlreadyExists
    from corral.resources.runtimeclasses import default_runtime_classes

    rt = ctx.registry.lookup("node.k8s.io", "v1", "runtimeclasses")
    if rt is None:
        return
    for body in default_runtime_classes():
        if await ctx.store.get(rt.key(None, body["metadata"]["name"])) is not None:
            continue
        try:
            await ctx.objects.create(rt, None, body)
        except AlreadyExists:
            pass


def make_context(store: Store, registry: Registry | None = None, clock: Clock | None = None,
                 settings: ServerSettings | None = None) -> ServerContext:
    if registry is None:
        from corral.resources.builtin import build_registry

        registry = build_registry()
    return ServerContext(store, registry, clock or RealClock(), settings or ServerSettings())


def token_file(data_dir: Path) -> Path:
    return data_dir / "tokens.csv"
