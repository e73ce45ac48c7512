"""The periodic refresh of object-backed volumes rewrites a volume only when
its payload changed or its ``..data`` is no longer the one written."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from corral.agent import volumes
from corral.agent.volumes import VolumeManager

POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "a"}},
    "spec": {"volumes": [{"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "sub/name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]},
}


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    done: list[Path] = []
    real = volumes._write_and_link

    def counting(path: Path, payload: volumes.Payload) -> str:
        done.append(path)
        return real(path, payload)

    monkeypatch.setattr(volumes, "_write_and_link", counting)
    return done


async def _prepare(manager: VolumeManager, pod: dict[str, Any]) -> Path:
    vols = await manager.prepare(pod, host_ip="127.0.0.1", pod_ip="127.0.0.1")
    return vols["info"].path


async def test_an_unchanged_volume_is_not_rewritten(tmp_path: Path, writes: list[Path]) -> None:
    manager = VolumeManager(None, tmp_path)  # type: ignore[arg-type]
    path = await _prepare(manager, POD)
    assert (path / "labels").read_text() == 'app="a"' and (path / "sub" / "name").read_text() == "p"
    target = (path / "..data").readlink()
    for _ in range(3):
        assert await _prepare(manager, POD) == path
    assert len(writes) == 1 and (path / "..data").readlink() == target

    changed = copy.deepcopy(POD)
    changed["metadata"]["labels"]["app"] = "b"
    await _prepare(manager, changed)
    assert len(writes) == 2 and (path / "labels").read_text() == 'app="b"'
    assert (path / "..data").readlink() != target and not (path / target).exists()


async def test_a_volume_gone_from_disk_is_written_again(tmp_path: Path, writes: list[Path]) -> None:
    manager = VolumeManager(None, tmp_path)  # type: ignore[arg-type]
    path = await _prepare(manager, POD)
    shutil.rmtree(path)
    await _prepare(manager, POD)
    assert len(writes) == 2 and (path / "sub" / "name").read_text() == "p"
    (path / "..data").unlink()  # ..data pointing elsewhere (or nowhere) is a change too
    await _prepare(manager, POD)
    assert len(writes) == 3 and (path / "labels").read_text() == 'app="a"'


async def test_a_removed_pod_is_forgotten(tmp_path: Path, writes: list[Path]) -> None:
    manager = VolumeManager(None, tmp_path)  # type: ignore[arg-type]
    path = await _prepare(manager, POD)
    manager.remove_pod("u1")
    assert not path.exists() and not manager._written
    await _prepare(manager, POD)
    assert len(writes) == 2 and (path / "labels").exists()


async def test_small_payloads_into_memory_are_written_on_the_loop_others_in_a_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    where: list[bool] = []
    real = volumes._write_and_link

    def noting(path: Path, payload: volumes.Payload) -> str:
        where.append(threading.current_thread() is threading.main_thread())
        return real(path, payload)

    monkeypatch.setattr(volumes, "_write_and_link", noting)
    manager = VolumeManager(None, tmp_path / "disk", memory=tmp_path / "run")  # type: ignore[arg-type]
    await _prepare(manager, POD)
    big = copy.deepcopy(POD)
    big["metadata"]["labels"]["app"] = "x" * (volumes.INLINE_BYTES + 1)
    path = await _prepare(manager, big)
    assert where == [True, False]
    assert (path / "labels").read_text() == f'app="{"x" * (volumes.INLINE_BYTES + 1)}"'
    assert path.is_relative_to(tmp_path / "run")
    on_disk = VolumeManager(None, tmp_path / "disk")  # type: ignore[arg-type]
    await _prepare(on_disk, POD)  # a disk may stall: never on the loop
    assert where == [True, False, False]
