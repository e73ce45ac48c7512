"""The API client's lean HTTP/1.1 transport against a real aiohttp server
on a Unix socket and on loopback TCP: bodies by length, chunked and by
close, keep-alive reuse, a server that closes, timeouts and bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from corral.client.http1 import Http1Error, Http1Pool, _Response

HEAD = b"Accept: application/json\r\nUser-Agent: t\r\n"


async def _app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"method": request.method, "path": request.path_qs, "body": body.decode(),
                                  "host": request.host, "peer": id(request.transport)})

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"alpha-", b"beta-" * 3000, b"gamma"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def closing(request: web.Request) -> web.Response:
        return web.Response(body=b"bye", headers={"Connection": "close"})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=b"late")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/chunked", chunked)
    app.router.add_delete("/empty", empty)
    app.router.add_get("/closing", closing)
    app.router.add_get("/slow", slow)
    return app


@pytest.fixture
async def unix_server(tmp_path: Path):
    runner = web.AppRunner(await _app())
    await runner.setup()
    path = str(tmp_path / "s.sock")
    site = web.UnixSite(runner, path)
    await site.start()
    yield path
    await runner.cleanup()


@pytest.fixture
async def tcp_server():
    runner = web.AppRunner(await _app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_requests_reuse_one_connection_and_carry_bodies(unix_server: str) -> None:
    pool = Http1Pool(unix_socket=unix_server)
    status, raw = await pool.request("http://localhost", "POST", "/echo?a=1", HEAD + b"Content-Type: text/plain\r\n",
                                     b"hello", 5)
    first = orjson.loads(raw)
    assert status == 200 and first["body"] == "hello" and first["path"] == "/echo?a=1"
    assert first["host"] == "localhost"
    _, raw = await pool.request("http://localhost", "PUT", "/echo", HEAD, None, 5)
    second = orjson.loads(raw)
    assert second["method"] == "PUT" and second["body"] == ""
    assert second["peer"] == first["peer"]  # kept alive
    pool.close()


async def test_chunked_no_content_and_connection_close(tcp_server: str) -> None:
    pool = Http1Pool()
    status, raw = await pool.request(tcp_server, "GET", "/chunked", HEAD, None, 5)
    assert status == 200 and raw == b"alpha-" + b"beta-" * 3000 + b"gamma"
    assert await pool.request(tcp_server, "DELETE", "/empty", HEAD, None, 5) == (204, b"")
    assert await pool.request(tcp_server, "GET", "/closing", HEAD, None, 5) == (200, b"bye")
    assert not pool._idle.get(tcp_server)  # the closed one was not kept
    assert (await pool.request(tcp_server, "GET", "/echo", HEAD, None, 5))[0] == 200
    pool.close()


async def test_many_concurrent_requests_stay_within_the_limit(unix_server: str) -> None:
    pool = Http1Pool(unix_socket=unix_server, limit=4)
    results = await asyncio.gather(*(pool.request("http://localhost", "POST", "/echo", HEAD, str(i).encode(), 5)
                                     for i in range(50)))
    assert sorted(int(orjson.loads(raw)["body"]) for _, raw in results) == list(range(50))
    assert len(pool._idle["http://localhost"]) <= 4
    pool.close()


async def test_a_refused_connection_was_never_sent(tmp_path: Path) -> None:
    pool = Http1Pool(unix_socket=str(tmp_path / "nobody.sock"))
    with pytest.raises(Http1Error) as info:
        await pool.request("http://localhost", "POST", "/echo", HEAD, b"x", 5)
    assert info.value.never_sent


async def test_a_timeout_closes_the_connection(unix_server: str) -> None:
    pool = Http1Pool(unix_socket=unix_server)
    with pytest.raises(TimeoutError):
        await pool.request("http://localhost", "GET", "/slow", HEAD, None, 0.2)
    assert not pool._idle.get("http://localhost")
    assert (await pool.request("http://localhost", "GET", "/echo", HEAD, None, 5))[0] == 200
    pool.close()


async def test_a_server_that_drops_the_connection_mid_answer(tmp_path: Path) -> None:
    path = str(tmp_path / "rude.sock")

    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(rude, path)
    pool = Http1Pool(unix_socket=path)
    with pytest.raises(Http1Error) as info:
        await pool.request("http://localhost", "GET", "/", HEAD, None, 5)
    assert not info.value.never_sent
    server.close()


def _parse(data: bytes, no_body: bool = False) -> _Response:
    response = _Response(no_body)
    buf = bytearray()
    for i in range(len(data)):  # byte by byte: every split point
        buf += data[i:i + 1]
        response.feed(buf)
    return response


def test_the_parser_takes_a_response_split_anywhere() -> None:
    r = _parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc")
    assert r.done and r.status == 201 and r.body() == b"abc"
    r = _parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n")
    assert r.done and r.body() == b"abcde"
    r = _parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", no_body=True)
    assert r.done and r.body() == b""


@pytest.mark.parametrize("data, error", [
    (b"SPDY/3 200 OK\r\n\r\n", "not an HTTP/1.1 response"),
    (b"HTTP/1.1 abc OK\r\n\r\n", "not an HTTP/1.1 response"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
])
def test_the_parser_refuses_what_is_not_http(data: bytes, error: str) -> None:
    with pytest.raises(Http1Error, match=error):
        _parse(data)


def test_an_endless_head_is_refused() -> None:
    with pytest.raises(Http1Error, match="too large"):
        _Response(False).feed(bytearray(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20000))


@pytest.mark.parametrize("path, query, target", [
    ("/api/v1/namespaces/default/pods", {}, "/api/v1/namespaces/default/pods"),
    ("/api/v1/namespaces/default/pods/duo/log?container=side", {}, "/api/v1/namespaces/default/pods/duo/log?container=side"),
    ("/api/v1/pods/p/log?container=side", {"tailLines": "5"}, "/api/v1/pods/p/log?container=side&tailLines=5"),
    ("/api/v1/pods", {"fieldSelector": "spec.nodeName=n 1,a!=b"},
     "/api/v1/pods?fieldSelector=spec.nodeName%3Dn%201%2Ca%21%3Db"),
    ("/apis/rbac.authorization.k8s.io/v1/clusterroles/system:kube-dns", {},
     "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:kube-dns"),
    ("/api/v1/pods/a b?x=1 2&y=%41", {}, "/api/v1/pods/a%20b?x=1%202&y=%41"),
])
def test_request_targets_keep_a_query_in_the_path(path: str, query: dict, target: str) -> None:
    from corral.client.api import request_target

    assert request_target(path, query) == target


async def test_a_connection_that_spoke_while_idle_is_not_reused(tmp_path: Path) -> None:
    path = str(tmp_path / "chatty.sock")
    connections = 0

    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 408 Request Timeout\r\n\r\n")  # unasked, while idle
            await writer.drain()

    server = await asyncio.start_unix_server(chatty, path)
    pool = Http1Pool(unix_socket=path)
    assert await pool.request("http://localhost", "GET", "/", HEAD, None, 5) == (200, b"ok")
    await asyncio.sleep(0.2)
    assert await pool.request("http://localhost", "GET", "/", HEAD, None, 5) == (200, b"ok")
    assert connections == 2
    pool.close()
    server.close()
