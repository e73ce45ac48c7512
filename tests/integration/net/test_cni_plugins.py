"""net/cni.py against Debian's real CNI plugins, inside a throwaway
network namespace playing the host (198.18.x only): ADD gives the pod's
namespace an address from the range and a default route, CHECK agrees, DEL
releases the address, and a plugin's error comes back as its own words."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from corral.net.cni import find_plugin_dir

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or find_plugin_dir() is None,
    reason="needs root, iproute2 and containernetworking-plugins")

SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from corral.net.cni import Attachment, CniError, CniRunner, find_plugin_dir, result_ips
conf = json.loads(sys.argv[1])
at = Attachment("c1", sys.argv[2], "eth0", {"IgnoreUnknown": "1", "K8S_POD_NAME": "p"})
async def main():
    cni = CniRunner(find_plugin_dir())
    out = {}
    await cni.add({"name": "lo", "cniVersion": "1.0.0", "plugins": [{"type": "loopback"}]},
                  Attachment("c1", sys.argv[2], "lo"))
    result = await cni.add(conf, at)
    out["ips"] = result_ips(result)
    await cni.check(conf, at, result)
    out["del_errors"] = [str(e) for e in await cni.delete(conf, at, result)]
    bad = dict(conf, plugins=[dict(conf["plugins"][0], ipam={"type": "host-local",
               "ranges": [[{"subnet": "not-a-subnet"}]]})])
    try:
        await cni.add(bad, Attachment("c2", sys.argv[2], "eth1"))
    except CniError as exc:
        out["error"] = str(exc)
    print(json.dumps(out))
asyncio.run(main())
"""


def test_add_check_del_and_errors(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    host, pod = f"cnit-h-{tag}", f"cnit-p-{tag}"
    conf = {"cniVersion": "1.0.0", "name": "t", "plugins": [{
        "type": "bridge", "bridge": f"cnit{tag}", "isGateway": True,
        "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                 "ranges": [[{"subnet": "198.18.250.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
    subprocess.run(["ip", "netns", "add", host], check=True)
    try:
        subprocess.run(["ip", "netns", "add", pod], check=True)
        proc = subprocess.run(
            ["ip", "netns", "exec", host, sys.executable, "-c", SCRIPT, json.dumps(conf),
             f"/run/netns/{pod}"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["ips"] == ["198.18.250.2"]  # .1 is the gateway on the bridge
        assert out["del_errors"] == []
        assert not list((tmp_path / "ipam" / "t").glob("198.*"))  # the address is free again
        assert "CNI ADD with plugin bridge failed" in out["error"]
        assert "not-a-subnet" in out["error"]
        link = subprocess.run(["ip", "-n", pod, "-o", "link"], capture_output=True, text=True).stdout
        assert "eth0" not in link  # DEL took the veth away
    finally:
        subprocess.run(["ip", "netns", "del", pod], capture_output=True)
        subprocess.run(["ip", "netns", "del", host], capture_output=True)


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def record(self, obj: dict, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


async def test_a_failing_plugin_is_a_pod_event_not_a_crash(tmp_path: Path) -> None:
    import ipaddress

    from corral.net.podnet import NETNS_DIR, PodNetwork
    from corral.runtime.protocol import StartError

    recorder = _Recorder()
    empty = tmp_path / "no-plugins"
    empty.mkdir()
    net = PodNetwork(object(), node_name=f"cnit-{uuid.uuid4().hex[:6]}", address="198.18.200.11",  # type: ignore[arg-type]
                     state_dir=tmp_path / "podnet", plugin_dir=empty, recorder=recorder)  # type: ignore[arg-type]
    net.pod_cidr, net.gateway = ipaddress.IPv4Network("198.18.251.0/24"), "198.18.251.1"
    net.ready.set()
    uid = str(uuid.uuid4())
    pod = {"metadata": {"name": "p", "namespace": "default", "uid": uid}, "spec": {}}
    with pytest.raises(StartError) as err:
        await net.ensure_netns(pod)
    assert err.value.reason == "ContainerCreating"
    assert "plugin 'bridge' not found" in err.value.message  # lo is up without a plugin (net/netns.py)
    assert recorder.events and recorder.events[0][:2] == ("Warning", "FailedCreatePodSandBox")
    assert not (NETNS_DIR / f"corral-{uid}").exists()  # nothing left behind
    assert net.pod_ip(uid) is None and not list((tmp_path / "podnet" / "pods").iterdir())
