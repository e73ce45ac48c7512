"""Two API servers over etcd sharing a CA: each calls agents with its own
kubelet-client certificate, and a pod's log reads the same through either."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography import x509

from corral.agent.agent import Agent
from corral.client import errors
from corral.client.api import ApiClient
from corral.client.resources import PODS
from corral.runtime.process import ProcessRuntime
from fixtures.agent_cluster import NODE, eventually, pod
from fixtures.etcd import EtcdCluster
from fixtures.ha import HaControlPlane

pytestmark = pytest.mark.timeout(90)


async def test_each_server_reaches_the_agent_with_its_own_certificate(etcd: EtcdCluster, tmp_path: Path) -> None:
    plane = await asyncio.to_thread(HaControlPlane, tmp_path / "plane", etcd.url(), 2)
    runtime_dir = tmp_path / "agent" / "runtime"
    try:
        clients = [ApiClient(s.url, token=plane.token, ca_file=plane.ca_file, timeout=10) for s in plane.servers]
        agent = Agent(clients[0], node_name=NODE, data_dir=tmp_path / "agent", runtime=ProcessRuntime(runtime_dir),
                      port=0)
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.ready.wait(), 30)
            await clients[0].create(PODS, pod("say", ["sh", "-c", "echo said-once; exec sleep 60"]))

            async def log_via(client: ApiClient) -> bytes | None:
                try:
                    body = await client.request_bytes("GET", PODS.path("default", "say", "log"))
                except errors.ApiError:  # not running yet, or the agent's certificate not issued yet
                    return None
                return body if b"said-once" in body else None

            for client in clients:
                await eventually(lambda c=client: log_via(c), 30, f"the log through {client.server}")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for client in clients:
                await client.close()
        serials = set()
        for server in plane.servers:
            cert = x509.load_pem_x509_certificate((server.data_dir / "pki" / "kubelet-client.pem").read_bytes())
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(Path(plane.ca_file).read_bytes()))
            serials.add(cert.serial_number)
        assert len(serials) == 2
    finally:
        await asyncio.to_thread(plane.stop)
        runtime = ProcessRuntime(runtime_dir)
        for handle in await runtime.list():
            await runtime.remove_container(handle)
