"""Two HA servers over etcd, each with two API workers: /readyz and
/metrics on each port (answered by the workers) say whether that server
holds the leader Lease, which its server process decides."""

from __future__ import annotations

import shutil
import ssl
import urllib.request
from pathlib import Path

from tests.conftest import wait_for

from fixtures.etcd import EtcdCluster
from fixtures.ha import ServerProcess


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def roles(server: ServerProcess, times: int = 8) -> set[str]:
    """What the port says over ``times`` new connections (spread over the workers)."""
    return {server.role(2.0) for _ in range(times)}


def master_status(server: ServerProcess, token: str) -> str:
    request = urllib.request.Request(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, context=_insecure(), timeout=5) as response:
        lines = response.read().decode().splitlines()
    return next(line.rsplit(" ", 1)[1] for line in lines if line.startswith("leader_election_master_status{"))


def test_workers_report_their_servers_leader_election_role(etcd: EtcdCluster, tmp_path: Path) -> None:
    url = etcd.url()
    first = ServerProcess(tmp_path / "s0", url, "--api-workers", "2")
    second = None
    try:
        first.wait_ready()
        wait_for(lambda: roles(first) == {"leader"}, 30, message="the first server's workers to say leader")
        d = tmp_path / "s1"
        (d / "pki").mkdir(parents=True)
        for name in ("ca.crt", "ca.key"):
            shutil.copy(first.data_dir / "pki" / name, d / "pki" / name)
        shutil.copy(first.data_dir / "tokens.csv", d / "tokens.csv")
        second = ServerProcess(d, url, "--api-workers", "2")
        second.wait_ready()
        wait_for(lambda: roles(second) == {"follower"}, 30, message="the second server's workers to say follower")
        token = (first.data_dir / "tokens.csv").read_text().split(",", 1)[0]
        assert {master_status(first, token) for _ in range(6)} == {"1.0"}
        assert {master_status(second, token) for _ in range(6)} == {"0.0"}
    finally:
        for server in (first, second):
            if server is not None:
                server.stop()
