"""Probes, init containers, volumes, env and hooks: the real API server and a
real Agent with the process runtime, on loopback."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from corral.client.resources import CONFIGMAPS, EVENTS, PODS
from fixtures.agent_cluster import cluster, container_status, eventually, pod


@pytest.fixture
def shared() -> Any:
    """A directory the test and its containers both see: the process runtime
    gives each pod a private /tmp (where pytest's tmp_path lives)."""
    path = Path(tempfile.mkdtemp(prefix="corral-test-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _sharing(spec: dict[str, Any], shared: Path) -> dict[str, Any]:
    """The pod sees ``shared`` as the test does: a hostPath volume at the
    same path (a pod's writes elsewhere stay in its own root)."""
    spec["spec"].setdefault("volumes", []).append({"name": "shared", "hostPath": {"path": str(shared)}})
    for c in spec["spec"]["containers"]:
        c.setdefault("volumeMounts", []).append({"name": "shared", "mountPath": str(shared)})
    return spec


async def _get(client: Any, name: str) -> dict[str, Any]:
    return await client.get(PODS, name, "default")


def _conditions(p: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (p.get("status") or {}).get("conditions") or []}


async def _events(client: Any, name: str) -> list[dict[str, Any]]:
    events = await client.list(EVENTS, "default", field_selector=f"involvedObject.name={name}")
    return events["items"]


async def test_liveness_failure_restarts_with_events(tmp_path: Path, shared: Path):
    flag = shared / "alive"
    async with cluster(tmp_path) as (_, client, _agent):
        probe = {"exec": {"command": ["cat", str(flag)]}, "periodSeconds": 1, "failureThreshold": 2}
        spec = pod("live", ["sh", "-c", f"echo ok > {flag}; exec sleep 1000"])
        spec["spec"]["containers"][0]["livenessProbe"] = probe
        await client.create(PODS, _sharing(spec, shared))

        async def running() -> bool:
            return "running" in container_status(await _get(client, "live")).get("state", {})

        await eventually(running, what="container running")
        await eventually(lambda: _async(flag.exists()), what="the container to write its flag")
        flag.unlink()  # the probe fails from now on, until the restart writes it again

        async def restarted() -> bool:
            cs = container_status(await _get(client, "live"))
            return cs.get("restartCount", 0) >= 1 and "running" in cs.get("state", {})

        await eventually(restarted, timeout=30, what="restart after liveness failure")
        reasons = {(e["reason"], e["message"].split(":")[0]) for e in await _events(client, "live")}
        assert ("Unhealthy", "Liveness probe failed") in reasons
        killing = [e for e in await _events(client, "live") if e["reason"] == "Killing"]
        assert any("failed liveness probe, will be restarted" in e["message"] for e in killing)


async def test_readiness_flips_ready_and_back(tmp_path: Path, shared: Path):
    flag = shared / "ready"
    async with cluster(tmp_path) as (_, client, _agent):
        spec = pod("ready", ["sleep", "1000"])
        spec["spec"]["containers"][0]["readinessProbe"] = {
            "exec": {"command": ["test", "-f", str(flag)]},
            "periodSeconds": 1,
        }
        await client.create(PODS, _sharing(spec, shared))

        async def state(ready: bool) -> bool:
            p = await _get(client, "ready")
            cs = container_status(p)
            return (
                "running" in cs.get("state", {})
                and cs.get("ready") is ready
                and _conditions(p).get("Ready") == str(ready)
                and _conditions(p).get("ContainersReady") == str(ready)
            )

        await eventually(lambda: state(False), what="running but not ready")
        flag.write_text("")
        await eventually(lambda: state(True), what="ready after the probe passes")
        flag.unlink()
        await eventually(lambda: state(False), timeout=15, what="unready after 3 failures")
        assert container_status(await _get(client, "ready"))["restartCount"] == 0


async def test_failing_init_container_blocks_app_containers(tmp_path: Path):
    async with cluster(tmp_path) as (_, client, _agent):
        never = pod("init-never", ["sleep", "1000"], restartPolicy="Never")
        never["spec"]["initContainers"] = [
            {"name": "first", "image": "none", "command": ["true"]},
            {"name": "second", "image": "none", "command": ["sh", "-c", "exit 4"]},
        ]
        always = pod("init-always", ["sleep", "1000"])
        always["spec"]["initContainers"] = [
            {"name": "boom", "image": "none", "command": ["sh", "-c", "exit 1"]}
        ]
        await client.create(PODS, never)
        await client.create(PODS, always)

        async def failed() -> dict[str, Any] | None:
            p = await _get(client, "init-never")
            return p if p["status"].get("phase") == "Failed" else None

        p = await eventually(failed, what="pod Failed on its init container")
        inits = p["status"]["initContainerStatuses"]
        assert inits[0]["state"]["terminated"]["exitCode"] == 0
        assert inits[1]["state"]["terminated"]["exitCode"] == 4
        assert container_status(p)["state"] == {"waiting": {"reason": "PodInitializing"}}

        async def crash_looping() -> bool:
            p = await _get(client, "init-always")
            init = (p["status"].get("initContainerStatuses") or [{}])[0]
            return (
                init.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
                and p["status"]["phase"] == "Pending"
            )

        await eventually(crash_looping, what="init container in CrashLoopBackOff")
        p = await _get(client, "init-always")
        assert "running" not in container_status(p).get("state", {})


async def test_configmap_volume_updates_in_place_and_env(tmp_path: Path):
    async with cluster(tmp_path) as (_, client, agent):
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "default"},
            "data": {"greeting": "hello", "color": "blue"},
        }
        await client.create(CONFIGMAPS, cm)
        spec = pod("vol", ["sh", "-c", 'echo "$GREETING $COLOR_OPT $MISSING_OPT"; exec sleep 1000'])
        c = spec["spec"]["containers"][0]
        c["volumeMounts"] = [{"name": "cfg", "mountPath": "/etc/cfg"}]
        c["env"] = [
            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
            {"name": "MISSING_OPT", "valueFrom": {"configMapKeyRef": {
                "name": "settings", "key": "nope", "optional": True}}},
        ]
        c["envFrom"] = [{"configMapRef": {"name": "settings"}, "prefix": "COLOR_"}]
        c["env"].append({"name": "COLOR_OPT", "value": "$(COLOR_color)"})
        spec["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "settings"}}]
        created = await client.create(PODS, spec)
        uid = created["metadata"]["uid"]
        volume = agent.data_dir / "volumes" / uid / "cfg"

        async def running() -> bool:
            return "running" in container_status(await _get(client, "vol")).get("state", {})

        await eventually(running, what="pod with a configMap volume running")
        assert (volume / "greeting").read_text() == "hello"
        assert (volume / "..data").is_symlink() and (volume / "greeting").is_symlink()
        log = agent.logs.paths("default", "vol", uid, "main", 0).path
        await eventually(lambda: _async(log.exists() and "hello blue \n" in log.read_text()))

        cm = await client.get(CONFIGMAPS, "settings", "default")
        cm["data"]["greeting"] = "bonjour"
        await client.replace(CONFIGMAPS, cm)
        await eventually(
            lambda: _async((volume / "greeting").read_text() == "bonjour"),
            timeout=20,
            what="the file to follow the ConfigMap",
        )
        assert container_status(await _get(client, "vol"))["restartCount"] == 0

        bad = pod("bad-env", ["sleep", "1000"])
        bad["spec"]["containers"][0]["env"] = [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope"}}}
        ]
        await client.create(PODS, bad)

        async def config_error() -> str | None:
            waiting = container_status(await _get(client, "bad-env")).get("state", {}).get("waiting", {})
            return waiting.get("message") if waiting.get("reason") == "CreateContainerConfigError" else None

        message = await eventually(config_error, what="CreateContainerConfigError")
        assert "couldn't find key nope in ConfigMap default/settings" in message


async def _async(value: Any) -> Any:
    return value


async def test_prestop_runs_before_sigterm(tmp_path: Path, shared: Path):
    record = shared / "order"
    async with cluster(tmp_path) as (_, client, _agent):
        script = f"trap 'echo term >> {record}; exit 0' TERM; while :; do sleep 0.1; done"
        spec = pod("hooked", ["sh", "-c", script])
        spec["spec"]["containers"][0]["lifecycle"] = {
            "preStop": {"exec": {"command": ["sh", "-c", f"echo prestop >> {record}"]}},
            "postStart": {"exec": {"command": ["sh", "-c", f"echo poststart >> {record}"]}},
        }
        await client.create(PODS, _sharing(spec, shared))

        async def running() -> bool:
            return "running" in container_status(await _get(client, "hooked")).get("state", {})

        await eventually(running, what="hooked pod running")
        await client.delete(PODS, "hooked", "default")

        async def gone() -> bool:
            try:
                await _get(client, "hooked")
            except Exception:
                return True
            return False

        await eventually(gone, what="pod deleted")
        await eventually(
            lambda: _async(record.exists() and "term" in record.read_text()),
            what=f"SIGTERM recorded (so far: {record.read_text() if record.exists() else None!r})",
        )
        assert record.read_text().split() == ["poststart", "prestop", "term"]


async def test_node_allocatable_honours_system_reserved(tmp_path: Path):
    from corral.agent.node import parse_reserved

    reserved = parse_reserved("cpu=100m,memory=256Mi")
    async with cluster(tmp_path, system_reserved=reserved) as (_, client, agent):
        from corral.client.resources import NODES

        node = await client.get(NODES, agent.node_name)
        cap, alloc = node["status"]["capacity"], node["status"]["allocatable"]
        assert alloc["cpu"] == f"{int(cap['cpu']) * 1000 - 100}m"
        assert int(alloc["memory"][:-2]) == int(cap["memory"][:-2]) - 256 * 1024
        conds = {c["type"]: c for c in node["status"]["conditions"]}
        for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            assert conds[ctype]["status"] == "False"
        assert conds["Ready"]["status"] == "True"
        await asyncio.sleep(0)
