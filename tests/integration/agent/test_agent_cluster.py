"""The real API server + a real Agent with the process runtime, on loopback."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from corral.agent.agent import Agent
from corral.agent.node import LEASE_DURATION
from corral.client.errors import NotFoundError
from corral.client.resources import EVENTS, LEASES, NODES, PODS
from corral.runtime.process import ProcessRuntime
from corral.testing import running_server
from fixtures.agent_cluster import NODE, cluster, container_status, eventually, pod


async def test_node_registered_with_lease(tmp_path: Path):
    async with cluster(tmp_path) as (_, client, agent):
        node = await client.get(NODES, NODE)
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == NODE and labels["kubernetes.io/os"] == "linux"
        status = node["status"]
        assert status["capacity"]["cpu"] == str(os.cpu_count())
        assert status["capacity"]["memory"].endswith("Ki") and status["capacity"]["pods"] == "110"
        ready = {c["type"]: c for c in status["conditions"]}["Ready"]
        assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
        assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == agent.port
        assert status["nodeInfo"]["containerRuntimeVersion"] == "process://corral"
        lease = await client.get(LEASES, NODE, "kube-node-lease")
        assert lease["spec"]["holderIdentity"] == NODE
        assert lease["spec"]["leaseDurationSeconds"] == LEASE_DURATION  # failover.py: seconds, not 40
        assert lease["spec"]["renewTime"].endswith("Z") and "." in lease["spec"]["renewTime"]


async def test_pod_runs_and_logs_are_served(tmp_path: Path):
    async with cluster(tmp_path) as (srv, client, agent):
        script = 'echo "hello from $HOSTNAME"; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'
        await client.create(PODS, pod("web", ["sh", "-c", script]))

        async def running() -> dict[str, Any] | None:
            p = await client.get(PODS, "web", "default")
            return p if (p.get("status") or {}).get("phase") == "Running" else None

        p = await eventually(running, what="pod Running")
        cs = container_status(p)
        assert (
            "running" in cs["state"] and cs["ready"] and cs["containerID"].startswith("process://")
        )
        assert p["status"]["podIP"] == "127.0.0.1" and p["status"]["startTime"]
        assert {c["type"]: c["status"] for c in p["status"]["conditions"]}["Ready"] == "True"

        # Straight from the agent, as an API server (its kubelet-client certificate)...
        url = f"https://127.0.0.1:{agent.port}/containerLogs/default/web/main"
        pki = srv.options.data_dir / "pki"
        as_server = ssl.create_default_context(cafile=str(srv.ca_file))
        as_server.load_cert_chain(str(pki / "kubelet-client.pem"))
        headers: dict[str, str] = {}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=as_server)) as http:
            async with http.get(url, ssl=ssl.create_default_context(cafile=str(srv.ca_file)),
                                headers={"Authorization": f"Bearer {srv.token}"}) as resp:
                assert resp.status == 401  # the admin token is no way in

            async def has_ticks() -> str | None:
                async with http.get(url, headers=headers) as resp:
                    text = await resp.text()
                return text if "tick 2" in text else None

            text = await eventually(has_ticks, what="log lines")
            assert text.startswith("hello from web\n")
            async with http.get(url, headers=headers, params={"tailLines": "1"}) as resp:
                assert len((await resp.text()).splitlines()) == 1
            async with http.get(url, headers=headers, params={"follow": "true"}) as resp:
                first = await asyncio.wait_for(resp.content.readline(), 5)
                assert first == b"hello from web\n"
        # ...and through the API server's pods/log proxy.
        body = await client.request_bytes("GET", PODS.path("default", "web", "log"))
        assert body.startswith(b"hello from web\n")

        await client.delete(PODS, "web", "default")

        async def gone() -> bool:
            try:
                await client.get(PODS, "web", "default")
            except NotFoundError:
                return True
            return False

        await eventually(gone, what="pod deleted")
        await eventually(lambda: _no_containers(agent), what="processes removed")


async def test_crashing_container_backs_off(tmp_path: Path):
    async with cluster(tmp_path) as (_, client, agent):
        await client.create(PODS, pod("crash", ["sh", "-c", "echo dying; exit 2"]))

        async def crash_looping() -> dict[str, Any] | None:
            p = await client.get(PODS, "crash", "default")
            cs = container_status(p)
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff" and cs.get("restartCount", 0) >= 1:
                return p
            return None

        p = await eventually(crash_looping, what="CrashLoopBackOff")
        cs = container_status(p)
        assert (
            "back-off 10s restarting failed container=main pod=crash_default("
            in (cs["state"]["waiting"]["message"])
        )
        last = cs["lastState"]["terminated"]
        assert last["exitCode"] == 2 and last["reason"] == "Error"
        assert p["status"]["phase"] == "Running"

        async def restarted_again() -> bool:
            cs = container_status(await client.get(PODS, "crash", "default"))
            return cs.get("restartCount", 0) >= 2

        await eventually(restarted_again, timeout=30, what="restartCount 2")

        async def backoff_event() -> bool:
            events = await client.list(EVENTS, "default")
            return any(e.get("reason") == "BackOff" for e in events.get("items", []))

        await eventually(backoff_event, what="BackOff event")


async def test_bad_spec_shows_reason_and_does_not_block_others(tmp_path: Path):
    async with cluster(tmp_path) as (_, client, agent):
        bad = pod("bad", ["no-such-command-xyz"])
        await client.create(PODS, bad)
        await client.create(PODS, pod("good", ["sleep", "1000"]))

        async def bad_reason() -> dict[str, Any] | None:
            cs = container_status(await client.get(PODS, "bad", "default"))
            waiting = (cs.get("state") or {}).get("waiting") or {}
            return waiting if waiting.get("reason") == "RunContainerError" else None

        waiting = await eventually(bad_reason, what="RunContainerError")
        assert "no-such-command-xyz" in waiting["message"]

        async def good_running() -> bool:
            p = await client.get(PODS, "good", "default")
            return (p.get("status") or {}).get("phase") == "Running"

        await eventually(good_running, what="good pod Running")

        async def failed_event() -> bool:
            events = await client.list(EVENTS, "default")
            return any(
                e.get("reason") == "Failed" and e.get("type") == "Warning"
                for e in events.get("items", [])
            )

        await eventually(failed_event, what="Warning Failed event")


async def test_deletion_kills_process_after_grace(tmp_path: Path):
    async with cluster(tmp_path) as (_, client, agent):
        # Ignores TERM: only the SIGKILL after the 1 s grace ends it.
        script = 'trap "" TERM; while true; do sleep 0.1; done'
        await client.create(
            PODS, pod("stubborn", ["sh", "-c", script], terminationGracePeriodSeconds=1)
        )

        async def running() -> bool:
            p = await client.get(PODS, "stubborn", "default")
            return (p.get("status") or {}).get("phase") == "Running"

        await eventually(running, what="Running")
        (handle,) = await agent.runtime.list()
        t0 = time.monotonic()
        await client.delete(PODS, "stubborn", "default")

        async def gone() -> bool:
            try:
                await client.get(PODS, "stubborn", "default")
            except NotFoundError:
                return True
            return False

        await eventually(gone, what="pod gone")
        assert time.monotonic() - t0 >= 0.9
        await eventually(lambda: _no_containers(agent), what="runtime empty")


async def test_restarted_agent_adopts_running_containers(tmp_path: Path):
    async with running_server(tmp_path) as srv:
        client = srv.client()
        try:
            state = tmp_path / "agent"

            def make_agent() -> Agent:
                return Agent(
                    client,
                    node_name=NODE,
                    data_dir=state,
                    runtime=ProcessRuntime(state / "runtime"),
                    port=0,
                )

            first = make_agent()
            task = asyncio.create_task(first.run())
            await asyncio.wait_for(first.ready.wait(), 30)
            await client.create(PODS, pod("keep", ["sleep", "1000"]))

            async def running() -> dict[str, Any] | None:
                p = await client.get(PODS, "keep", "default")
                return p if (p.get("status") or {}).get("phase") == "Running" else None

            before = container_status(await eventually(running, what="Running"))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

            second = make_agent()
            task = asyncio.create_task(second.run())
            await asyncio.wait_for(second.ready.wait(), 30)

            async def adopted_and_synced() -> bool:
                workers = list(second.workers.values())
                return bool(workers) and "main" in workers[0].states

            await eventually(adopted_and_synced, what="adopted container synced")
            after = container_status(await client.get(PODS, "keep", "default"))
            assert after["containerID"] == before["containerID"]
            assert after["restartCount"] == 0 and "running" in after["state"]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            cleanup = ProcessRuntime(tmp_path / "agent" / "runtime")
            for handle in await cleanup.list():
                await cleanup.remove_container(handle)
            await client.close()


async def _no_containers(agent: Agent) -> bool:
    return not await agent.runtime.list()


pytestmark = pytest.mark.timeout(120)
