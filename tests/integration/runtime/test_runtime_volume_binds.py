"""Both runtimes show a pod's volumes at their mountPath: readOnly refused,
an emptyDir's writes in the agent's volume dir, a ConfigMap update seen by
the running container (the volume directory is bound, and the agent swaps
its ``..data`` link inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.client.resources import CONFIGMAPS, PODS
from corral.runtime.rootfs import supported
from fixtures.agent_node import Node, eventually, get_pod, node, pod
from fixtures.dockerd import Dockerd

SCRIPT = """
if touch /etc/cfg/x 2>/dev/null; then echo RO-BROKEN; else echo RO-OK; fi
echo written > /data/f
while true; do echo "greeting=$(cat /etc/cfg/greeting)"; sleep 0.2; done
"""


def _log(n: Node, uid: str) -> str:
    assert n.agent is not None
    path = n.agent.logs.paths("default", "binds", uid, "main", 0).path
    return path.read_text() if path.exists() else ""


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("runtime", ["process", "docker"])
async def test_volumes_bound_at_mount_path(tmp_path: Path, dockerd: Dockerd, runtime: str) -> None:
    if runtime == "process" and supported(Path("/var/tmp")) is not None:
        pytest.skip("the process runtime mounts volumes only as root with overlayfs")
    async with node(tmp_path, dockerd.base_url) as n:
        await n.client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": "cfg", "namespace": "default"},
                                           "data": {"greeting": "hello"}})
        spec: dict[str, Any] = pod("binds", runtime, ["sh", "-c", SCRIPT], dockerd.image, container={
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
                             {"name": "scratch", "mountPath": "/data"}]})
        spec["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "cfg"}},
                                   {"name": "scratch", "emptyDir": {}}]
        uid = (await n.client.create(PODS, spec))["metadata"]["uid"]
        await eventually(lambda: _true("greeting=hello" in _log(n, uid)), what="the file at its mountPath")
        assert "RO-OK" in _log(n, uid)
        scratch = n.data_dir / "volumes" / uid / "scratch" / "f"
        await eventually(lambda: _true(scratch.exists()), what="the emptyDir write on the node")
        assert scratch.read_text() == "written\n"

        cm = await n.client.get(CONFIGMAPS, "cfg", "default")
        cm["data"]["greeting"] = "bonjour"
        await n.client.replace(CONFIGMAPS, cm)
        await eventually(lambda: _true("greeting=bonjour" in _log(n, uid)), timeout=20,
                         what="the running container to see the ConfigMap update")
        status = (await get_pod(n.client, "binds"))["status"]["containerStatuses"][0]
        assert status["restartCount"] == 0
