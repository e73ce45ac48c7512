"""The sim's open-files budget: per-node watches hold a socket per node, so
the limit is raised up front, or the run refused with the reason."""

from __future__ import annotations

import resource

import pytest
from click.testing import CliRunner

from corral.cli.sim import sim
from corral.sim.cluster import REQUEST_CONNECTIONS, HollowCluster, fds_needed, raise_fd_limit


def test_per_node_watches_need_a_descriptor_per_node():
    assert fds_needed(5000, "per-node") - fds_needed(5000, "shared") == 4999
    assert fds_needed(1, "shared") > REQUEST_CONNECTIONS


def test_raise_fd_limit_raises_the_soft_limit_and_refuses_past_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < 1100:
        pytest.skip(f"needs a finite hard limit and soft >= 1100 (soft={soft}, hard={hard})")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        assert raise_fd_limit(1000) == 1024  # enough already: left alone
        assert raise_fd_limit(1100) == 1100
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 1100
        with pytest.raises(OSError, match=f"hard limit .* is {hard}"):
            raise_fd_limit(hard + 1)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 1100
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_cli_refuses_more_nodes_than_descriptors_with_the_way_out():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 90_000:
        pytest.skip(f"hard open-files limit {hard} allows 100,000 nodes")
    result = CliRunner().invoke(sim, ["--nodes", "100000", "--server", "https://127.0.0.1:1",
                                      "--token", "t", "--pod-watch", "per-node"])
    assert result.exit_code != 0
    assert "--pod-watch shared" in result.output and "hard limit" in result.output


def test_pod_watch_must_be_known():
    with pytest.raises(ValueError, match="pod_watch: must be one of per-node, shared"):
        HollowCluster("https://127.0.0.1:1", token="t", count=1, pod_watch="each")
    result = CliRunner().invoke(sim, ["--server", "https://127.0.0.1:1", "--token", "t", "--pod-watch", "each"])
    assert result.exit_code == 2 and "--pod-watch" in result.output
