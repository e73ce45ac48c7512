"""Proxying ``pods/log`` and ``pods/portforward`` to the agent of the pod's node.

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
            response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response
    except aiohttp.ClientError as exc:
        raise ServiceUnavailable(f"cannot reach the agent of node {pod['spec'].get('nodeName')}: {exc}") from exc


PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


async def pod_port_forward(ctx: ServerContext, request: web.Request, target: Target) -> web.StreamResponse:
    """``kubectl port-forward``: kubectl 1.32 tunnels a SPDY session through a
    WebSocket; the agent of the pod's node speaks it, and this side copies
    the WebSocket's frames both ways without looking inside. A refusal
    before the upgrade is an ordinary Status (kubectl then tries plain SPDY,
    which is refused the same way, and prints the reason)."""
    from corral.api.exec import _pipe

    pod = await ctx.objects.get(target.rt, target.namespace, target.name or "")
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise BadRequest(f"unable to forward port because pod is not running. Current status={phase}")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if request.headers.get("Upgrade", "").lower() != "websocket" or PORT_FORWARD_PROTOCOL not in offered:
        raise BadRequest(f"Upgrade request required: pods/portforward is served over WebSocket "
                         f"({PORT_FORWARD_PROTOCOL}), not SPDY")
    endpoint = await pod_endpoint(ctx, pod)
    url = f"{endpoint.url}/portForward/{target.namespace}/{target.name}"
    session = kubelet_client(ctx).session(endpoint, aiohttp.ClientTimeout(total=None, sock_connect=5))
    try:
        try:
            upstream = await session.ws_connect(url, protocols=(PORT_FORWARD_PROTOCOL,),
                                                autoping=True, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            raise _refusal(exc.status, f"unable to upgrade connection: {exc.message}") from exc
        except aiohttp.ClientError as exc:
            node = (pod.get("spec") or {}).get("nodeName")
            raise ServiceUnavailable(f"cannot reach the agent of node {node}: {exc}") from exc
        async with upstream:
            downstream = web.WebSocketResponse(protocols=(PORT_FORWARD_PROTOCOL,), max_msg_size=0)
            await downstream.prepare(request)
            await _pipe(downstream, upstream)
            return downstream
    finally:
        await session.close()
