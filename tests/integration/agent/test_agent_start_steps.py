"""Pod start steps through ``nodes/proxy`` with the real kubectl: the agent's
/metrics histograms and /debug/pod-starts timelines, and who may read them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from corral.agent.startsteps import POD_MARKS
from corral.client.resources import PODS
from fixtures.agent_cluster import NODE, cluster, container_status, eventually, pod

ADMIN = "admin-token-0123456789"
ALICE = "alice-token-0123456789"
NODE_TOKEN = "node-token-0123456789"


def _tokens(tmp_path: Path) -> None:
    data = tmp_path / "server"
    data.mkdir(parents=True)
    (data / "tokens.csv").write_text(
        f'{ADMIN},admin,admin,"system:masters"\n'
        f"{ALICE},alice,alice-uid\n"
        f'{NODE_TOKEN},system:node:{NODE},node-uid,"system:nodes"\n')


def _kubectl(srv: Any, cache: Path):
    async def run(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        base = ["kubectl", f"--cache-dir={cache}"]
        if token is None:
            base.append(f"--kubeconfig={srv.kubeconfig}")
        else:
            base += ["--kubeconfig=/dev/null", f"--server={srv.url}",
                     f"--certificate-authority={srv.ca_file}", f"--token={token}"]
        return await asyncio.to_thread(subprocess.run, [*base, *args], capture_output=True, text=True,
                                       timeout=60, env={**os.environ})

    return run


def _count(text: str, family: str, runtime: str) -> float:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == f"{family}_count" and s.labels.get("runtime") == runtime:
                return s.value
    return 0.0


async def test_kubectl_reads_start_metrics_and_timelines_through_nodes_proxy(tmp_path: Path) -> None:
    _tokens(tmp_path)
    async with cluster(tmp_path) as (srv, client, _agent):
        kubectl = _kubectl(srv, tmp_path / "kcache")
        await client.create(PODS, pod("timed", ["sleep", "1000"]))

        async def running() -> bool:
            return "running" in container_status(await client.get(PODS, "timed", "default")).get("state", {})

        await eventually(running, what="pod timed running")

        async def metrics() -> str | None:
            done = await kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/metrics")
            assert done.returncode == 0, done.stderr
            return done.stdout if _count(done.stdout, "corral_agent_pod_start_duration_seconds",
                                         "process") >= 1 else None

        text = await eventually(metrics, what="a pod start in the agent's histogram")
        assert _count(text, "corral_agent_container_start_duration_seconds", "process") >= 1
        assert 'corral_agent_pod_start_step_duration_seconds_bucket{le="0.25",runtime="process",step="slot"}' \
            in text

        done = await kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/debug/pod-starts?namespace=default")
        assert done.returncode == 0, done.stderr
        body = json.loads(done.stdout)
        assert body["kind"] == "PodStartTimelineList"
        [timeline] = [t for t in body["items"] if t["name"] == "timed"]
        assert timeline["namespace"] == "default" and timeline["runtime"] == "process"
        marks = timeline["marksMs"]
        expected = ["seen", "slot", "volumes", "network", "env", "laid_out", "shim_began", "isolated",
                    "spawned", "started", "running"]
        for step in expected:
            assert step in marks, (step, marks)
        ordered = [marks[m] for m in POD_MARKS if m in marks]
        assert ordered == sorted(ordered) and ordered[0] == 0 and ordered[-1] == timeline["totalMs"] > 0
        assert timeline["containers"][0]["name"] == "main"

        done = await kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/debug/pod-starts?limit=x")
        assert done.returncode != 0 and "limit: must be a positive integer" in done.stderr
        done = await kubectl("get", "--raw", "/api/v1/nodes/no-such-node/proxy/metrics")
        assert done.returncode != 0 and "NotFound" in done.stderr


async def test_nodes_proxy_needs_rbac_get_on_nodes_proxy(tmp_path: Path) -> None:
    _tokens(tmp_path)
    async with cluster(tmp_path) as (srv, client, _agent):
        kubectl = _kubectl(srv, tmp_path / "kcache")
        path = f"/api/v1/nodes/{NODE}/proxy/metrics"
        for who, token in (("alice", ALICE), (f"system:node:{NODE}", NODE_TOKEN)):
            done = await kubectl("get", "--raw", path, token=token)
            assert done.returncode != 0, who
            assert "Forbidden" in done.stderr and 'cannot get resource "nodes/proxy"' in done.stderr, done.stderr

        for args in (("create", "clusterrole", "node-reader", "--verb=get", "--resource=nodes/proxy"),
                     ("create", "clusterrolebinding", "alice-nodes", "--clusterrole=node-reader",
                      "--user=alice")):
            done = await kubectl(*args)
            assert done.returncode == 0, done.stderr

        async def allowed() -> bool:
            done = await kubectl("get", "--raw", path, token=ALICE)
            return done.returncode == 0 and "corral_agent_pod_start_duration_seconds" in done.stdout

        await eventually(allowed, what="alice allowed once granted nodes/proxy")

        status, _, body = await _request(srv, "POST", path)
        assert status == 405 and "only GET is proxied" in body

        status, _, body = await _request(srv, "GET", "/api/v1")
        names = {r["name"] for r in json.loads(body)["resources"]}
        assert "nodes/proxy" in names


async def _request(srv: Any, method: str, path: str) -> tuple[int, str, str]:
    import ssl

    import aiohttp

    ctx = ssl.create_default_context(cafile=str(srv.ca_file))
    async with aiohttp.ClientSession() as session, session.request(
            method, f"{srv.url}{path}", headers={"Authorization": f"Bearer {ADMIN}"}, ssl=ctx) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()
