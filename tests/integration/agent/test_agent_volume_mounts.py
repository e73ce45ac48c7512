"""Volumes at their mountPath in the process runtime (a root of the pod's
own over the host's /): the real API server and a real Agent as root."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from corral.client.resources import CONFIGMAPS, EVENTS, PODS
from corral.runtime.rootfs import supported
from fixtures.agent_cluster import cluster, container_status, eventually, pod

needs_rootfs = pytest.mark.skipif(supported(Path("/var/tmp")) is not None, reason="needs root and overlayfs")

CFG = "/etc/corral-mt-cfg"
SHARED = "/data/corral-mt-shared"
READER_IN = "/srv/corral-mt-in"
PART = "/opt/corral-mt-part"

WRITER = f"""
echo from-writer > {SHARED}/note
if touch {CFG}/x 2>/dev/null; then echo RO-BROKEN; else echo RO-OK; fi
echo "env=${{CORRAL_VOLUME_CFG:-none}}"
while true; do echo "greeting=$(cat {CFG}/greeting)"; sleep 0.2; done
"""
READER = f"""
while [ ! -f {READER_IN}/note ]; do sleep 0.1; done
echo "reader saw $(cat {READER_IN}/note)"
echo sub > {PART}/f
exec sleep 1000
"""


def _log(agent: Any, uid: str, container: str) -> str:
    path = agent.logs.paths("default", "mounts", uid, container, 0).path
    return path.read_text() if path.exists() else ""


async def _true(value: bool) -> bool:
    return value


@needs_rootfs
async def test_volumes_at_mount_path_shared_read_only_and_updated(tmp_path: Path):
    for path in (CFG, SHARED, READER_IN, PART):
        assert not os.path.exists(path)
    async with cluster(tmp_path) as (_, client, agent):
        await client.create(CONFIGMAPS, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "default"}, "data": {"greeting": "hello"},
        })
        spec = pod("mounts", ["sh", "-c", WRITER])
        spec["spec"]["containers"][0].update(name="writer", volumeMounts=[
            {"name": "cfg", "mountPath": CFG, "readOnly": True},
            {"name": "scratch", "mountPath": SHARED},
        ])
        spec["spec"]["containers"].append({
            "name": "reader", "image": "none", "command": ["sh", "-c", READER],
            "volumeMounts": [{"name": "scratch", "mountPath": READER_IN},
                             {"name": "scratch", "mountPath": PART, "subPath": "part"}],
        })
        spec["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "settings"}},
                                   {"name": "scratch", "emptyDir": {}}]
        uid = (await client.create(PODS, spec))["metadata"]["uid"]

        await eventually(lambda: _true("greeting=hello" in _log(agent, uid, "writer")),
                         what="the writer to read its configMap at its mountPath")
        writer = _log(agent, uid, "writer")
        assert "RO-OK" in writer and "RO-BROKEN" not in writer
        assert "env=none" in writer  # mounted, so no environment fallback
        await eventually(lambda: _true("reader saw from-writer" in _log(agent, uid, "reader")),
                         what="the reader to see the writer's emptyDir file")
        scratch = agent.data_dir / "volumes" / uid / "scratch"
        await eventually(lambda: _true((scratch / "part" / "f").exists()), what="the subPath write")
        assert (scratch / "part" / "f").read_text() == "sub\n"

        cm = await client.get(CONFIGMAPS, "settings", "default")
        cm["data"]["greeting"] = "bonjour"
        await client.replace(CONFIGMAPS, cm)
        await eventually(lambda: _true("greeting=bonjour" in _log(agent, uid, "writer")), timeout=20,
                         what="the running pod to see the updated ConfigMap")
        p = await client.get(PODS, "mounts", "default")
        assert all(s["restartCount"] == 0 for s in p["status"]["containerStatuses"])
        # Nothing the pod made (mount points included) is on the host.
        for path in (CFG, SHARED, READER_IN, PART):
            assert not os.path.exists(path), path


@needs_rootfs
async def test_a_mount_that_cannot_be_made_is_a_clear_start_error(tmp_path: Path):
    async with cluster(tmp_path) as (_, client, agent):
        spec = pod("badmount", ["sleep", "1000"])
        # /proc/1 is the pod's init: nothing can be created in it.
        spec["spec"]["containers"][0]["volumeMounts"] = [{"name": "e", "mountPath": "/proc/1/nope"}]
        spec["spec"]["volumes"] = [{"name": "e", "emptyDir": {}}]
        uid = (await client.create(PODS, spec))["metadata"]["uid"]

        async def failed() -> str | None:
            cs = container_status(await client.get(PODS, "badmount", "default"))
            for state in (cs.get("state") or {}, cs.get("lastState") or {}):
                for value in state.values():
                    if "mount" in str(value.get("message", "")):
                        return str(value["message"])
            return None

        message = await eventually(failed, timeout=10, what="a start error naming the mount")
        assert "/proc/1/nope" in message
        events = await client.list(EVENTS, "default", field_selector="involvedObject.name=badmount")
        assert events["items"]
        # The sandbox made before the mount failed goes with the pod.
        sandbox = agent.data_dir / "runtime" / "pods" / uid
        assert sandbox.exists()
        await client.delete(PODS, "badmount", "default")
        await eventually(lambda: _true(not sandbox.exists()), what="the pod's sandbox removed")


async def test_without_a_root_of_its_own_volumes_come_by_environment_and_an_event(tmp_path: Path):
    from corral.agent.agent import Agent
    from corral.runtime.process import ProcessRuntime
    from corral.testing import running_server

    async with running_server(tmp_path) as srv, srv.client() as client:
        runtime = ProcessRuntime(tmp_path / "agent" / "runtime", isolate=False)  # as without root
        assert not runtime.mounts_supported({}) and runtime.rootfs_missing == "disabled"
        agent = Agent(client, node_name="node-1", data_dir=tmp_path / "agent", runtime=runtime, port=0)
        task = asyncio.create_task(agent.run())
        try:
            spec = pod("byenv", ["sh", "-c", 'echo "at=$CORRAL_MOUNT_DATA"; exec sleep 1000'])
            spec["spec"]["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/data"}]
            spec["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
            uid = (await client.create(PODS, spec))["metadata"]["uid"]
            log = agent.logs.paths("default", "byenv", uid, "main", 0).path
            want = f"at={agent.data_dir / 'volumes' / uid / 'scratch'}"
            await eventually(lambda: _true(log.exists() and want in log.read_text()),
                             what="the volume's host path in the environment")

            async def told() -> bool:
                items = (await client.list(EVENTS, "default", field_selector="involvedObject.name=byenv"))["items"]
                return any(e["reason"] == "VolumesByEnvironment" for e in items)

            await eventually(told, what="a VolumesByEnvironment Event")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for handle in await runtime.list():
                await runtime.remove_container(handle)
