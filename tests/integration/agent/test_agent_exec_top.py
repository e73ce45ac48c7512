"""kubectl exec and kubectl top with the real kubectl, through the real API
server to a real Agent (process runtime)."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
from test_agent_pod_features import (
    cluster,
    container_status,
    eventually,
    pod,
)

from corral.client.resources import PODS


def _kubectl(srv: Any, cache: Path):
    env = {**os.environ, "KUBECONFIG": str(srv.kubeconfig)}

    async def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", f"--cache-dir={cache}", *args]
        return await asyncio.to_thread(
            subprocess.run, cmd, input=input, capture_output=True, text=True, env=env, timeout=60
        )

    return run


async def _running(client: Any, name: str) -> None:
    async def check() -> bool:
        p = await client.get(PODS, name, "default")
        return "running" in container_status(p).get("state", {})

    await eventually(check, what=f"{name} running")


async def test_kubectl_exec_streams_and_exit_codes(tmp_path: Path):
    async with cluster(tmp_path) as (srv, client, _agent):
        spec = pod("shell", ["sleep", "1000"])
        spec["spec"]["containers"][0]["env"] = [{"name": "GREETING", "value": "hi there"}]
        spec["spec"]["containers"][0]["workingDir"] = str(tmp_path)
        await client.create(PODS, spec)
        await _running(client, "shell")
        kubectl = _kubectl(srv, tmp_path / "kcache")

        done = await kubectl("exec", "shell", "--", "sh", "-c", 'echo "$GREETING"; pwd; echo oops >&2')
        assert done.returncode == 0, done.stderr
        assert done.stdout.split("\n")[:2] == ["hi there", str(tmp_path)]
        assert "oops" in done.stderr

        done = await kubectl("exec", "shell", "--", "sh", "-c", "exit 3")
        assert done.returncode == 3
        assert "command terminated with exit code 3" in done.stderr

        # stdin arrives and its close ends the command
        done = await kubectl(
            "exec", "-i", "shell", "--", "sh", "-c", "tr a-z A-Z; echo end", input="piped in\n"
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "PIPED IN\nend\n"

        done = await kubectl("exec", "shell", "--", "no-such-binary")
        assert done.returncode != 0
        assert "executable file not found" in done.stderr

        done = await kubectl("exec", "shell", "-c", "nope", "--", "true")
        assert done.returncode != 0 and "container nope is not valid" in done.stderr


async def test_exec_with_tty_over_the_websocket(tmp_path: Path):
    """What ``kubectl exec -it`` sends, without a terminal in the test: a tty
    session, a resize, input, and the close of stdin (v5)."""
    async with cluster(tmp_path) as (srv, client, _agent):
        await client.create(PODS, pod("tty", ["sleep", "1000"]))
        await _running(client, "tty")
        url = (
            f"{srv.url}/api/v1/namespaces/default/pods/tty/exec?container=main"
            "&command=sh&command=-c&command=read+line%3B+stty+size%3B+echo+got+%24line"
            "&stdin=true&stdout=true&tty=true"
        )
        ctx = ssl.create_default_context(cafile=str(srv.ca_file))
        headers = {"Authorization": f"Bearer {srv.token}"}
        out = b""
        status: bytes = b""
        async with aiohttp.ClientSession() as session, session.ws_connect(
            url, headers=headers, protocols=("v5.channel.k8s.io",), ssl=ctx
        ) as ws:
            assert ws.protocol == "v5.channel.k8s.io"
            await ws.send_bytes(b'\x04{"Width":100,"Height":42}')
            await ws.send_bytes(b"\x00hello\r")
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    break
                if msg.data[0] == 1:
                    out += msg.data[1:]
                elif msg.data[0] == 3:
                    status = msg.data[1:]
        assert b"42 100" in out and b"got hello" in out
        assert b'"Success"' in status


async def test_kubectl_top_pods_and_nodes(tmp_path: Path):
    async with cluster(tmp_path) as (srv, client, agent):
        busy = pod("busy", ["sh", "-c", "while :; do :; done"])
        busy["metadata"]["labels"] = {"app": "busy"}
        await client.create(PODS, busy)
        await _running(client, "busy")
        kubectl = _kubectl(srv, tmp_path / "kcache")

        async def top_pods() -> str | None:
            done = await kubectl("top", "pods", "-l", "app=busy", "--no-headers")
            return done.stdout if done.returncode == 0 and done.stdout.strip() else None

        line = (await eventually(top_pods, what="kubectl top pods")).split()
        assert line[0] == "busy"
        millicores = int(line[1].rstrip("m"))
        # A busy loop uses up to a core; on a loaded machine it gets less, but never nothing.
        assert 50 <= millicores <= 2100, line
        assert line[2].endswith("Mi")

        done = await kubectl("top", "nodes", "--no-headers")
        assert done.returncode == 0, done.stderr
        name, cpu, cpu_pct, memory, mem_pct = done.stdout.split()
        assert name == agent.node_name and cpu.endswith("m") and cpu_pct.endswith("%")
        assert int(cpu.rstrip("m")) >= 300 and memory.endswith("Mi") and mem_pct.endswith("%")

        done = await kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope")
        assert done.returncode != 0 and "NotFound" in done.stderr
