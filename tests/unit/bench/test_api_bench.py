"""bench/api.py's wrk load generator: reading api_wrk.lua's summary (any
unexpected answer fails the run), checking creates against the server's
list, the options, and the Lua script itself against a small local HTTP
server that records what wrk sent."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

_PATH = Path(__file__).resolve().parents[3] / "bench" / "api.py"
_spec = importlib.util.spec_from_file_location("bench_api_under_test", _PATH)
assert _spec is not None and _spec.loader is not None
api = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = api  # dataclasses look their module up there
_spec.loader.exec_module(api)


def summary_line(**overrides: Any) -> str:
    raw: dict[str, Any] = {
        "requests": 6000, "duration_us": 5_000_000, "ok": 6000, "unexpected": 0, "first_unexpected": "",
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
        "latency_us": {"p50": 24_507, "p99": 61_652, "max": 90_286},
    }
    raw.update(overrides)
    return api.WRK_MARK + json.dumps(raw)


WRK_CHATTER = "Running 5s test @ https://127.0.0.1:1/x\n  1 threads and 32 connections\n"


def test_a_clean_summary_gives_rate_and_latencies_in_ms() -> None:
    got = api.parse_wrk_summary(WRK_CHATTER + summary_line() + "\nRequests/sec: 1200\n", "wrk create")
    assert got.requests == 6000
    assert got.seconds == 5.0
    assert got.rate == 1200.0
    assert got.latency_ms == {"p50_ms": 24.507, "p99_ms": 61.652, "max_ms": 90.286}


def test_an_unexpected_status_fails_the_run_and_shows_the_first() -> None:
    line = summary_line(ok=5990, unexpected=10, first_unexpected='409 {"reason":"AlreadyExists"}',
                        errors={"connect": 0, "read": 0, "write": 0, "status": 10, "timeout": 0})
    with pytest.raises(api.BenchError, match=r"of 6000 requests 10 had an unexpected status.*AlreadyExists"):
        api.parse_wrk_summary(line, "wrk create")


@pytest.mark.parametrize("kind", ["connect", "read", "write", "timeout"])
def test_socket_errors_and_timeouts_fail_the_run(kind: str) -> None:
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0, kind: 3}
    with pytest.raises(api.BenchError, match=f"'{kind}': 3"):
        api.parse_wrk_summary(summary_line(errors=errors), "wrk get")


@pytest.mark.parametrize("output", [WRK_CHATTER, summary_line() + "\n" + summary_line()])
def test_no_summary_or_two_are_an_error(output: str) -> None:
    with pytest.raises(api.BenchError, match="not one"):
        api.parse_wrk_summary(output, "wrk create")


@pytest.mark.parametrize("line", [api.WRK_MARK + "{not json", api.WRK_MARK + '{"requests": 1}',
                                  summary_line(errors=[1, 2])])
def test_a_malformed_summary_is_an_error(line: str) -> None:
    with pytest.raises(api.BenchError, match="malformed wrk summary"):
        api.parse_wrk_summary(line, "wrk create")


@pytest.mark.parametrize("overrides", [{"requests": 0, "ok": 0}, {"ok": 5999}, {"duration_us": 0}])
def test_nothing_done_or_answers_missing_is_an_error(overrides: dict[str, int]) -> None:
    with pytest.raises(api.BenchError, match="as expected"):
        api.parse_wrk_summary(summary_line(**overrides), "wrk create")


def test_created_objects_must_all_be_listed_with_at_most_the_in_flight_ones_more() -> None:
    names = [f"cm-run-t1-{i}" for i in range(1, 104)] + ["cm-warm-t1-1", "kube-root-ca.crt"]
    assert api.check_created(names, "cm-run-", 100, 32, "creates") == 103
    assert api.check_created(names, "cm-run-", 103, 32, "creates") == 103
    with pytest.raises(api.BenchError, match="wrk saw 104 creates answered, the server lists 103"):
        api.check_created(names, "cm-run-", 104, 32, "creates")
    with pytest.raises(api.BenchError, match="at most 2 more"):
        api.check_created(names, "cm-run-", 100, 2, "creates")


def test_server_args_leave_a_single_process_server_alone() -> None:
    assert api.server_args(1) == []
    assert api.server_args(3) == ["--api-workers", "3"]


def test_options_default_to_aiohttp_and_one_server_process() -> None:
    args = api.parse_args([])
    assert (args.client, args.server_workers, args.wrk_seconds) == ("aiohttp", 1, 5)


@pytest.mark.parametrize("argv", [["--server-workers", "0"],
                                  ["--client", "wrk", "--wrk-threads", "33"],
                                  ["--client", "wrk", "--wrk-seconds", "0"],
                                  ["--client", "wrk", "--wrk", "/nonexistent/wrk"]])
def test_bad_options_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        api.parse_args(argv)
    assert "--" in capsys.readouterr().err


# -- api_wrk.lua against a recording HTTP server ------------------------------

WRK = shutil.which("wrk")
needs_wrk = pytest.mark.skipif(WRK is None, reason="wrk is not installed")


class Child:
    """What run_wrk needs of a CorralChild: the token."""

    def token(self) -> str:
        return "tok-123"


async def recording_server(status: int) -> tuple[web.AppRunner, str, list[tuple[str, str, str, bytes]]]:
    seen: list[tuple[str, str, str, bytes]] = []

    async def handle(req: web.Request) -> web.Response:
        body = await req.read()
        seen.append((req.method, req.path, req.headers.get("Authorization", ""), body))
        return web.Response(status=status if req.method == "POST" else 200, body=b"{}",
                            content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/api/v1/namespaces/ns/configmaps", seen


def wrk_args() -> argparse.Namespace:
    assert WRK is not None
    return api.parse_args(["--client", "wrk", "--clients", "2", "--wrk", WRK])


@needs_wrk
@pytest.mark.timeout(60)
async def test_the_lua_script_creates_unique_configmaps_then_gets_the_named_ones(tmp_path: Path) -> None:
    runner, url, seen = await recording_server(201)
    try:
        created = await api.run_wrk(Child(), wrk_args(), url, 1, "create", "t7")
        posts = [s for s in seen if s[0] == "POST"]
        assert created.requests > 0 and len(posts) >= created.requests
        names = [orjson.loads(body)["metadata"]["name"] for _, _, _, body in posts]
        assert len(set(names)) == len(names)
        assert all(n.startswith("cm-t7-t1-") for n in names)
        assert all(orjson.loads(body) == orjson.loads(api.configmap(n)) for n, (*_, body) in zip(names, posts, strict=True))
        assert {(path, auth) for _, path, auth, _ in posts} == {("/api/v1/namespaces/ns/configmaps", "Bearer tok-123")}

        listed = tmp_path / "names"
        listed.write_text("a\nb\nc\n")
        seen.clear()
        got = await api.run_wrk(Child(), wrk_args(), url, 1, "get", "t7", str(listed), "1")
        assert got.requests > 0
        assert {(method, path) for method, path, _, _ in seen} == {
            ("GET", f"/api/v1/namespaces/ns/configmaps/{n}") for n in "abc"}
    finally:
        await runner.cleanup()


@needs_wrk
@pytest.mark.timeout(60)
async def test_the_lua_script_reports_a_refused_create_and_the_run_fails() -> None:
    runner, url, _ = await recording_server(409)
    try:
        with pytest.raises(api.BenchError, match="unexpected status.*409"):
            await api.run_wrk(Child(), wrk_args(), url, 1, "create", "t8")
    finally:
        await runner.cleanup()


@needs_wrk
@pytest.mark.timeout(60)
async def test_the_lua_script_needs_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoToken(Child):
        def token(self) -> str:
            return ""

    monkeypatch.setitem(os.environ, "CORRAL_BENCH_TOKEN", "")
    runner, url, _ = await recording_server(201)
    try:
        with pytest.raises(api.BenchError, match="CORRAL_BENCH_TOKEN"):
            await api.run_wrk(NoToken(), wrk_args(), url, 1, "create", "t9")
    finally:
        await runner.cleanup()
