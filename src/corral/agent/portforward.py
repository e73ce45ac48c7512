"""``kubectl port-forward`` on the agent: the portforward.k8s.io protocol
over SPDY (tunnelled through the WebSocket the API server passes on).

For each connection it accepts locally, kubectl opens two streams with the
same ``requestID`` and ``port`` headers: an ``error`` stream (it only
reads: a message there is a failure it prints) and a ``data`` stream (the
bytes both ways). The agent connects to the port on the pod's address,
copies until the pod's side closes, then ends both streams, which is what
kubectl waits for before it forgets the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from corral.agent.spdy import CHUNK, ProtocolError, Session, Stream

log = logging.getLogger(__name__)

PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CONNECT_TIMEOUT = 10.0


@dataclass
class _Pair:
    error: Stream | None = None
    data: Stream | None = None
    started: bool = False


@dataclass
class PortForwarder:
    """The streams of one kubectl session, paired by requestID."""

    host: str
    pod: str
    session: Session | None = None
    pairs: dict[str, _Pair] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def on_stream(self, stream: Stream) -> None:
        kind = stream.headers.get("streamtype", "")
        request_id = stream.headers.get("requestid") or stream.headers.get("port", "")
        pair = self.pairs.setdefault(request_id, _Pair())
        if kind == "error":
            pair.error = stream
        elif kind == "data":
            pair.data = stream
        else:
            task = asyncio.get_running_loop().create_task(self._refuse(stream, f"unknown stream type {kind!r}"))
            self._own(task)
            return
        if pair.error is not None and pair.data is not None and not pair.started:
            pair.started = True
            self._own(asyncio.get_running_loop().create_task(self._forward(request_id, pair)))

    def _own(self, task: asyncio.Task[None]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _refuse(self, stream: Stream, message: str) -> None:
        assert self.session is not None
        await self.session.send_data(stream, message.encode(), fin=True)

    async def _forward(self, request_id: str, pair: _Pair) -> None:
        assert self.session is not None and pair.error is not None and pair.data is not None
        session, error, data = self.session, pair.error, pair.data
        try:
            port = _port(data.headers.get("port", ""))
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, port), CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            what = exc if str(exc) else type(exc).__name__
            message = f"error forwarding port {data.headers.get('port')} to pod {self.pod}: {what}"
            await session.send_data(error, message.encode(), fin=True)
            await session.close_stream(data)
            self.pairs.pop(request_id, None)
            return
        inbound = asyncio.get_running_loop().create_task(_client_to_pod(data, writer))
        try:
            while chunk := await reader.read(CHUNK):
                await session.send_data(data, chunk)
        except OSError as exc:
            log.debug("port-forward %s: the pod's side failed: %s", self.pod, exc)
        finally:
            with contextlib.suppress(Exception):  # the tunnel may be gone already
                await session.close_stream(data)
                await session.close_stream(error)
            inbound.cancel()
            with contextlib.suppress(BaseException):
                await inbound
            writer.close()
            self.pairs.pop(request_id, None)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(BaseException):
                await task


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(f"invalid port {text!r}")
    return port


async def _client_to_pod(data: Stream, writer: asyncio.StreamWriter) -> None:
    """kubectl's bytes to the pod; its half-close becomes ours."""
    while (chunk := await data.incoming.get()) is not None:
        writer.write(chunk)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def serve_port_forward(request: web.Request, host: str, pod: str) -> web.StreamResponse:
    """Accept the tunnelled SPDY session and forward until kubectl leaves."""
    ws = web.WebSocketResponse(protocols=(PROTOCOL,), max_msg_size=0, autoping=True)
    await ws.prepare(request)
    forwarder = PortForwarder(host, pod)
    session = Session(ws.send_bytes, forwarder.on_stream)
    forwarder.session = session
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await session.feed(msg.data)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
            if session.closed.is_set():
                break
    except ProtocolError as exc:
        log.warning("port-forward to %s: %s", pod, exc)
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        session.end_all()
        await forwarder.close()
        await ws.close()
    return ws
