"""The kernel proxy mode's ruleset with a 127.x virtual IP whose backend is
on another host: the packet leaves with a loopback source, so it only works
with route_localnet on and the masquerade rule. Two network namespaces
joined by a veth stand in for the hosts (198.19.x, inside the namespaces
only). Needs root, nft and ip."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time

import pytest

from corral.net import nft
from corral.net.servicetable import ListenKey, PortPlan

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not nft.available() or shutil.which("ip") is None, reason="needs root, nft and ip")

FETCH = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
"""


def run(*cmd: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, input=input, timeout=20)


def fetch(ns: str, url: str) -> str | None:
    done = run("ip", "netns", "exec", ns, sys.executable, "-c", FETCH, url, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def test_loopback_vip_reaches_a_backend_on_another_host() -> None:
    tag = f"{os.getpid() % 100000}"
    a, b, net = f"pxoa{tag}", f"pxob{tag}", f"198.19.{random.randint(100, 250)}"
    backend = None
    try:
        run("ip", "netns", "add", a)
        run("ip", "netns", "add", b)
        run("ip", "link", "add", f"pxva{tag}", "netns", a, "type", "veth", "peer", "name", f"pxvb{tag}",
            "netns", b)
        for ns, dev, ip in ((a, f"pxva{tag}", f"{net}.1"), (b, f"pxvb{tag}", f"{net}.2")):
            run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        backend = subprocess.Popen(
            ["ip", "netns", "exec", b, sys.executable, "-m", "http.server", "8080", "--bind", f"{net}.2",
             "--directory", os.path.dirname(__file__)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        vip = f"127.55.{random.randint(0, 255)}.{random.randint(2, 254)}"
        script = nft.render("t", [PortPlan("default/web", "", "TCP", [ListenKey("TCP", vip, 80)],
                                           [(f"{net}.2", 8080)])])
        run("ip", "netns", "exec", a, "nft", "-f", "-", input=script)
        url = f"http://{vip}/{os.path.basename(__file__)}"
        deadline = time.monotonic() + 10
        while fetch(b, f"http://{net}.2:8080/{os.path.basename(__file__)}") is None:
            assert time.monotonic() < deadline, "backend never answered directly"
            time.sleep(0.1)

        run("ip", "netns", "exec", a, sys.executable, "-c",
            "from corral.net.nft import allow_loopback_routing; allow_loopback_routing()")
        body = fetch(a, url)
        assert body is not None and "test_loopback_vip_reaches_a_backend_on_another_host" in body
    finally:
        if backend is not None:
            backend.terminate()
            backend.wait(5)
        for ns in (a, b):
            run("ip", "netns", "del", ns, check=False)
