"""Volume files (the atomic writer, items, modes, downward API), node
allocatable, exec options and metrics shapes: the pure parts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from multidict import MultiDict

from corral.agent.downward import DownwardError, quote_map, resource_value
from corral.agent.exec import ExecOptions, exit_status, host_plan, run_captured
from corral.agent.node import allocatable, parse_reserved
from corral.agent.volumes import (
    PodVolume,
    VolumeError,
    _downward_payload,
    _host_path,
    _select_items,
    container_mounts,
    mount_env,
    write_atomic,
)
from corral.api.metrics import node_metrics, pod_metrics


def test_atomic_writer_swaps_data_and_links(tmp_path: Path):
    vol = tmp_path / "cfg"
    assert write_atomic(vol, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    first = os.readlink(vol / "..data")
    assert (vol / "a").read_text() == "1" and os.readlink(vol / "a") == "..data/a"
    assert (vol / "dir" / "b").read_text() == "2"
    assert stat.S_IMODE((vol / "dir" / "b").stat().st_mode) == 0o600
    assert not write_atomic(vol, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})  # unchanged
    assert write_atomic(vol, {"a": (b"changed", 0o644)})
    assert os.readlink(vol / "..data") != first and not (vol / first).exists()
    assert (vol / "a").read_text() == "changed"
    assert not (vol / "dir").exists()  # a key that went away goes too


def test_items_select_keys_and_modes():
    data = {"x": b"1", "y": b"2"}
    out = _select_items(data, [{"key": "y", "path": "sub/why", "mode": 0o400}], 0o644, "configMap", "cm", False)
    assert out == {"sub/why": (b"2", 0o400)}
    with pytest.raises(VolumeError, match='configuration key "z" not found in configmap "cm"'):
        _select_items(data, [{"key": "z", "path": "z"}], 0o644, "configMap", "cm", False)
    assert _select_items(data, [{"key": "z", "path": "z"}], 0o644, "configMap", "cm", True) == {}
    with pytest.raises(VolumeError, match="relative path"):
        _select_items(data, [{"key": "x", "path": "../escape"}], 0o644, "configMap", "cm", False)


def test_downward_api_files_and_resources():
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "labels": {"b": "2", "a": 'say "hi"'}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}}]},
    }
    src = {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu", "divisor": "1m"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "requests.memory", "divisor": "1Mi"}},
    ]}
    out = _downward_payload(pod, src, 0o644, "127.0.0.1", "127.0.0.1", {}, "info")
    assert out["labels"][0].decode() == 'a="say \\"hi\\""\nb="2"'
    assert out["name"][0] == b"p" and out["cpu"][0] == b"250" and out["mem"][0] == b"64"
    container = pod["spec"]["containers"][0]
    assert resource_value({"resource": "limits.cpu"}, container, {}, "f") == "1"  # rounded up
    assert resource_value({"resource": "limits.memory"}, {"name": "x"}, {"memory": "1Gi"}, "f") == str(2**30)
    with pytest.raises(DownwardError, match="f.resource: Unsupported value"):
        resource_value({"resource": "limits.gpu"}, container, {}, "f")
    assert quote_map({}) == ""


def test_host_path_types(tmp_path: Path):
    made = tmp_path / "made"
    assert _host_path({"path": str(made), "type": "DirectoryOrCreate"}, "v") == made and made.is_dir()
    with pytest.raises(VolumeError, match="is not a file"):
        _host_path({"path": str(made), "type": "File"}, "v")
    with pytest.raises(VolumeError, match="hostPath.type: Unsupported value"):
        _host_path({"path": str(made), "type": "Dir"}, "v")
    with pytest.raises(VolumeError, match="must be absolute"):
        _host_path({"path": "relative"}, "v")


def test_mounts_and_their_env(tmp_path: Path):
    vols = {"data": PodVolume("data", tmp_path / "data")}
    container = {"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/var/data", "readOnly": True}]}
    [mount] = container_mounts(container, vols)
    assert (mount.host_path, mount.container_path, mount.read_only) == (tmp_path / "data", "/var/data", True)
    env = mount_env(container, vols)
    assert env["CORRAL_VOLUME_DATA"] == str(tmp_path / "data")
    assert env["CORRAL_MOUNT_VAR_DATA"].rstrip("/") == str(tmp_path / "data")
    with pytest.raises(VolumeError, match=r"volumeMounts\[0\].name: Not found"):
        container_mounts({"name": "c", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, vols)


def test_system_reserved():
    reserved = parse_reserved("cpu=100m, memory=256Mi")
    out = allocatable({"cpu": "2", "memory": "1048576Ki", "pods": "110"}, reserved)
    assert out == {"cpu": "1900m", "memory": f"{1048576 - 262144}Ki", "pods": "110"}
    with pytest.raises(ValueError, match="unknown resource 'gpu'"):
        parse_reserved("gpu=1")
    with pytest.raises(ValueError, match="is not NAME=QUANTITY"):
        parse_reserved("cpu")
    with pytest.raises(ValueError, match="memory=lots"):
        parse_reserved("memory=lots")


def test_node_conditions_follow_readings(tmp_path: Path):
    from corral.agent.node import NodeStatusManager

    mgr = NodeStatusManager(None, "n", address="127.0.0.1", port=1, data_dir=tmp_path)  # type: ignore[arg-type]
    healthy = {"memory_total": 8 << 30, "memory_available": 4 << 30, "disk_total": 100, "disk_free": 50,
               "pids": 100, "pid_max": 1000, "inodes_total": 100, "inodes_free": 50}
    conds = {c["type"]: c for c in mgr.status(healthy)["conditions"]}
    assert [conds[t]["status"] for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")] == [
        "False", "False", "False", "True"]
    starved = {**healthy, "memory_available": 50 << 20, "disk_free": 5, "pids": 990}
    conds = {c["type"]: c for c in mgr.status(starved)["conditions"]}
    assert conds["MemoryPressure"]["status"] == "True"
    assert conds["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
    assert conds["DiskPressure"]["status"] == "True" and conds["PIDPressure"]["status"] == "True"
    inodes = {**healthy, "inodes_free": 1}
    assert {c["type"]: c for c in mgr.status(inodes)["conditions"]}["DiskPressure"]["status"] == "True"


def test_exec_options_and_status():
    opts = ExecOptions.from_query(MultiDict([("command", "sh"), ("command", "-c"), ("stdout", "true"),
                                              ("stderr", "true"), ("tty", "true")]))
    assert opts.command == ["sh", "-c"] and opts.tty and not opts.stderr  # a tty merges stderr
    with pytest.raises(ValueError, match="command: Required value"):
        ExecOptions.from_query(MultiDict([("stdout", "true")]))
    with pytest.raises(ValueError, match="stdin: Invalid value"):
        ExecOptions.from_query(MultiDict([("command", "x"), ("stdin", "maybe")]))
    assert exit_status(0, ["x"]) == {"metadata": {}, "status": "Success"}
    failed = exit_status(3, ["sh", "-c", "exit 3"])
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


async def test_run_captured_times_out_and_reports(tmp_path: Path):
    code, out = await run_captured(host_plan(["sh", "-c", "echo $V; exit 2"], {"V": "val"}, str(tmp_path)), 5)
    assert (code, out) == (2, "val\n")
    code, out = await run_captured(host_plan(["sleep", "10"], {}, "/"), 0.2)
    assert code == -1 and "timed out" in out
    code, out = await run_captured(host_plan(["no-such-binary-here"], {}, "/"), 1)
    assert code == 127 and "executable file not found" in out


def test_metrics_shapes():
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "creationTimestamp": "t"}}
    cpu = {"time": "2026-01-01T00:00:00Z", "usageNanoCores": 250_000_000, "windowSeconds": 10.0}
    summary = {
        "node": {"nodeName": "n", "cpu": cpu, "memory": {"workingSetBytes": 2 << 20}},
        "pods": [{"podRef": {"uid": "u1"}, "containers": [
            {"name": "c", "cpu": cpu, "memory": {"workingSetBytes": 5 << 20}}]}],
    }
    metrics = pod_metrics(pod, summary)
    assert metrics is not None
    assert metrics["containers"] == [{"name": "c", "usage": {"cpu": "250000000n", "memory": "5120Ki"}}]
    assert metrics["window"] == "10.000s" and metrics["metadata"]["namespace"] == "ns"
    node = node_metrics({"metadata": {"name": "n"}}, summary)
    assert node is not None and node["usage"]["memory"] == "2048Ki"
    no_rate = {"node": {"cpu": {"usageCoreNanoSeconds": 5}}, "pods": []}
    assert node_metrics({"metadata": {"name": "n"}}, no_rate) is None
