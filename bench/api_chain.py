"""CPU per request of the API server's security middleware alone, in process
(issue #5): what every request pays before and after its handler.

    .venv/bin/python bench/api_chain.py [--requests 20000]
    PYTHONPATH=/tmp/base/src .venv/bin/python bench/api_chain.py   # another tree

Starts an in-process server (``corral.testing.running_server``: token auth,
RBAC and the node authorizer, audit at Metadata, fair shares), then calls
its one middleware directly with mocked requests and a handler that answers
at once, so neither a socket nor a store write is in the figure. Three
callers, as in the scheduler bench's end-to-end mode: the admin creating a
pod (exempt from fair shares), the admin binding it, and a node (its own
token, system:node:NAME) patching the status of a pod bound to it (a
fair-share lane, the node authorizer's graph). ``chain_us_per_request`` is
process CPU (``time.process_time``) per call, the minimum of ``--rounds``.
The mocked requests carry no transport: the slow-client guard's part and
the peer address are not in the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit  # noqa: E402

from corral.agent.localidentity import ensure_node_tokens  # noqa: E402
from corral.api.rest import json_response  # noqa: E402
from corral.testing import running_server  # noqa: E402

BENCH = "api_chain"
NODE = "chain-bench-node"
NS = "default"


async def _pod_on_node(server: Any) -> str:
    async with server.client() as client:
        from corral.client.resources import PODS

        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "chain-pod", "namespace": NS},
                "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "bench:1"}]}}
        await client.create(PODS, body)
    return "chain-pod"


def _requests(server: Any, node_token: str, pod: str) -> dict[str, tuple[str, str, dict[str, str], bytes]]:
    admin = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json",
             "User-Agent": "bench-chain"}
    node = {"Authorization": f"Bearer {node_token}", "Content-Type": "application/merge-patch+json",
            "User-Agent": f"corral-hollow-node/{NODE}"}
    create = orjson.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}})
    binding = orjson.dumps({"apiVersion": "v1", "kind": "Binding", "target": {"name": NODE}})
    return {
        "create": ("POST", f"/api/v1/namespaces/{NS}/pods", admin, create),
        "binding": ("POST", f"/api/v1/namespaces/{NS}/pods/x/binding", admin, binding),
        "status_patch": ("PATCH", f"/api/v1/namespaces/{NS}/pods/{pod}/status", node,
                         b'{"status":{"phase":"Running"}}'),
    }


async def _answer(request: web.Request) -> web.StreamResponse:
    await request.read()
    return json_response({"kind": "Status", "code": 200})


async def _measure(chain: Any, app: web.Application, spec: tuple[str, str, dict[str, str], bytes],
                   count: int, profile: cProfile.Profile | None = None) -> float:
    method, path, headers, body = spec

    protocol = mock.Mock()
    protocol.transport = transport = _Transport()

    def one() -> web.Request:
        return make_mocked_request(method, path, headers=headers, app=app, payload=_payload(body),
                                   protocol=protocol, transport=transport)

    requests = [one() for _ in range(count)]
    gc.collect()
    gc.disable()  # a collection of the mocks above is no part of the chain
    try:
        if profile is not None:
            profile.enable()
        started = time.process_time()
        for req in requests:
            response = await chain(req, _answer)
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {response.body!r}")
        used = time.process_time() - started
        if profile is not None:
            profile.disable()
        return used / count * 1e6
    finally:
        gc.enable()


class _Transport:
    """A plain connection (no TLS, no slow-client guard), not a Mock: every
    call on a Mock costs more than the chain being measured."""

    def get_protocol(self) -> None:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


class _ReaderProtocol:
    _reading_paused = False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


_READER_PROTOCOL = _ReaderProtocol()


def _payload(data: bytes) -> StreamReader:
    """A request body that is all there (what the chain sees for a small body)."""
    reader = StreamReader(_READER_PROTOCOL, 2**16, loop=asyncio.get_running_loop())
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp)) as server:
            token = ensure_node_tokens(server.options.data_dir / "tokens.csv", [NODE], "api-chain")[NODE]
            pod = await _pod_on_node(server)
            await asyncio.sleep(1.5)  # the token file is re-read about once a second
            security = server.security
            app = web.Application()
            security.install(app)
            chain = security.middlewares()[0]
            profile = cProfile.Profile(time.thread_time) if args.profile else None
            for figure, spec in _requests(server, token, pod).items():
                best = min([await _measure(chain, app, spec, args.requests, profile) for _ in range(args.rounds)])
                emit(BENCH, f"chain_us_per_{figure}", round(best, 2), "us", requests=args.requests)
            if profile is not None:
                profile.dump_stats(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", default="", help="write a cProfile (thread CPU time) of the timed calls here")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
