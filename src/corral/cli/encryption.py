"""``corral encryption``: the keys that seal Secrets at rest.

    corral encryption status     # key names, which one seals
    corral encryption rotate     # a new sealing key; restart the server to re-encrypt

Old keys stay in the file so existing values still open; the server
re-encrypts every Secret with the new key when it next starts, after which
``rotate --prune`` drops the keys nothing uses any more.
"""

from __future__ import annotations

from pathlib import Path

import click


def _key_file(data_dir: Path | None) -> Path:
    from corral.api.bootstrap import default_data_dir
    from corral.api.encryption import KEY_FILE

    return (data_dir or default_data_dir()) / "pki" / KEY_FILE


@click.group()
def encryption() -> None:
    """Keys that encrypt Secrets at rest."""


@encryption.command("status")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
def status(data_dir: Path | None) -> None:
    """The key names; the first seals new values."""
    from corral.api.encryption import KeyRing

    path = _key_file(data_dir)
    if not path.exists():
        raise click.ClickException(f"no key file at {path} (the server makes one at first start)")
    ring = KeyRing.load(path)
    for i, (name, _secret) in enumerate(ring.keys):
        click.echo(f"{name}\t{'sealing' if i == 0 else 'opening only'}")


@encryption.command("rotate")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--prune", is_flag=True, help="Instead: drop every key but the sealing one (after a restart "
                                            "has re-encrypted everything).")
def rotate(data_dir: Path | None, prune: bool) -> None:
    """Add a new sealing key (or drop the old ones with --prune)."""
    from corral.api.encryption import KeyRing

    path = _key_file(data_dir)
    ring = KeyRing.ensure(path)
    if prune:
        dropped = [name for name, _ in ring.keys[1:]]
        ring.keys = ring.keys[:1]
        ring.save()
        click.echo(f"kept {ring.primary}; dropped {', '.join(dropped) or 'nothing'}")
        return
    click.echo(f"new sealing key {ring.rotate()}; restart the server to re-encrypt existing Secrets")
