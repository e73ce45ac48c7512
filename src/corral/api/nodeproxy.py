"""``nodes/proxy``: ``GET /api/v1/nodes/{name}/proxy/{path}`` reaches that
node's agent, so ``kubectl get --raw /api/v1/nodes/N/proxy/metrics`` reads
its metrics and ``.../proxy/debug/pod-starts`` its recent pod start
timelines (agent/startsteps.py).

As in Kubernetes, the caller needs ``get`` on ``nodes/proxy`` (RBAC: an
administrator has it, a node identity or an ordinary user does not); the
security chain checks that before this handler runs. The agent is called
with the API server's kubelet-client certificate over mutual TLS
(api/kubelet_client.py), and its answer -- status, type, body -- is passed
through as a proxy's is. Only GET is served: the agent takes no writes on
this path, and a proxy that forwarded them would be a way to reach its
exec endpoint without ``pods/exec``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from yarl import URL

from corral.api.errors import ApiError, MethodNotAllowed, NotFound, ServiceUnavailable
from corral.api.kubelet_client import kubelet_client, node_endpoint
from corral.api.proxy import relay

if TYPE_CHECKING:
    from corral.api.context import ServerContext

ROUTES = ("/api/v1/nodes/{name}/proxy", "/api/v1/nodes/{name}/proxy/{path:.*}")
"""Registered before the generic ``/api/v1/{tail}`` route (api/server.py)."""
PASSED_HEADERS = ("Content-Type",)
"""The body is passed on decoded (aiohttp undoes a Content-Encoding)."""
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 503: "ServiceUnavailable"}


async def handle(request: web.Request) -> web.StreamResponse:
    from corral.api.server import CONTEXT_KEY

    return await node_proxy(request.app[CONTEXT_KEY], request)


async def node_proxy(ctx: ServerContext, request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed(f"the server does not allow this method on the requested resource "
                               f"({request.method} nodes/proxy): only GET is proxied to agents")
    node_rt = ctx.registry.lookup("", "v1", "nodes")
    assert node_rt is not None
    node = await ctx.objects.get(node_rt, None, name)
    endpoint = node_endpoint(node)
    if endpoint is None:
        raise ServiceUnavailable(f"node {name} does not publish an agent endpoint")
    path = request.match_info.get("path", "")
    if any(part == ".." for part in path.split("/")):
        raise NotFound(f"the server could not find the requested resource (nodes/{name}/proxy/{path})")
    url = URL(endpoint.url).with_path("/" + path).with_query(request.query)
    try:
        async with kubelet_client(ctx).session(endpoint, TIMEOUT) as session, \
                session.request(request.method, url, allow_redirects=False) as upstream:
            if upstream.status >= 400 and not upstream.content_type.endswith("json"):
                raise _refusal(upstream.status, (await upstream.text())[:2000].strip())
            headers = {h: upstream.headers[h] for h in PASSED_HEADERS if h in upstream.headers}
            return await relay(request, upstream, upstream.status, headers)
    except aiohttp.ClientError as exc:
        raise ServiceUnavailable(f"cannot reach the agent of node {name}: {exc}") from exc


def _refusal(status: int, text: str) -> ApiError:
    """The agent's plain-text refusal as a Status with its code, so kubectl
    shows the agent's words rather than "rejected for an unknown reason"."""
    error = ApiError(text or f"the agent answered {status}")
    error.code, error.reason = status, REASONS.get(status, "InternalError")
    return error
