"""The endpoints controller against a real API server: pods that a Service
selects become its Endpoints and EndpointSlices, following readiness,
named target ports, publishNotReadyAddresses and deletion."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from corral.client.errors import NotFoundError
from corral.client.resources import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES
from corral.controllers.endpoints import SERVICE_NAME_LABEL, EndpointsController
from corral.controllers.informers import SharedInformers
from corral.testing import running_server

NS = "default"


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
            if last:
                return last
        except (NotFoundError, AssertionError) as exc:
            last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


async def make_pod(client: Any, name: str, port: int, ip: str, ready: bool, labels: dict[str, str]) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": NS, "labels": labels},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x", "ports": [
               {"name": "http", "containerPort": port}]}]}}
    created = await client.create(PODS, pod)
    await set_ready(client, created, ip, ready)


async def set_ready(client: Any, pod: dict[str, Any], ip: str, ready: bool) -> None:
    pod = await client.get(PODS, pod["metadata"]["name"], NS)
    pod["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}
    await client.replace_status(PODS, pod)


def addresses(ep: dict[str, Any], key: str = "addresses") -> set[tuple[str, int]]:
    return {(a["ip"], p["port"]) for s in ep.get("subsets") or [] for a in s.get(key) or []
            for p in s.get("ports") or []}


async def test_endpoints_and_slices_follow_pods(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, server.client() as client:
        informers = SharedInformers(client)
        controller = EndpointsController(client, informers)
        tasks = [asyncio.create_task(informers.run()), asyncio.create_task(controller.run())]
        try:
            labels = {"app": "web"}
            await make_pod(client, "a", 8001, "127.0.0.1", True, labels)
            await make_pod(client, "b", 8002, "127.0.0.2", True, labels)
            await make_pod(client, "c", 8003, "127.0.0.3", False, labels)
            await make_pod(client, "other", 9000, "127.0.0.9", True, {"app": "db"})
            await client.create(SERVICES, {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
                "spec": {"selector": labels, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}})

            async def ready_set() -> bool:
                ep = await client.get(ENDPOINTS, "web", NS)
                assert addresses(ep) == {("127.0.0.1", 8001), ("127.0.0.2", 8002)}, ep
                assert addresses(ep, "notReadyAddresses") == {("127.0.0.3", 8003)}
                return True
            await eventually(ready_set, "named targetPorts resolved per pod")

            async def slices_match() -> bool:
                got = await client.list(ENDPOINTSLICES, NS, label_selector=f"{SERVICE_NAME_LABEL}=web")
                items = got["items"]
                seen = {(e["addresses"][0], s["ports"][0]["port"], e["conditions"]["ready"])
                        for s in items for e in s["endpoints"]}
                assert seen == {("127.0.0.1", 8001, True), ("127.0.0.2", 8002, True),
                                ("127.0.0.3", 8003, False)}, items
                assert all(s["metadata"]["ownerReferences"][0]["kind"] == "Service" for s in items)
                return True
            await eventually(slices_match, "one slice per port set")

            # readiness flips move addresses between the lists
            await set_ready(client, {"metadata": {"name": "a"}}, "127.0.0.1", False)
            await set_ready(client, {"metadata": {"name": "c"}}, "127.0.0.3", True)

            async def flipped() -> bool:
                ep = await client.get(ENDPOINTS, "web", NS)
                assert addresses(ep) == {("127.0.0.2", 8002), ("127.0.0.3", 8003)}, ep
                return True
            await eventually(flipped, "readiness followed")

            await client.delete(PODS, "b", NS, grace_period_seconds=0)

            async def gone() -> bool:
                ep = await client.get(ENDPOINTS, "web", NS)
                assert addresses(ep) == {("127.0.0.3", 8003)}, ep
                return True
            await eventually(gone, "deleted pod dropped")

            # publishNotReadyAddresses lists every pod as ready
            svc = await client.get(SERVICES, "web", NS)
            svc["spec"]["publishNotReadyAddresses"] = True
            await client.replace(SERVICES, svc)

            async def published() -> bool:
                ep = await client.get(ENDPOINTS, "web", NS)
                assert addresses(ep) == {("127.0.0.1", 8001), ("127.0.0.3", 8003)}, ep
                return True
            await eventually(published, "publishNotReadyAddresses")

            await client.delete(SERVICES, "web", NS)

            async def cleaned() -> bool:
                try:
                    await client.get(ENDPOINTS, "web", NS)
                    return False
                except NotFoundError:
                    pass
                got = await client.list(ENDPOINTSLICES, NS, label_selector=f"{SERVICE_NAME_LABEL}=web")
                return not got["items"]
            await eventually(cleaned, "endpoints and slices removed with the service")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_headless_service_without_ports(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, server.client() as client:
        informers = SharedInformers(client)
        controller = EndpointsController(client, informers)
        tasks = [asyncio.create_task(informers.run()), asyncio.create_task(controller.run())]
        try:
            await make_pod(client, "h", 7000, "127.0.0.5", True, {"app": "h"})
            await client.create(SERVICES, {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "h", "namespace": NS},
                "spec": {"clusterIP": "None", "selector": {"app": "h"}}})

            async def listed() -> bool:
                ep = await client.get(ENDPOINTS, "h", NS)
                assert [a["ip"] for s in ep["subsets"] for a in s["addresses"]] == ["127.0.0.5"]
                assert "service.kubernetes.io/headless" in ep["metadata"]["labels"]
                return True
            await eventually(listed, "headless endpoints")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
