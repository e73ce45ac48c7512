"""``metrics.k8s.io/v1beta1``: PodMetrics and NodeMetrics for ``kubectl top``.

Nothing here is stored. Each request reads the Summary of the agents of
the nodes concerned (``/stats/summary``: cumulative CPU turned into a rate
by the agent, working-set memory), with a short per-node cache so that a
burst of ``kubectl top`` calls costs one round trip per node, and answers
in the shapes metrics-server uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from corral.api.codec import decode
from corral.api.errors import MethodNotAllowed, NotFound, ServiceUnavailable
from corral.api.kubelet_client import node_endpoint
from corral.api.selectors import labels_match, parse_label_selector

if TYPE_CHECKING:
    from corral.api.context import ServerContext

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
log = logging.getLogger(__name__)
CACHE_SECONDS = 5.0
AGENT_TIMEOUT = 5.0


@dataclass(frozen=True)
class VirtualResource:
    """A resource served by its own handler, listed in discovery like a
    stored kind (group, version, plural, kind, scope, verbs)."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ("get", "list")


RESOURCES = (
    VirtualResource(GROUP, VERSION, "pods", "", "PodMetrics", True),
    VirtualResource(GROUP, VERSION, "nodes", "", "NodeMetrics", False),
)


def format_cpu(nanocores: int) -> str:
    return f"{max(nanocores, 0)}n"


def format_memory(nbytes: int) -> str:
    return f"{max(nbytes, 0) // 1024}Ki"


