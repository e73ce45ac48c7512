"""A real agent keeping secrets, tokens and configMaps in a tmpfs
(corral.runtime.memfs): the files are not on disk, a changed ConfigMap
still reaches the running pod, a restarted agent adopts pod and state, and
the mounts go when the last pod does."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import pytest

from corral.agent.agent import Agent
from corral.client.resources import CONFIGMAPS, PODS, SECRETS
from corral.runtime import memfs
from corral.runtime.layout import run_dir
from corral.runtime.process import ProcessRuntime
from corral.testing import running_server
from fixtures.agent_cluster import NODE, container_status, eventually, pod

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def fs_type(path: Path) -> str:
    """The file system type of the mount ``path`` is on, from mountinfo."""
    best = ""
    fstype = ""
    real = os.path.realpath(path)
    for entry in memfs.mounts():
        point = entry.mount_point.rstrip("/") or "/"
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, fstype = point, entry.fstype
    return fstype


async def start_agent(client: Any, data: Path) -> tuple[Agent, asyncio.Task[None]]:
    agent = Agent(client, node_name=NODE, data_dir=data, port=0, state_in_memory=True,
                  runtime=ProcessRuntime(data / "runtime", memory=True))
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.ready.wait(), 30)
    return agent, task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _is(value: Any) -> Any:
    return value


async def test_object_volumes_in_memory_updated_adopted_and_unmounted(tmp_path: Path):
    data = tmp_path / "agent"
    try:
        async with running_server(tmp_path) as srv, srv.client() as client:
            await client.create(SECRETS, {
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "creds", "namespace": "default"},
                "data": {"password": base64.b64encode(b"s3cret").decode()}})
            await client.create(CONFIGMAPS, {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": "default"},
                "data": {"greeting": "hello"}})
            agent, task = await start_agent(client, data)
            try:
                # Volumes at their mountPath need a root of the pod's own; else by environment.
                at = (("/etc/cfg", "/etc/creds") if agent.runtime.runtimes["process"].mounts_supported({})  # type: ignore[attr-defined]
                      else ("$CORRAL_MOUNT_ETC_CFG", "$CORRAL_MOUNT_ETC_CREDS"))
                spec = pod("mem", ["sh", "-c", f"while :; do cat {at[0]}/greeting; echo; "
                                   f"cat {at[1]}/password; echo; sleep 0.2; done"])
                c = spec["spec"]["containers"][0]
                c["volumeMounts"] = [{"name": "cfg", "mountPath": "/etc/cfg"},
                                     {"name": "creds", "mountPath": "/etc/creds"},
                                     {"name": "scratch", "mountPath": "/scratch"}]
                spec["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "settings"}},
                                           {"name": "creds", "secret": {"secretName": "creds"}},
                                           {"name": "scratch", "emptyDir": {}}]
                uid = (await client.create(PODS, spec))["metadata"]["uid"]
                log = agent.logs.paths("default", "mem", uid, "main", 0).path

                async def saw(text: str) -> bool:
                    return log.exists() and text in log.read_text()

                await eventually(lambda: saw("s3cret"), what="the pod reading its secret")
                volumes = agent._ctx.volumes
                assert volumes is not None
                secret_dir = volumes.volume_dir(uid, {"name": "creds", "secret": {}})
                cfg_dir = volumes.volume_dir(uid, {"name": "cfg", "configMap": {}})
                scratch = volumes.volume_dir(uid, {"name": "scratch", "emptyDir": {}})
                assert (secret_dir / "password").read_bytes() == b"s3cret"
                assert fs_type(secret_dir / "password") == "tmpfs"
                assert fs_type(cfg_dir / "greeting") == "tmpfs"
                assert scratch.is_dir() and fs_type(scratch) != "tmpfs"  # emptyDir: on disk
                assert not (data / "volumes" / uid / "creds").exists()
                first_id = container_status(await client.get(PODS, "mem", "default"))["containerID"]
            finally:
                await stop(task)
            # The agent is gone, its pod is not: the state stays mounted.
            assert {os.path.realpath(data / "run"), os.path.realpath(run_dir(data / "runtime"))} <= \
                set(memfs.ours_under(tmp_path))

            agent, task = await start_agent(client, data)
            try:
                cm = await client.get(CONFIGMAPS, "settings", "default")
                cm["data"]["greeting"] = "bonjour"
                await client.replace(CONFIGMAPS, cm)
                await eventually(lambda: saw("bonjour"), timeout=30,
                                 what="the running pod to see the changed ConfigMap")
                status = container_status(await client.get(PODS, "mem", "default"))
                assert status["containerID"] == first_id and status["restartCount"] == 0  # adopted
                assert sum(1 for e in memfs.mounts() if e.source == memfs.SOURCE
                           and e.mount_point.startswith(str(tmp_path))) == 2  # not mounted twice

                await client.delete(PODS, "mem", "default")
                await eventually(lambda: _is(not secret_dir.exists() and not list(
                    (run_dir(data / "runtime") / "containers").iterdir())),
                    what="the pod's state removed")
            finally:
                await stop(task)
            assert memfs.ours_under(tmp_path) == []  # no pod left: both unmounted
    finally:
        memfs.unmount_under(tmp_path)
