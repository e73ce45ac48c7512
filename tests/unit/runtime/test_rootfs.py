"""The pure parts of the pod root: which host mounts come along, what the
sandbox hides or keeps."""

from __future__ import annotations

from pathlib import Path

from corral.runtime.init import sandbox_spec
from corral.runtime.rootfs import host_mounts

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
28 27 0:25 / /home rw - ext4 /dev/vdb rw
29 28 0:26 / /home/me/cache rw - tmpfs tmpfs rw
30 27 0:27 / /tmp rw - tmpfs tmpfs rw
31 27 0:28 / /run/netns rw - tmpfs tmpfs rw
32 27 0:29 / /mnt/with\\040space rw - tmpfs tmpfs rw
"""


def test_host_mounts_are_the_top_level_ones_the_pod_does_not_replace():
    assert host_mounts(MOUNTINFO) == ["/home", "/mnt/with space"]


def test_host_mounts_without_a_root_line_is_empty():
    assert host_mounts("22 27 0:21 / /proc rw - proc proc rw\n") == []


def _pod(**container: object) -> dict:
    return {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", **container}]}}


def test_without_a_root_the_data_dir_stays_in_view(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    spec = sandbox_spec(_pod(command=["sleep"]), data)
    assert spec["keep"] == [str(data)] and "rootfs" not in spec and "mask" not in spec


def test_with_a_root_the_data_dir_is_hidden_and_programs_kept(tmp_path: Path):
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    spec = sandbox_spec(_pod(command=[str(venv / "python")]), tmp_path / "data", rootfs=True)
    assert spec["rootfs"] is True
    assert spec["keep"] == [str(tmp_path / "venv")]  # the whole prefix, not the data dir


def test_a_data_dir_outside_tmp_is_masked_unless_the_pod_runs_from_it(tmp_path: Path):
    outside = Path("/var/tmp") / f"corral-rootfs-unit-{tmp_path.name}"
    outside.mkdir(exist_ok=True)
    try:
        assert sandbox_spec(_pod(command=["sleep"]), outside, rootfs=True)["mask"] == [str(outside)]
        inside = sandbox_spec(_pod(command=[str(outside / "prog")]), outside, rootfs=True)
        assert "mask" not in inside
    finally:
        outside.rmdir()


def test_the_container_being_started_counts_even_if_the_pod_lacks_it(tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    spec = sandbox_spec({"spec": {}}, tmp_path, rootfs=True, also={"name": "c", "workingDir": str(work)})
    assert spec["keep"] == [str(work)]


def test_container_binds_attach_parents_before_children(tmp_path: Path):
    import os

    from corral.runtime.rootfs import ContainerBinds, supported

    if supported(tmp_path) is not None:
        import pytest

        pytest.skip("open_tree needs root")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    binds = ContainerBinds([{"source": str(tmp_path / "a"), "target": "/data/cache"},
                            {"source": str(tmp_path / "b"), "target": "/data", "readOnly": True}])
    try:
        assert [(b.target, b.read_only, b.is_dir) for b in binds.binds] == [
            ("/data", True, True), ("/data/cache", False, True)]
        assert all(os.get_inheritable(b.fd) is False for b in binds.binds)
    finally:
        binds.close()
