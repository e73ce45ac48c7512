"""subPath mounts stay inside their volume."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.agent.volumes import PodVolume, VolumeError, container_mounts, write_atomic


def test_a_subpath_through_a_planted_symlink_is_refused(tmp_path: Path):
    scratch = tmp_path / "scratch"
    (scratch / "ok").mkdir(parents=True)
    os.symlink("/etc", scratch / "escape")
    cfg = tmp_path / "cfg"
    write_atomic(cfg, {"greeting": (b"hi", 0o644)})
    volumes = {"scratch": PodVolume("scratch", scratch), "cfg": PodVolume("cfg", cfg)}
    good = container_mounts({"name": "c", "volumeMounts": [
        {"name": "scratch", "mountPath": "/a", "subPath": "ok/new"},
        {"name": "cfg", "mountPath": "/b", "subPath": "greeting"}]}, volumes)
    assert good[0].host_path == scratch.resolve() / "ok" / "new" and good[0].host_path.is_dir()
    assert good[1].host_path.read_bytes() == b"hi" and not good[1].host_path.is_symlink()
    with pytest.raises(VolumeError, match=r"volumeMounts\[0\].subPath: 'escape/passwd' resolves outside"):
        container_mounts({"name": "c", "volumeMounts": [
            {"name": "scratch", "mountPath": "/x", "subPath": "escape/passwd"}]}, volumes)
