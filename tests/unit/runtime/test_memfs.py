"""The decisions of corral.runtime.memfs: when a state directory is a
tmpfs, and what mountinfo says (pure logic; the mounts themselves are
exercised in tests/integration/runtime/test_runtime_memory_state.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from corral.runtime import memfs
from corral.runtime.memfs import MemoryDir, MountEntry, decide

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /var/lib/corral/run rw,nosuid,nodev shared:9 - tmpfs corral-state rw,size=100k
31 22 0:41 / /var/lib/corral/runtime/run rw shared:10 - tmpfs corral-state rw
32 22 0:42 / /var/lib/corral\\040x/run rw - tmpfs corral-state rw
33 22 0:43 / /var/lib/corral/volumes/u1/mem rw - tmpfs tmpfs rw
34 22 0:44 / /var/lib/corralother/run rw - tmpfs corral-state rw
"""


def test_decide_mounts_as_root_and_falls_back_without():
    assert decide(0, None) == "mount"
    assert decide(1000, None) == "plain"
    assert decide(0, None, wanted=False) == "plain"


def test_decide_uses_an_earlier_agents_tmpfs_and_leaves_other_mounts_alone():
    tmpfs = MountEntry("/d/run", "tmpfs", "corral-state")
    assert decide(0, tmpfs) == "use"
    assert decide(1000, tmpfs) == "use"  # a restarted agent without root still finds its state
    assert decide(0, MountEntry("/d/run", "ext4", "/dev/sdb1")) == "plain"


def test_mountinfo_fields_and_escapes():
    entries = memfs.mounts(MOUNTINFO)
    assert entries[1] == MountEntry("/var/lib/corral/run", "tmpfs", "corral-state")
    assert entries[3].mount_point == "/var/lib/corral x/run"
    assert memfs.mounted_at(Path("/var/lib/corral/run"), MOUNTINFO) == entries[1]
    assert memfs.mounted_at(Path("/var/lib/corral/volumes"), MOUNTINFO) is None


def test_ours_under_is_corrals_mounts_below_a_root_deepest_first():
    found = memfs.ours_under(Path("/var/lib/corral"), MOUNTINFO)
    # not the plain tmpfs (not corral's), not a sibling sharing the prefix
    assert found == ["/var/lib/corral/runtime/run", "/var/lib/corral/run"]


def test_without_root_the_directory_stays_plain_and_the_log_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(memfs, "_said", set())
    caplog.set_level(logging.WARNING, logger="corral.runtime.memfs")
    first, second = MemoryDir(tmp_path / "a"), MemoryDir(tmp_path / "b")
    assert first.open() == tmp_path / "a" and second.open() == tmp_path / "b"
    assert not first.in_memory and not second.in_memory
    assert (tmp_path / "a").is_dir() and memfs.mounted_at(tmp_path / "a") is None
    said = [r for r in caplog.records if "stays on disk" in r.getMessage()]
    assert len(said) == 1 and "not root" in said[0].getMessage()
    assert not first.close()


def test_a_state_dir_not_asked_for_in_memory_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="corral.runtime.memfs")
    d = MemoryDir(tmp_path / "plain", wanted=False)
    d.open()
    assert not d.in_memory and not caplog.records
