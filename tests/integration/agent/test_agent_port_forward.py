"""The real kubectl port-forward through the API server to a real agent."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from corral.client.resources import PODS
from fixtures.agent_cluster import cluster, container_status, eventually, pod

ECHO = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
while True:
    c, _ = s.accept()
    data = b""
    while not data.endswith(b"\\n"):
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
    c.sendall(b"echo:" + data); c.close()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(payload)
        chunks = []
        while chunk := c.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


async def test_kubectl_port_forward_carries_connections(tmp_path: Path):
    target, local, dead, dead_local = _free_port(), _free_port(), _free_port(), _free_port()
    async with cluster(tmp_path) as (srv, client, _agent):
        await client.create(PODS, pod("pf", [sys.executable, "-c", ECHO, str(target)]))

        async def running() -> bool:
            p = await client.get(PODS, "pf", "default")
            return "running" in container_status(p).get("state", {}) and p["status"].get("phase") == "Running"

        await eventually(running, what="the echo pod running")
        env = {**os.environ, "KUBECONFIG": str(srv.kubeconfig)}
        cmd = ["kubectl", f"--cache-dir={tmp_path / 'kcache'}", "port-forward", "pod/pf",
               f"{local}:{target}", f"{dead_local}:{dead}"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            first = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert "Forwarding from 127.0.0.1" in first, first + (proc.stderr.read() if proc.poll() else "")

            async def echoed() -> Any:
                try:
                    return await asyncio.to_thread(_roundtrip, local, b"hello\n")
                except OSError:
                    return None

            assert await eventually(echoed, timeout=20, what="an echo through the tunnel") == b"echo:hello\n"
            big = b"x" * 300_000 + b"\n"  # several SPDY frames each way
            assert await asyncio.to_thread(_roundtrip, local, big) == b"echo:" + big
            assert await asyncio.to_thread(_roundtrip, local, b"again\n") == b"echo:again\n"
            # Nothing listens there: kubectl reports the agent's error (and, as
            # kubectl 1.32 does on a forwarding error, ends the session).
            assert await asyncio.to_thread(_roundtrip, dead_local, b"anyone?\n") == b""
            await asyncio.to_thread(proc.wait, 20)
            assert proc.stderr is not None
            assert f"error forwarding port {dead} to pod default/pf" in proc.stderr.read()
        finally:
            proc.terminate()
            proc.wait(10)
