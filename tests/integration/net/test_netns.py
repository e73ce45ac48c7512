"""Named network namespaces made in process (corral.net.netns), checked with
the real ``ip`` and the kernel's own view."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from corral.net import netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.fixture
def name():
    n = f"corral-test-{uuid.uuid4().hex[:8]}"
    yield n
    netns.remove(Path("/run/netns") / n)


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def test_a_new_namespace_is_named_and_its_loopback_is_up(name: str):
    path = Path("/run/netns") / name
    netns.create(path)
    assert name in ip("netns", "list")
    assert os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino  # bound, not our own
    links = ip("-n", name, "-o", "link", "show")
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]  # nothing else
    assert "UP" in ip("-n", name, "link", "show", "lo").split(">")[0]
    assert "127.0.0.1" in ip("-n", name, "-4", "addr", "show", "lo")
    # the process itself (every thread of it) is still in the host's namespace
    own = os.readlink("/proc/self/ns/net")
    assert all(os.readlink(f"/proc/self/task/{t}/ns/net") == own for t in os.listdir("/proc/self/task"))


def test_it_is_usable_and_removable_as_ip_netns_would_leave_it(name: str):
    path = Path("/run/netns") / name
    netns.create(path)
    talk = ("import socket; s = socket.create_server(('127.0.0.1', 0)); "
            "c = socket.create_connection(s.getsockname(), timeout=2); a, _ = s.accept(); "
            "c.sendall(b'hi'); print(a.recv(2).decode())")
    out = subprocess.run(["ip", "netns", "exec", name, sys.executable, "-c", talk],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "hi", out.stdout + out.stderr
    assert any(line.split()[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines())
    netns.remove(path)
    assert not path.exists() and name not in ip("netns", "list")
    netns.remove(path)  # twice is fine


def test_an_existing_name_is_refused_and_left_alone(name: str):
    path = Path("/run/netns") / name
    netns.create(path)
    before = os.stat(path).st_ino
    with pytest.raises(netns.NetnsError, match="already exists"):
        netns.create(path)
    assert os.stat(path).st_ino == before and "UP" in ip("-n", name, "link", "show", "lo").split(">")[0]


def test_the_directory_propagates_mounts_to_other_mount_namespaces(name: str):
    path = Path("/run/netns") / name
    netns.create(path)
    line = next(x for x in Path("/proc/self/mountinfo").read_text().splitlines() if x.split()[4] == "/run/netns")
    assert "shared:" in line


def test_namespaces_made_at_once_are_each_whole():
    from concurrent.futures import ThreadPoolExecutor

    paths = [Path("/run/netns") / f"corral-test-{uuid.uuid4().hex[:8]}" for _ in range(8)]
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(netns.create, paths))
        inodes = {os.stat(p).st_ino for p in paths}
        assert len(inodes) == 8  # eight namespaces, not one bound eight times
        for p in paths:
            assert "UP" in ip("-n", p.name, "link", "show", "lo").split(">")[0]
        mounts = [x for x in Path("/proc/self/mountinfo").read_text().splitlines() if x.split()[4] == "/run/netns"]
        assert len(mounts) == 1
    finally:
        for p in paths:
            netns.remove(p)
