"""Probe parsing, checks against real loopback servers, and thresholds."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from corral.agent.probes import (
    ProbeConfigError,
    ProbeLoop,
    ProbeResult,
    ProbeSpec,
    check,
    resolve_port,
    unhealthy_message,
)
from corral.clock import FakeClock


async def _no_exec(argv: list[str], timeout: float) -> tuple[int, str]:
    raise AssertionError("exec not expected")


def test_parse_defaults_and_bad_fields():
    spec = ProbeSpec.parse({"tcpSocket": {"port": 80}}, "p")
    assert (spec.period, spec.timeout, spec.success_threshold, spec.failure_threshold) == (10, 1, 1, 3)
    with pytest.raises(ProbeConfigError, match="exactly one"):
        ProbeSpec.parse({"tcpSocket": {"port": 1}, "exec": {"command": ["x"]}}, "p")
    with pytest.raises(ProbeConfigError, match=r"p\.periodSeconds.*>= 1"):
        ProbeSpec.parse({"exec": {"command": ["x"]}, "periodSeconds": 0}, "p")


def test_named_ports():
    container = {"ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", container, "p") == 8080
    assert resolve_port(81, container, "p") == 81
    with pytest.raises(ProbeConfigError, match="no container port named 'web'"):
        resolve_port("web", container, "p")


async def test_http_and_tcp_checks_against_real_servers():
    async def handler(request: web.Request) -> web.Response:
        status = 200 if request.path == "/ok" else 503
        assert request.headers["X-Probe"] == "yes"
        return web.Response(status=status, text="fine")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        headers = [{"name": "X-Probe", "value": "yes"}]
        ok = ProbeSpec("httpGet", {"port": port, "path": "/ok", "httpHeaders": headers})
        bad = ProbeSpec("httpGet", {"port": port, "path": "/bad", "httpHeaders": headers})
        assert (await check(ok, {}, pod_ip="127.0.0.1", run_exec=_no_exec)).ok
        result = await check(bad, {}, pod_ip="127.0.0.1", run_exec=_no_exec)
        assert not result.ok and result.output == "HTTP probe failed with statuscode: 503"
        tcp = ProbeSpec("tcpSocket", {"port": port})
        assert (await check(tcp, {}, pod_ip="127.0.0.1", run_exec=_no_exec)).ok
    finally:
        await runner.cleanup()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    result = await check(ProbeSpec("tcpSocket", {"port": closed}), {}, pod_ip="127.0.0.1", run_exec=_no_exec)
    assert not result.ok and result.output == f"dial tcp 127.0.0.1:{closed}: connect: connection refused"


async def test_exec_check_uses_the_runner():
    async def runner(argv: list[str], timeout: float) -> tuple[int, str]:
        return (0 if argv == ["good"] else 1), "said something"

    good = ProbeSpec("exec", {"command": ["good"]})
    assert (await check(good, {}, pod_ip="127.0.0.1", run_exec=runner)).ok
    result = await check(ProbeSpec("exec", {"command": ["bad"]}), {}, pod_ip="x", run_exec=runner)
    assert not result.ok and result.output == "said something"


def test_thresholds():
    seen: list[bool | None] = []
    spec = ProbeSpec("exec", {"command": ["x"]}, success_threshold=2, failure_threshold=3)

    async def never() -> ProbeResult:
        raise AssertionError

    loop = ProbeLoop("Readiness", spec, never, lambda lp: seen.append(lp.result), FakeClock())
    loop._record(ProbeResult(True))
    assert loop.result is None  # one success of two
    loop._record(ProbeResult(True))
    assert loop.result is True
    for _ in range(2):
        loop._record(ProbeResult(False, "nope"))
    assert loop.result is True  # two failures of three
    loop._record(ProbeResult(False, "nope"))
    assert loop.result is False
    assert unhealthy_message(loop) == "Readiness probe failed: nope"
    assert seen == [True, True, True, False]  # the verdict, then each failed check


async def test_probe_loop_runs_on_the_clock():
    clock = FakeClock()
    calls: list[float] = []

    async def probe() -> ProbeResult:
        calls.append(clock.monotonic())
        return ProbeResult(True)

    spec = ProbeSpec("exec", {"command": ["x"]}, initial_delay=5, period=2)
    loop = ProbeLoop("Liveness", spec, probe, lambda lp: None, clock)
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(100):  # until the loop waits on the clock
            if clock.sleepers:
                break
            await asyncio.sleep(0)
        await clock.advance(4.9)
        assert calls == []
        await clock.advance(0.1)
        assert calls == [5.0] and loop.result is True
        await clock.advance(2)
        assert calls == [5.0, 7.0]
    finally:
        task.cancel()
