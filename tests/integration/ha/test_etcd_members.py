"""Losing etcd members under a running server.

One member down: a majority remains, so the API keeps serving writes.
Two down: no quorum; a write must fail with a clear 5xx Status (the store
call's deadline, not a hang), and once the members return writes resume
and nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from corral.client import errors
from corral.client.api import ApiClient
from corral.client.resources import CONFIGMAPS
from fixtures.etcd import EtcdCluster
from fixtures.ha import HaControlPlane

NS = "default"


async def create(client: ApiClient, name: str) -> None:
    await client.create(CONFIGMAPS, {"metadata": {"name": name, "namespace": NS}})


async def create_within(client: ApiClient, name: str, timeout: float) -> None:
    """Retry one create until it is acknowledged (an etcd election may be under way)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await create(client, name)
            return
        except errors.AlreadyExistsError:
            return  # an earlier attempt committed
        except (errors.ServerError, errors.ApiConnectionError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_member_loss(etcd: EtcdCluster, tmp_path: Path) -> None:
    if etcd.external:
        pytest.skip("CORRAL_TEST_ETCD names an etcd this test must not kill")
    plane = HaControlPlane(tmp_path, etcd.url(), count=1)
    acked: list[str] = []
    try:
        async with ApiClient(plane.urls, token=plane.token, ca_file=plane.ca_file,
                             timeout=20) as client:
            for i in range(5):
                await create(client, f"a-{i}")
                acked.append(f"a-{i}")

            etcd.kill(0)
            # One member down: service continues. A proposal in flight when
            # the leader dies is held by etcd until its own request timeout,
            # so the first create may spend the store's whole 5 s deadline
            # before its retry lands on the new leader.
            for i in range(20):
                await create_within(client, f"b-{i}", timeout=15)
                acked.append(f"b-{i}")

            etcd.kill(1)
            started = time.monotonic()
            with pytest.raises(errors.ServerError) as info:
                await create(client, "c-0")
            waited = time.monotonic() - started
            assert info.value.status in (503, 504), info.value
            assert "storage is unavailable" in str(info.value)
            assert waited < 15, f"the failing write took {waited:.1f}s"

            etcd.start(0, wait=False)
            etcd.start(1, wait=False)
            await create_within(client, "d-0", timeout=30)  # writes resume
            acked.append("d-0")

            present = {cm["metadata"]["name"] for cm in (await client.list_all(CONFIGMAPS, NS))[0]}
            assert not [n for n in acked if n not in present]
    finally:
        plane.stop()
