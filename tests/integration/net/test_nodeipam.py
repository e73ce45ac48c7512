"""Node IPAM against a real API server: every Node gets its own /24 of the
cluster CIDR, a deleted Node's range goes to the next Node, an exhausted
range is said in an Event, and a bad --cluster-cidr is refused by name."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from corral.client.events import EventRecorder
from corral.client.resources import EVENTS, NODES
from corral.controllers.informers import SharedInformers
from corral.controllers.nodeipam import NodeIpamController, parse_cluster_cidr
from corral.testing import running_server


async def until(pred: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await pred()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


async def test_ranges_are_unique_reused_and_exhaustion_is_reported(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, server.client() as client:
        informers = SharedInformers(client)
        recorder = EventRecorder(client, "node-ipam-controller")
        # a /22 holds four /24s
        controller = NodeIpamController(client, informers, recorder, cluster_cidr="198.18.4.0/22")
        tasks = [asyncio.create_task(t) for t in (informers.run(), controller.run(), recorder.run())]
        try:
            async def cidr_of(name: str) -> str | None:
                spec = (await client.get(NODES, name)).get("spec") or {}
                if spec.get("podCIDR"):
                    assert spec["podCIDRs"] == [spec["podCIDR"]]
                return spec.get("podCIDR")

            for i in range(4):
                await client.create(NODES, node(f"n{i}"))
            got = [await until(lambda i=i: cidr_of(f"n{i}")) for i in range(4)]
            assert sorted(got) == [f"198.18.{third}.0/24" for third in range(4, 8)]

            await client.create(NODES, node("late"))

            async def exhausted() -> bool:
                events = (await client.list(EVENTS, "default"))["items"]
                return any(e.get("reason") == "CIDRNotAvailable"
                           and e["involvedObject"]["name"] == "late" for e in events)
            await until(exhausted)
            assert await cidr_of("late") is None

            freed = got[2]
            await client.delete(NODES, "n2")
            assert await until(lambda: cidr_of("late")) == freed  # the freed range goes to the waiting node
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("text, why", [
    ("10.0.0.0/8x", "not a network"),
    ("198.18.0.1/16", "not a network"),  # host bits set
    ("fd00::/64", "only IPv4"),
    ("198.18.0.0/25", "smaller than one node's range"),
])
def test_bad_cluster_cidr_is_named(text: str, why: str) -> None:
    with pytest.raises(ValueError, match="--cluster-cidr") as err:
        parse_cluster_cidr(text)
    assert why in str(err.value)
