"""Proxying ``pods/log`` to the agent of the pod's node.

The API server holds no logs: it finds the node, then streams the agent's
answer through, so ``kubectl logs -f`` follows a file on the node.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from corral.api.errors import BadRequest, ServiceUnavailable

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


async def _agent_url(ctx: ServerContext, pod: dict[str, Any]) -> str:
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise BadRequest(f"pod {pod['metadata']['name']} does not have a host assigned")
    node_rt = ctx.registry.lookup("", "v1", "nodes")
    assert node_rt is not None
    node = await ctx.objects.get(node_rt, None, node_name)
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addresses.get("InternalIP") or addresses.get("Hostname")
    if not port or not host:
        raise ServiceUnavailable(f"node {node_name} does not publish an agent endpoint")
    return f"http://{host}:{port}"


async def pod_log(ctx: ServerContext, request: web.Request, target: Target) -> web.StreamResponse:
    pod = await ctx.objects.get(target.rt, target.namespace, target.name or "")
    container = _container_name(pod, request.query.get("container"))
    base = await _agent_url(ctx, pod)
    params = {k: request.query[k] for k in LOG_PARAMS if k in request.query}
    headers = {"Authorization": f"Bearer {ctx.settings.agent_token}"} if ctx.settings.agent_token else {}
    url = f"{base}/containerLogs/{target.namespace}/{target.name}/{container}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(url, params=params, headers=headers) as upstream:
            if upstream.status != 200:
                text = (await upstream.text())[:2000]
                raise BadRequest(text or f"agent answered {upstream.status}")
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
