"""The kernel proxy mode (nftables DNAT) against a real API server: spread,
unready endpoints drained, removal of the table. Needs root and nft."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from tests.integration.net.test_proxy import ask, eventually, random_vip, slice_for, start_backend

from corral.client.resources import ENDPOINTSLICES, SERVICES
from corral.net import nft
from corral.net.nft import KernelProxy
from corral.testing import running_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not nft.available(), reason="needs root and nft")

NS = "default"


async def test_kernel_mode_spreads_and_drains(tmp_path: Path) -> None:
    servers = [await start_backend(f"k{i}") for i in range(3)]
    ports = [p for _, p in servers]
    vip = random_vip()
    node = f"nft-test-{os.getpid()}"
    async with running_server(tmp_path) as server, server.client() as client:
        await client.create(SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
            "spec": {"clusterIP": vip, "ports": [{"name": "web", "port": 80}]}})
        for body in slice_for("web", ports, [True, True, True]):
            await client.create(ENDPOINTSLICES, body)
        proxy = KernelProxy(client, node_name=node, node_addresses=[])
        task = asyncio.create_task(proxy.run())
        try:
            await eventually(lambda: ask(vip, 80), "the VIP answers through DNAT")
            counts = Counter([await ask(vip, 80) for _ in range(30)])
            assert set(counts) == {"k0", "k1", "k2"} and min(counts.values()) >= 5, counts

            reader, writer = await asyncio.open_connection(vip, 80)
            writer.write(b"who\n")
            first = (await reader.readline()).decode().strip()
            index = int(first[1:])
            gone = await client.get(ENDPOINTSLICES, f"web-{index}", NS)
            gone["endpoints"][0]["conditions"]["ready"] = False
            await client.replace(ENDPOINTSLICES, gone)

            async def left() -> bool:
                return first not in {await ask(vip, 80) for _ in range(9)}
            await eventually(left, "no new connections to the unready backend")
            writer.write(b"still?\n")  # conntrack keeps the open one where it was
            assert (await asyncio.wait_for(reader.readline(), 2)).decode().strip() == first
            writer.close()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for srv, _ in servers:
                srv.close()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert nft.table_name(node) not in tables
