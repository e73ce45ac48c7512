"""What the Docker runtime asks of the engine: a start is a create and a
start (no image or container inspect), a container just started needs no
call to be known running, and a missing image shows through the create's
answer with the pod's pull policy applied. The engine is the real one
(tests/fixtures/dockerd.py) behind a counting proxy on a Unix socket."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from corral.runtime.docker import SNAPSHOT_TTL, DockerRuntime
from corral.runtime.protocol import LogPaths, StartError
from fixtures.dockerd import Dockerd

VERSION = re.compile(r"^/v[0-9.]+")
ID = re.compile(r"/[0-9a-f]{64}(?=/|$)")


@asynccontextmanager
async def counting_proxy(sock: Path, engine_url: str) -> AsyncIterator[list[str]]:
    """Forwards every request to the engine (streams too) and records it as
    ``METHOD /path`` without the API version, with ``{id}`` for ids."""
    seen: list[str] = []
    upstream = aiohttp.ClientSession(
        connector=aiohttp.UnixConnector(path=engine_url.removeprefix("unix://"), limit=0),
        timeout=aiohttp.ClientTimeout(total=None))

    async def forward(request: web.Request) -> web.StreamResponse:
        seen.append(f"{request.method} {ID.sub('/{id}', VERSION.sub('', request.path))}")
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with upstream.request(request.method, "http://docker" + request.path_qs,
                                    data=body or None, headers=headers) as resp:
            out = web.StreamResponse(status=resp.status, headers={
                k: v for k, v in resp.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding")})
            await out.prepare(request)
            async for chunk in resp.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.UnixSite(runner, str(sock))
    await site.start()
    try:
        yield seen
    finally:
        await runner.cleanup()
        await upstream.close()


def pod(image: str, policy: str = "IfNotPresent") -> tuple[dict[str, Any], dict[str, Any]]:
    name = f"calls-{uuid.uuid4().hex[:8]}"
    container = {"name": "main", "image": image, "command": ["sleep", "300"],
                 "imagePullPolicy": policy}
    body = {"metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4())},
            "spec": {"containers": [container]}}
    return body, container


@pytest.fixture
async def engine(tmp_path: Path, dockerd: Dockerd) -> AsyncIterator[tuple[DockerRuntime, list[str]]]:
    sock = tmp_path / "engine.sock"
    async with counting_proxy(sock, dockerd.base_url) as seen:
        rt = await asyncio.to_thread(DockerRuntime.connect, str(tmp_path), f"unix://{sock}")
        assert rt is not None
        try:
            yield rt, seen
        finally:
            for handle in await rt.list():
                await rt.remove_container(handle)
            await rt.close()


def without_logs(seen: list[str]) -> list[str]:
    """The log stream is the copier's, opened beside the start."""
    return [c for c in seen if not c.endswith("/logs")]


async def test_a_start_is_a_create_and_a_start(
    tmp_path: Path, dockerd: Dockerd, engine: tuple[DockerRuntime, list[str]]
) -> None:
    rt, seen = engine
    body, container = pod(dockerd.image)
    logs = LogPaths(tmp_path / "main.log", 1 << 20)
    seen.clear()
    handle = await rt.start_container(body, container, logs, {"A": "1"})
    state = await rt.container_state(handle)
    assert state.status == "running"
    assert without_logs(seen) == ["POST /containers/create", "POST /containers/{id}/start"]

    # Past SNAPSHOT_TTL its state comes from one list of the node's containers.
    await asyncio.sleep(SNAPSHOT_TTL)
    seen.clear()
    assert (await rt.container_state(handle)).status == "running"
    assert without_logs(seen) == ["GET /containers/json"]

    # Stopped: seen as exited (the list says so; one inspect for the details).
    await rt.stop_container(handle, 0)
    state = await rt.container_state(handle)
    assert state.status == "exited" and state.exit_code == 137


async def test_a_missing_image_follows_the_pull_policy(
    tmp_path: Path, engine: tuple[DockerRuntime, list[str]]
) -> None:
    rt, seen = engine
    logs = LogPaths(tmp_path / "main.log", 1 << 20)
    absent = "corral-test/absent:1"

    body, container = pod(absent, "Never")
    seen.clear()
    with pytest.raises(StartError) as never:
        await rt.start_container(body, container, logs, {})
    assert never.value.reason == "ErrImageNeverPull" and absent in never.value.message
    assert seen == ["POST /containers/create"]  # no pull

    body, container = pod(absent, "IfNotPresent")
    seen.clear()
    with pytest.raises(StartError) as pulled:
        await rt.start_container(body, container, logs, {})
    assert pulled.value.reason == "ErrImagePull"
    assert f'Failed to pull image "{absent}"' in pulled.value.message
    assert seen[0] == "POST /containers/create" and "POST /images/create" in seen
    with pytest.raises(StartError) as again:
        await rt.start_container(body, container, logs, {})
    assert again.value.reason == "ImagePullBackOff"

    body, container = pod("Not/A-Valid:Reference")
    with pytest.raises(StartError) as bad:
        await rt.start_container(body, container, logs, {})
    assert bad.value.reason == "InvalidImageName" and "reference format" in bad.value.message
    assert not await rt.list()
