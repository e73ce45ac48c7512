"""Proxying ``pods/log`` to the agent of the pod's node.

The API server holds no logs: it finds the node, then streams the agent's
answer through, so ``kubectl logs -f`` follows a file on the node. Agents
are called over mutual TLS (api/kubelet_client.py).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from corral.api.errors import ApiError, BadRequest, NotFound, ServiceUnavailable
from corral.api.kubelet_client import kubelet_client, pod_endpoint

if TYPE_CHECKING:
    from corral.api.context import ServerContext
    from corral.api.paths import Target

LOG_PARAMS = ("follow", "tailLines", "previous", "limitBytes", "sinceSeconds", "sinceTime", "timestamps")


def _container_name(pod: dict[str, Any], requested: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    init_names = [c["name"] for c in spec.get("initContainers") or []]
    name = pod["metadata"]["name"]
    if requested:
        if requested not in names + init_names:
            raise BadRequest(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return names[0]
    raise BadRequest(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        + (f" or one of the init containers: [{' '.join(init_names)}]" if init_names else "")
    )


async def relay(request: web.Request, upstream: aiohttp.ClientResponse, status: int,
                headers: dict[str, str]) -> web.StreamResponse:
    """Stream the agent's answer body to the caller as it comes (a followed
    log never ends); a caller that went away ends the copy quietly."""
    response = web.StreamResponse(status=status, headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
    return response


def _refusal(status: int, text: str) -> ApiError:
    """The agent's refusal as the user should see it: its 404 (no such
    container instance) stays a 404, anything else is a bad request."""
    message = text or f"agent answered {status}"
    return NotFound(message) if status == 404 else BadRequest(message)


async def pod_log(ctx: ServerContext, request: web.Request, target: Target) -> web.StreamResponse:
    pod = await ctx.objects.get(target.rt, target.namespace, target.name or "")
    container = _container_name(pod, request.query.get("container"))
    endpoint = await pod_endpoint(ctx, pod)
    params = {k: request.query[k] for k in LOG_PARAMS if k in request.query}
    url = f"{endpoint.url}/containerLogs/{target.namespace}/{target.name}/{container}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    try:
        async with kubelet_client(ctx).session(endpoint, timeout) as session, \
                session.get(url, params=params) as upstream:
            if upstream.status != 200:
                raise _refusal(upstream.status, (await upstream.text())[:2000])
            return await relay(request, upstream, 200, {"Content-Type": "text/plain"})
    except aiohttp.ClientError as exc:
        raise ServiceUnavailable(f"cannot reach the agent of node {pod['spec'].get('nodeName')}: {exc}") from exc
