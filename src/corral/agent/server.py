"""The agent's HTTPS endpoint (the kubelet's port 10250, the part we need).

The API server proxies ``pods/log``, ``exec``, ``portforward``, the
stats for ``kubectl top`` and ``nodes/proxy`` (``/metrics``, the recent pod
start timelines at ``/debug/pod-starts``) here over TLS with its
kubelet-client certificate;
this side serves a certificate from the cluster CA (agent/servingcert.py),
lets only that identity in, finds the container instance and streams its
log. Errors are plain text with the right status code, which the API server
passes on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from corral.agent.exec import ExecOptions, serve_exec
from corral.agent.logs import LogOptions, stream_log
from corral.agent.servingcert import KUBELET_CLIENT_CN, ServingCertificates, caller_identity
from corral.agent.startsteps import StartSteps
from corral.clock import Clock, RealClock
from corral.runtime.protocol import ExecPlan, LogPaths

log = logging.getLogger(__name__)
POD_STARTS_PATH = "/debug/pod-starts"


@dataclass(frozen=True)
class LogTarget:
    paths: LogPaths
    finished: Callable[[], Awaitable[bool]]


class LogError(Exception):
    """Raised by a log resolver: the HTTP status and a message for the user
    (404 no such pod/container, 400 not started yet, as the kubelet says)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


LogResolver = Callable[[str, str, str, bool], Awaitable[LogTarget]]
"""(namespace, pod, container, previous) -> the instance whose log to read."""

ExecResolver = Callable[[str, str, str, ExecOptions], Awaitable[ExecPlan]]
"""(namespace, pod, container, options) -> how to run the command; raises LogError."""

ForwardResolver = Callable[[str, str], Awaitable[str]]
"""(namespace, pod) -> the address its ports are reached at; raises LogError."""

StatsSource = Callable[[], Awaitable[dict[str, Any]]]
"""The Summary document (see :mod:`corral.agent.stats`)."""


class AgentServer:
    def __init__(
        self,
        resolve: LogResolver,
        *,
        address: str = "127.0.0.1",
        port: int = 10250,
        tls: ServingCertificates | None = None,
        clock: Clock | None = None,
        resolve_exec: ExecResolver | None = None,
        stats: StatsSource | None = None,
        resolve_forward: ForwardResolver | None = None,
        steps: StartSteps | None = None,
    ) -> None:
        self.steps = steps
        self.resolve = resolve
        self.resolve_forward = resolve_forward
        self.resolve_exec = resolve_exec
        self.stats = stats
        self.address = address
        self.port = port
        self.tls = tls
        """Without it the endpoint refuses everything but /healthz (never plain-HTTP access)."""
        self.clock = clock or RealClock()
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_route("*", "/exec/{namespace}/{pod}/{container}", self._exec)
        app.router.add_get("/stats/summary", self._stats)
        app.router.add_get("/portForward/{namespace}/{pod}", self._port_forward)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get(POD_STARTS_PATH, self._pod_starts)
        return app

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        if self.tls is not None:
            self.tls.load_stored()  # a restart serves at once; a new one waits for its CSR
        site = web.TCPSite(self._runner, self.address, self.port,
                           ssl_context=self.tls.context if self.tls is not None else None)
        await site.start()
        server = site._server  # aiohttp exposes the bound socket only here
        if server is not None and server.sockets:  # type: ignore[union-attr]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)
        if self.tls is None or request.transport is None:
            return web.Response(status=401, text="Unauthorized: this endpoint is served over TLS only\n")
        identity = caller_identity(request.transport.get_extra_info("peercert"))
        if not identity:
            return web.Response(status=401, text="Unauthorized: a client certificate from the cluster CA "
                                                 "is required\n")
        if identity != KUBELET_CLIENT_CN:
            return web.Response(status=403, text=f'Forbidden: "{identity}" may not use the agent API\n')
        return await handler(request)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        if self.resolve_exec is None or request.method not in ("GET", "POST"):
            return web.Response(status=405, text="exec is not served here\n")
        try:
            opts = ExecOptions.from_query(request.query)
        except ValueError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        m = request.match_info
        try:
            plan = await self.resolve_exec(m["namespace"], m["pod"], m["container"], opts)
        except LogError as exc:
            return web.Response(status=exc.status, text=f"{exc}\n")
        return await serve_exec(request, opts, plan)

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        from corral.agent.portforward import serve_port_forward

        if self.resolve_forward is None:
            return web.Response(status=404, text="port-forward is not served here\n")
        m = request.match_info
        try:
            host = await self.resolve_forward(m["namespace"], m["pod"])
        except LogError as exc:
            return web.Response(status=exc.status, text=f"{exc}\n")
        return await serve_port_forward(request, host, f"{m['namespace']}/{m['pod']}")

    async def _stats(self, request: web.Request) -> web.Response:
        if self.stats is None:
            return web.Response(status=404, text="stats are not served here\n")
        return web.json_response(await self.stats())

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.steps is None:
            return web.Response(status=404, text="metrics are not served here\n")
        return web.Response(body=self.steps.metrics_text(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _pod_starts(self, request: web.Request) -> web.Response:
        """``{"kind": "PodStartTimelineList", "items": [...]}``, oldest first;
        ``?namespace=`` and ``?limit=`` narrow it."""
        if self.steps is None:
            return web.Response(status=404, text="pod start timelines are not served here\n")
        raw = request.query.get("limit")
        limit = None
        if raw is not None:
            if not raw.isdigit() or int(raw) < 1:
                return web.Response(status=400, text=f"limit: must be a positive integer, not {raw!r}\n")
            limit = int(raw)
        items = self.steps.timelines(request.query.get("namespace") or None, limit)
        return web.json_response({"kind": "PodStartTimelineList", "items": items})

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns = request.match_info["namespace"]
        pod = request.match_info["pod"]
        container = request.match_info["container"]
        try:
            opts = LogOptions.from_query(request.query)
        except ValueError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        try:
            target = await self.resolve(ns, pod, container, opts.previous)
        except LogError as exc:
            return web.Response(status=exc.status, text=f"{exc}\n")
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        if opts.follow:
            response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async for chunk in stream_log(
                target.paths, opts, now=self.clock.now(), finished=target.finished
            ):
                await response.write(chunk)
        except (ConnectionResetError, ConnectionError):
            log.debug("log reader for %s/%s/%s went away", ns, pod, container)
            return response
        await response.write_eof()
        return response
