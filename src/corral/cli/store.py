"""``corral store snapshot|restore|migrate``: backups and moving to etcd.

Works on store URLs directly (``sqlite:///path/state.db`` or
``etcd://h1:2379,h2:2379``). A SQLite store can be read only while no server
has it open (its file lock says so); etcd can be snapshotted live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from corral.store.protocol import Store, StoreError

T = TypeVar("T")


def _run(main: Callable[[], Awaitable[T]]) -> T:
    from corral.store.snapshot import SnapshotError

    try:
        return asyncio.run(main())
    except (SnapshotError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # a bad URL: open_store names the part
        raise click.BadParameter(str(exc)) from exc


async def _opened(url: str) -> Store:
    from corral.store import open_store

    store = open_store(url)
    await store.start()
    return store


@click.group()
def store() -> None:
    """Back up, restore and migrate the cluster's store."""


@store.command()
@click.option("--store", "url", required=True, help="Store URL (sqlite:///... or etcd://...).")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def snapshot(url: str, file: Path) -> None:
    """Write every object, as of one revision, to FILE."""
    from corral.store.snapshot import write_snapshot

    async def main() -> None:
        st = await _opened(url)
        try:
            info = await write_snapshot(st, file, source=url)
        finally:
            await st.close()
        click.echo(f"snapshot of {info.count} keys at revision {info.revision} written to {file}")

    _run(main)


@store.command()
@click.option("--store", "url", required=True, help="Store URL of an EMPTY store to fill.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore(url: str, file: Path) -> None:
    """Write every object of snapshot FILE into an empty store (revisions renumber)."""
    from corral.store.snapshot import restore_snapshot

    async def main() -> None:
        st = await _opened(url)
        try:
            info = await restore_snapshot(st, file)
        finally:
            await st.close()
        click.echo(f"restored {info.count} keys from {file} (taken at revision {info.revision}); "
                   "resourceVersions are renumbered: clients re-list")

    _run(main)


@store.command()
@click.option("--from", "source", required=True, help="Store URL to copy from, e.g. sqlite:///DATA/state.db.")
@click.option("--to", "target", required=True, help="Empty store URL to copy into, e.g. etcd://h1:2379,h2:2379.")
def migrate(source: str, target: str) -> None:
    """Copy a cluster's store (e.g. one-machine SQLite) into another (e.g. etcd)."""
    from corral.store.snapshot import copy_store

    async def main() -> None:
        src = await _opened(source)
        try:
            dst = await _opened(target)
            try:
                info = await copy_store(src, dst)
            finally:
                await dst.close()
        finally:
            await src.close()
        click.echo(f"copied {info.count} keys (source revision {info.revision}) from {source} to "
                   f"{target}; resourceVersions are renumbered")

    _run(main)
