"""The floor under every API request on this machine: a bare aiohttp server
on the event loop corral's API uses, driven by wrk (C), so the figure is
what the framework and the interpreter cost before any of corral's code.

    .venv/bin/python bench/http_floor.py [--seconds 5] [--connections 32]

Two handlers, one run each: ``bare`` reads the body and answers a fixed
Status; ``json`` also decodes the body with orjson, stamps a name and a uid
into its metadata and encodes it back (a create's least work). The body is
the ConfigMap `bench/api.py --client wrk` creates, so
``server_cpu_ms_per_create`` there compares with ``cpu_us_per_request``
here. Plain HTTP on 127.0.0.1 (no TLS, no auth, no store): a lower bound,
not a model. Prints one JSON line per handler.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_seconds, emit, free_port, wait_until  # noqa: E402

BENCH = "http_floor"
BODY = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "floor", "namespace": "bench"}, "data": {"k": "v" * 64}})
STATUS = b'{"kind":"Status","apiVersion":"v1","status":"Success"}'


def serve(port: int, handler: str) -> None:
    """The child: one aiohttp app on uvloop (as corral's API processes run
    where uvloop is installed, api/bootstrap.py), one route."""
    from aiohttp import web

    from corral.api.bootstrap import server_loop_factory

    async def bare(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=STATUS, status=201, content_type="application/json")

    async def json_echo(request: web.Request) -> web.Response:
        obj = orjson.loads(await request.read())
        meta = obj.setdefault("metadata", {})
        meta["name"], meta["uid"] = f"floor-{os.urandom(4).hex()}", str(uuid.uuid4())
        return web.Response(body=orjson.dumps(obj), status=201, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{tail:.*}", bare if handler == "bare" else json_echo)
    factory = server_loop_factory()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                loop=factory() if factory is not None else None)


def measure(handler: str, seconds: int, connections: int) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", handler, "--port", str(port)])
    try:
        wait_until(lambda: _listening(port), 20, f"the {handler} server on port {port}")
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
            script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                         f"wrk.body = {_lua_string(BODY)}\n")
            script.flush()
            before, t0 = cpu_seconds(server.pid), time.monotonic()
            out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name,
                                  f"http://127.0.0.1:{port}/api/v1/namespaces/bench/configmaps"],
                                 capture_output=True, text=True, check=True).stdout
            cpu, wall = cpu_seconds(server.pid) - before, time.monotonic() - t0
        requests = _requests(out)
        emit(BENCH, "cpu_us_per_request", cpu * 1e6 / requests, "us", handler=handler,
             requests_per_second=round(requests / wall, 1), server_cpu_pct=round(100 * cpu / wall, 1),
             requests=requests, connections=connections, seconds=seconds)
    finally:
        server.terminate()
        server.wait(10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _lua_string(data: bytes) -> str:
    return '"' + data.decode().replace("\\", "\\\\").replace('"', '\\"') + '"'


def _requests(wrk_output: str) -> int:
    """wrk's "N requests in Ts" line; non-2xx answers fail the run."""
    if "Non-2xx" in wrk_output or "Socket errors" in wrk_output:
        raise SystemExit(f"wrk saw failed requests:\n{wrk_output}")
    for line in wrk_output.splitlines():
        if " requests in " in line:
            return int(line.split()[0])
    raise SystemExit(f"wrk printed no request count:\n{wrk_output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve", choices=["bare", "json"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.serve)
        return
    for handler in ("bare", "json"):
        measure(handler, args.seconds, args.connections)


if __name__ == "__main__":
    main()