class MetricsSource:
    """Summaries from the agents, cached per node for a few seconds."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def summary(self, node: dict[str, Any]) -> dict[str, Any] | None:
        name = node["metadata"]["name"]
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:  # concurrent requests share one fetch
            hit = self._cache.get(name)
            if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
                return hit[1]
            body = await self._fetch(node)
            self._cache[name] = (time.monotonic(), body)
            return body

    async def _fetch(self, node: dict[str, Any]) -> dict[str, Any] | None:
        endpoint = node_endpoint(node)
        client = getattr(self.ctx.settings, "kubelet_client", None)
        if endpoint is None or client is None:
            return None
        timeout = aiohttp.ClientTimeout(total=AGENT_TIMEOUT)
        try:
            async with client.session(endpoint, timeout) as session, session.get(
                f"{endpoint.url}/stats/summary"
            ) as resp:
                if resp.status != 200:
                    return None
                body = await resp.json()
        except ServiceUnavailable as exc:
            log.warning("no metrics from node %s: %s", endpoint.node, exc)
            return None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None  # an unreachable node just has no metrics
        return body if isinstance(body, dict) else None


async def _list(ctx: ServerContext, plural: str, namespace: str | None) -> list[dict[str, Any]]:
    rt = ctx.registry.lookup("", "v1", plural)
    assert rt is not None
    out: list[dict[str, Any]] = []
    start_after = ""
    while True:
        result = await ctx.store.list(rt.prefix(namespace), start_after=start_after, limit=500)
        out.extend(decode(kv) for kv in result.items)
        if not result.more or not result.items:
            return out
        start_after = result.items[-1].key


def _window(cpu: dict[str, Any]) -> str:
    seconds = cpu.get("windowSeconds")
    return f"{float(seconds):.3f}s" if isinstance(seconds, (int, float)) else "0s"


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    out = {k: meta[k] for k in ("name", "namespace", "labels") if meta.get(k)}
    out["creationTimestamp"] = meta.get("creationTimestamp")
    return out


def pod_metrics(pod: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any] | None:
    uid = pod["metadata"].get("uid")
    for entry in summary.get("pods") or []:
        if (entry.get("podRef") or {}).get("uid") != uid:
            continue
        containers = []
        stamp, window = None, "0s"
        for c in entry.get("containers") or []:
            cpu, mem = c.get("cpu") or {}, c.get("memory") or {}
            if "usageNanoCores" not in cpu:
                return None  # no rate yet: metrics-server leaves such pods out
            stamp, window = cpu.get("time"), _window(cpu)
            containers.append({
                "name": c.get("name"),
                "usage": {
                    "cpu": format_cpu(int(cpu["usageNanoCores"])),
                    "memory": format_memory(int(mem.get("workingSetBytes", 0))),
                },
            })
        if not containers:
            return None
        return {
            "kind": "PodMetrics",
            "apiVersion": API_VERSION,
            "metadata": _meta(pod),
            "timestamp": stamp,
            "window": window,
            "containers": containers,
        }
    return None


def node_metrics(node: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any] | None:
    data = summary.get("node") or {}
    cpu, mem = data.get("cpu") or {}, data.get("memory") or {}
    if "usageNanoCores" not in cpu:
        return None
    return {
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": _meta(node),
        "timestamp": cpu.get("time"),
        "window": _window(cpu),
        "usage": {
            "cpu": format_cpu(int(cpu["usageNanoCores"])),
            "memory": format_memory(int(mem.get("workingSetBytes", 0))),
        },
    }


class MetricsApi:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.source = MetricsSource(ctx)

    async def handle(self, request: web.Request) -> web.Response:
        from corral.api.rest import json_response

        if request.method != "GET":
            raise MethodNotAllowed(f"metrics are read-only ({request.method})")
        if request.query.get("watch") in ("true", "1"):
            raise MethodNotAllowed("metrics cannot be watched")
        segs = [s for s in request.match_info["tail"].split("/") if s]
        selector = parse_label_selector(request.query.get("labelSelector"))
        if segs[:1] == ["nodes"] and len(segs) <= 2:
            return json_response(await self._nodes(segs[1] if len(segs) == 2 else None, selector))
        if segs[:1] == ["pods"] and len(segs) == 1:
            return json_response(await self._pods(None, None, selector))
        if len(segs) in (3, 4) and segs[0] == "namespaces" and segs[2] == "pods":
            name = segs[3] if len(segs) == 4 else None
            return json_response(await self._pods(segs[1], name, selector))
        raise NotFound(f"the server could not find the requested resource ({request.path})")

    async def _nodes(self, name: str | None, selector: Any) -> dict[str, Any]:
        nodes = [
            n for n in await _list(self.ctx, "nodes", None)
            if (name is None or n["metadata"]["name"] == name)
            and labels_match(selector, n["metadata"].get("labels"))
        ]
        if name is not None and not nodes:
            raise NotFound(
                    f'nodemetrics.metrics.k8s.io "{name}" not found',
                    kind="nodes", group=GROUP, name=name,
                )
        summaries = await asyncio.gather(*(self.source.summary(n) for n in nodes))
        items = [m for n, s in zip(nodes, summaries, strict=True) if s and (m := node_metrics(n, s))]
        if name is not None:
            if not items:
                raise NotFound(
                    f'nodemetrics.metrics.k8s.io "{name}" not found',
                    kind="nodes", group=GROUP, name=name,
                )
            return items[0]
        return {"kind": "NodeMetricsList", "apiVersion": API_VERSION, "metadata": {}, "items": items}

    async def _pods(self, namespace: str | None, name: str | None, selector: Any) -> dict[str, Any]:
        pods = [
            p for p in await _list(self.ctx, "pods", namespace)
            if (name is None or p["metadata"]["name"] == name)
            and labels_match(selector, p["metadata"].get("labels"))
            and (p.get("status") or {}).get("phase") == "Running"
        ]
        wanted = {(p.get("spec") or {}).get("nodeName") for p in pods} - {None, ""}
        nodes = [n for n in await _list(self.ctx, "nodes", None) if n["metadata"]["name"] in wanted]
        summaries = dict(zip(
            (n["metadata"]["name"] for n in nodes),
            await asyncio.gather(*(self.source.summary(n) for n in nodes)),
            strict=True,
        ))
        items = []
        for pod in pods:
            summary = summaries.get((pod.get("spec") or {}).get("nodeName"))
            metrics = pod_metrics(pod, summary) if summary else None
            if metrics is not None:
                items.append(metrics)
        if name is not None:
            if not items:
                raise NotFound(
                    f'podmetrics.metrics.k8s.io "{name}" not found',
                    kind="pods", group=GROUP, name=name,
                )
            return items[0]
        return {"kind": "PodMetricsList", "apiVersion": API_VERSION, "metadata": {}, "items": items}

