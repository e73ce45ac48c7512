"""Snapshot, restore and migration between backends (SQLite → etcd)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from corral.store import open_store
from corral.store.snapshot import SnapshotError, copy_store, restore_snapshot, write_snapshot
from fixtures.etcd import EtcdCluster


async def filled_sqlite(path: Path, n: int = 1100):
    store = open_store(f"sqlite://{path}")
    await store.start()
    for i in range(n):
        await store.create(f"/registry/configmaps/default/c{i:05d}", f"v{i}".encode())
    await store.update("/registry/configmaps/default/c00000", b"changed", 0)
    await store.delete("/registry/configmaps/default/c00001")
    return store


async def test_snapshot_restore_and_migrate_into_etcd(tmp_path: Path, etcd_cluster: EtcdCluster) -> None:
    source = await filled_sqlite(tmp_path / "a.db")
    try:
        expected = [(kv.key, kv.value) for kv in (await source.list("")).items]
        info = await write_snapshot(source, tmp_path / "s.snap")
        assert info.count == len(expected) == 1099
        target = open_store(etcd_cluster.url())
        await target.start()
        try:
            restored = await restore_snapshot(target, tmp_path / "s.snap")
            assert restored.count == 1099
            assert [(kv.key, kv.value) for kv in (await target.list("")).items] == expected
            with pytest.raises(SnapshotError, match="already holds 1099 keys"):
                await restore_snapshot(target, tmp_path / "s.snap")
        finally:
            await target.close()
        migrated = open_store(etcd_cluster.url())
        await migrated.start()
        try:
            assert (await copy_store(source, migrated)).count == 1099
            assert [(kv.key, kv.value) for kv in (await migrated.list("")).items] == expected
        finally:
            await migrated.close()
    finally:
        await source.close()


async def test_damaged_snapshot_is_refused_before_writing(tmp_path: Path) -> None:
    source = await filled_sqlite(tmp_path / "a.db", 10)
    await write_snapshot(source, tmp_path / "s.snap")
    await source.close()
    lines = gzip.decompress((tmp_path / "s.snap").read_bytes()).splitlines(keepends=True)
    (tmp_path / "cut.snap").write_bytes(gzip.compress(b"".join(lines[:-1])))
    (tmp_path / "bad.snap").write_bytes(gzip.compress(b"".join(lines[:3] + lines[4:])))
    target = open_store(f"sqlite://{tmp_path / 'b.db'}")
    await target.start()
    try:
        with pytest.raises(SnapshotError, match="truncated"):
            await restore_snapshot(target, tmp_path / "cut.snap")
        with pytest.raises(SnapshotError, match="checksum"):
            await restore_snapshot(target, tmp_path / "bad.snap")
        assert await target.count("") == 0
    finally:
        await target.close()
