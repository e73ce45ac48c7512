"""The service-account controller against a real server: every namespace
gets (and keeps) a ``default`` ServiceAccount."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from corral.client.errors import NotFoundError
from corral.client.resources import NAMESPACES, SERVICEACCOUNTS
from corral.controllers.informers import SharedInformers
from corral.controllers.serviceaccount import ServiceAccountController
from corral.testing import running_server


async def _wait_for_default(client, namespace: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(NotFoundError):
            return await client.get(SERVICEACCOUNTS, "default", namespace)
        if time.monotonic() > deadline:
            raise AssertionError(f"no default ServiceAccount in {namespace}")
        await asyncio.sleep(0.05)


async def test_default_service_account_in_every_namespace(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, server.client() as client:
        informers = SharedInformers(client)
        controller = ServiceAccountController(client, informers)
        tasks = [asyncio.create_task(informers.run()), asyncio.create_task(controller.run())]
        try:
            await _wait_for_default(client, "default")
            await _wait_for_default(client, "kube-system")
            await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh"}})
            first = await _wait_for_default(client, "fresh")
            await client.delete(SERVICEACCOUNTS, "default", "fresh")
            again = await _wait_for_default(client, "fresh")
            assert again["metadata"]["uid"] != first["metadata"]["uid"]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
