"""``pods/exec`` and ``pods/portforward``: kubectl's WebSocket, forwarded frame
by frame to the agent.

kubectl 1.32 opens ``GET .../pods/P/exec?command=..`` with a WebSocket
upgrade offering ``v5.channel.k8s.io`` (and older versions). The API server
checks the pod and container, opens the same kind of WebSocket to the agent
of the pod's node (which runs the command), then accepts kubectl's upgrade
with the subprotocol the agent chose and copies frames both ways. A failure
before the upgrade is an ordinary Status error, which kubectl prints; a
failure of the command itself arrives on the status channel from the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import WSMsgType, web

from corral.api.errors import BadRequest, ServiceUnavailable
from corral.api.kubelet_client import kubelet_client, pod_endpoint
from corral.api.proxy import _container_name, _refusal

if TYPE_CHECKING:
    from corral.api.context import ServerContext
    from corral.api.paths import Target

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
EXEC_PARAMS = ("stdin", "stdout", "stderr", "tty")
PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


def _offered(request: web.Request) -> list[str]:
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    offered = [p.strip() for p in header.split(",") if p.strip()]
    return [p for p in offered if p in PROTOCOLS]


async def pod_exec(ctx: ServerContext, request: web.Request, target: Target) -> web.StreamResponse:
    # The pod and container are checked first: kubectl retries a failed
    # WebSocket upgrade with SPDY, and the user should see the real reason.
    pod = await ctx.objects.get(target.rt, target.namespace, target.name or "")
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise BadRequest(
            f"cannot exec into a container in a completed pod; current phase is {phase}"
        )
    container = _container_name(pod, request.query.get("container"))
    commands = request.query.getall("command", [])
    if not commands:
        raise BadRequest("command: Required value: you must specify at least one command")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise BadRequest(
            "Upgrade request required: pods/exec is served over WebSocket "
            f"({', '.join(PROTOCOLS)}), not SPDY"
        )
    protocols = _offered(request)
    if not protocols:
        raise BadRequest(f"exec needs one of the subprotocols {', '.join(PROTOCOLS)}")
    params: list[tuple[str, str]] = [("command", c) for c in commands]
    params += [(k, request.query[k]) for k in EXEC_PARAMS if k in request.query]
    url = f"/exec/{target.namespace}/{target.name}/{container}"
    return await _relay(ctx, request, pod, url, params, protocols)


async def pod_port_forward(ctx: ServerContext, request: web.Request, target: Target) -> web.StreamResponse:
    """``kubectl port-forward``: kubectl 1.32 tunnels a SPDY session through a
    WebSocket; the agent of the pod's node speaks it, and this side copies
    the WebSocket's frames both ways without looking inside. A refusal
    before the upgrade is an ordinary Status (kubectl then tries plain SPDY,
    which is refused the same way, and prints the reason)."""
    pod = await ctx.objects.get(target.rt, target.namespace, target.name or "")
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise BadRequest(f"unable to forward port because pod is not running. Current status={phase}")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if request.headers.get("Upgrade", "").lower() != "websocket" or PORT_FORWARD_PROTOCOL not in offered:
        raise BadRequest(f"Upgrade request required: pods/portforward is served over WebSocket "
                         f"({PORT_FORWARD_PROTOCOL}), not SPDY")
    url = f"/portForward/{target.namespace}/{target.name}"
    return await _relay(ctx, request, pod, url, [], [PORT_FORWARD_PROTOCOL])


async def _relay(ctx: ServerContext, request: web.Request, pod: dict[str, Any], path: str,
                 params: list[tuple[str, str]], protocols: list[str]) -> web.StreamResponse:
    """Open the same kind of WebSocket to the agent of the pod's node, then
    accept kubectl's upgrade with the subprotocol the agent chose and copy
    frames both ways until either side closes."""
    endpoint = await pod_endpoint(ctx, pod)
    session = kubelet_client(ctx).session(endpoint, aiohttp.ClientTimeout(total=None, sock_connect=5))
    try:
        try:
            upstream = await session.ws_connect(
                endpoint.url + path, params=params, protocols=protocols, autoping=True, max_msg_size=0,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise _refusal(exc.status, f"unable to upgrade connection: {exc.message}") from exc
        except aiohttp.ClientError as exc:
            node = (pod.get("spec") or {}).get("nodeName")
            raise ServiceUnavailable(f"cannot reach the agent of node {node}: {exc}") from exc
        async with upstream:
            downstream = web.WebSocketResponse(
                protocols=(upstream.protocol or protocols[0],), max_msg_size=0
            )
            await downstream.prepare(request)
            await _pipe(downstream, upstream)
            return downstream
    finally:
        await session.close()


async def _pipe(downstream: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Copy binary frames both ways until either side closes."""

    async def client_to_agent() -> None:
        async for msg in downstream:
            if msg.type == WSMsgType.BINARY:
                await upstream.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await upstream.send_str(msg.data)

    async def agent_to_client() -> None:
        async for msg in upstream:
            if msg.type == WSMsgType.BINARY:
                await downstream.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await downstream.send_str(msg.data)

    up = asyncio.ensure_future(client_to_agent())
    down = asyncio.ensure_future(agent_to_client())
    done, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    if down in done:
        # The agent has sent everything (the status frame last): close kubectl's side.
        await downstream.close()
    for task in pending:
        task.cancel()
    for task in (up, down):
        with contextlib.suppress(BaseException):
            await task
    if not upstream.closed:
        await upstream.close()
