"""Pure helpers of the runtimes: limits, pull policy, Docker states and log frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.runtime.docker import default_pull_policy, state_from_inspect
from corral.runtime.dockerlogs import _write, last_timestamp
from corral.runtime.limits import ContainerLimits, LimitError
from corral.runtime.shim import LogWriter, parse_rfc3339nano


def test_limits_from_container_and_docker_mapping() -> None:
    c = {"resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}}
    pod = {"metadata": {"annotations": {"corral.dev/pids-limit": "50"}}}
    lim = ContainerLimits.from_container(c, pod)
    assert (lim.cpu_millis, lim.memory_bytes, lim.pids) == (250, 64 << 20, 50)
    assert lim.cpu_quota_us == 25_000
    assert lim.docker_host_config() == {
        "cpu_period": 100_000, "cpu_quota": 25_000, "mem_limit": 64 << 20,
        "memswap_limit": 64 << 20, "pids_limit": 50,
    }
    assert ContainerLimits.from_container({}).empty


@pytest.mark.parametrize("limits, pod, fragment", [
    ({"memory": "lots"}, None, "resources.limits"),
    ({"cpu": "0"}, None, "resources.limits.cpu"),
    ({}, {"metadata": {"annotations": {"corral.dev/pids-limit": "-1"}}}, "pids-limit"),
])
def test_bad_limits_name_the_field(limits: dict, pod: dict | None, fragment: str) -> None:
    with pytest.raises(LimitError, match=fragment):
        ContainerLimits.from_container({"resources": {"limits": limits}}, pod)


@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("busybox:1.36", "IfNotPresent"),
    ("registry:5000/app", "Always"), ("registry:5000/app:v2", "IfNotPresent"),
    ("app@sha256:abc", "IfNotPresent"),
])
def test_default_pull_policy(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy


def test_docker_states() -> None:
    oom = state_from_inspect({"Status": "exited", "ExitCode": 137, "OOMKilled": True,
                              "StartedAt": "2026-01-01T00:00:00.5Z",
                              "FinishedAt": "2026-01-01T00:00:01Z"})
    assert (oom.status, oom.exit_code, oom.reason) == ("exited", 137, "OOMKilled")
    assert oom.started_at.microsecond == 500_000
    never = state_from_inspect({"Status": "created", "Error": "exec failed",
                                "FinishedAt": "0001-01-01T00:00:00Z"})
    assert never.reason == "StartError" and never.message == "exec failed"
    assert state_from_inspect({"Status": "running", "StartedAt": "2026-01-01T00:00:00Z"}).status \
        == "running"


def test_log_frames_resume_without_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    writer = LogWriter(path, 1 << 20)
    _write(writer, b"stdout", b"2026-01-01T00:00:01.1Z one\n", None)
    _write(writer, b"stderr", b"2026-01-01T00:00:02Z part", None)
    writer.close()
    last = last_timestamp(path)
    assert last == parse_rfc3339nano("2026-01-01T00:00:02Z")
    writer = LogWriter(path, 1 << 20)  # a restarted follower asked from `last` on
    _write(writer, b"stderr", b"2026-01-01T00:00:02Z part", last)
    _write(writer, b"stdout", b"2026-01-01T00:00:03Z two\n", last)
    writer.close()
    lines = path.read_text().splitlines()
    assert lines == [
        "2026-01-01T00:00:01.100000000Z stdout F one",
        "2026-01-01T00:00:02.000000000Z stderr P part",
        "2026-01-01T00:00:03.000000000Z stdout F two",
    ]
