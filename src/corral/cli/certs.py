"""``corral certs``: the certificates in a data directory, and renewal.

    corral certs                 # each certificate: subject, issuer, expiry, days left
    corral certs renew           # re-issue the API server's serving certificate

The server renews its serving certificate by itself at start when fewer
than 30 days are left; ``renew`` forces it (the running server picks it up
at its next start). Agents renew their node certificates themselves
(client/nodecert.py).
"""

from __future__ import annotations

from pathlib import Path

import click


def _data_dir(value: Path | None) -> Path:
    from corral.api.bootstrap import default_data_dir

    return value or default_data_dir()


def certificate_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*.crt") if p.is_file())


@click.group(invoke_without_command=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="The data directory (default: $XDG_DATA_HOME/corral).")
@click.pass_context
def certs(ctx: click.Context, data_dir: Path | None) -> None:
    """Show the cluster's certificates and when they expire."""
    ctx.obj = _data_dir(data_dir)
    if ctx.invoked_subcommand is not None:
        return
    from corral.api.certs import describe_certificate

    files = certificate_files(ctx.obj)
    if not files:
        raise click.ClickException(f"no certificates under {ctx.obj}")
    for path in files:
        try:
            info = describe_certificate(path)
        except ValueError as exc:
            click.echo(f"{path.relative_to(ctx.obj)}\tunreadable: {exc}")
            continue
        click.echo(f"{path.relative_to(ctx.obj)}\t{info['subject']}\tissuer={info['issuer']}\t"
                   f"expires={info['expires']}\tdays_left={info['days_left']}")


@certs.command("renew")
@click.option("--host", "hosts", multiple=True, default=("127.0.0.1", "localhost", "::1"), show_default=True,
              help="Names and addresses the serving certificate is valid for (repeat).")
@click.pass_obj
def renew(data_dir: Path, hosts: tuple[str, ...]) -> None:
    """Re-issue the API server's serving certificate from the cluster CA."""
    from corral.api.tls import ensure_serving_files

    pki = data_dir / "pki"
    if not (pki / "ca.key").exists():
        raise click.ClickException(f"no cluster CA in {pki}")
    for name in ("apiserver.crt", "apiserver.key"):
        (pki / name).unlink(missing_ok=True)
    files = ensure_serving_files(data_dir, sorted(set(hosts)))
    click.echo(f"renewed {files.cert}; restart the server to serve it")
