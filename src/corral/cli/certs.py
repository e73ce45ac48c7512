"""``corral certs``: every certificate corral uses, and renewal.

    corral certs                  # kind, file, subject, SANs, expiry, days left
    corral certs --etcd-certfile /etc/corral/etcd-client.crt --etcd-cafile /etc/corral/etcd-ca.crt
    corral certs renew            # a new API serving certificate; the running server serves it within seconds

Listed: the cluster CA and the API server's serving certificate
(DATA_DIR/pki), the node client certificate of the agent whose data
directory is DATA_DIR/agent (``corral up``, or ``--agent-data-dir``), and
the etcd client certificate and CA when given (the server does not keep a
copy of the paths it was started with). The server renews its serving
certificate by itself when fewer than 30 days are left (at start and while
running); agents renew their node certificates at 70-90 % of their lifetime
(client/nodecert.py). The CA itself (10 years) is not renewed by corral.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import click

from corral.api.tls import RENEW_BEFORE  # "renew soon" is when the server renews its own


@dataclass(frozen=True)
class CertInfo:
    kind: str
    path: Path
    subject: str
    sans: str
    not_after: dt.datetime

    def days_left(self, now: dt.datetime) -> int:
        return (self.not_after - now).days


def describe(kind: str, path: Path) -> CertInfo:
    """The first certificate in a PEM file (a key beside it is skipped)."""
    from cryptography import x509

    certs = x509.load_pem_x509_certificates(path.read_bytes())
    cert = certs[0]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.DNSName)]
        names += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return CertInfo(kind, path, cert.subject.rfc4514_string(), ",".join(names) or "-", cert.not_valid_after_utc)


def known_certificates(data_dir: Path, agent_dir: Path | None, etcd_files: dict[str, Path | None]) -> list[tuple[str, Path]]:
    pki = data_dir / "pki"
    agent_pki = (agent_dir or data_dir / "agent") / "pki"
    found = [("cluster CA", pki / "ca.crt"), ("API server serving", pki / "apiserver.crt"),
             ("API server kubelet client", pki / "kubelet-client.pem")]
    found += [("node serving" if p.name == "node-serving.pem" else "node client", p)
              for p in sorted(agent_pki.glob("*.pem"))]
    found += [(kind, p) for kind, p in etcd_files.items() if p is not None]
    return [(kind, p) for kind, p in found if p.exists()]


def _data_dir(value: Path | None) -> Path:
    from corral.api.bootstrap import default_data_dir

    return value or default_data_dir()


@click.group(invoke_without_command=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="The data directory (default: $XDG_DATA_HOME/corral).")
@click.option("--agent-data-dir", type=click.Path(path_type=Path), default=None,
              help="An agent's data directory (default: DATA_DIR/agent).")
@click.option("--etcd-certfile", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None)
@click.option("--etcd-cafile", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None)
@click.pass_context
def certs(ctx: click.Context, data_dir: Path | None, agent_data_dir: Path | None, etcd_certfile: Path | None,
          etcd_cafile: Path | None) -> None:
    """Show the cluster's certificates and when they expire."""
    ctx.obj = _data_dir(data_dir)
    if ctx.invoked_subcommand is not None:
        return
    files = known_certificates(ctx.obj, agent_data_dir, {"etcd client": etcd_certfile, "etcd CA": etcd_cafile})
    if not files:
        raise click.ClickException(f"no certificates under {ctx.obj}")
    now = dt.datetime.now(dt.UTC)
    click.echo("KIND\tFILE\tSUBJECT\tSANS\tEXPIRES\tDAYS-LEFT")
    for kind, path in files:
        try:
            info = describe(kind, path)
        except (ValueError, IndexError) as exc:
            click.echo(f"{kind}\t{path}\tunreadable: {exc}")
            continue
        left = info.days_left(now)
        note = " (expired)" if left < 0 else " (renew soon)" if info.not_after - now < RENEW_BEFORE else ""
        click.echo(f"{kind}\t{path}\t{info.subject}\t{info.sans}\t{info.not_after:%Y-%m-%dT%H:%M:%SZ}\t"
                   f"{left}{note}")


@certs.command("renew")
@click.option("--host", "hosts", multiple=True,
              help="A name or address to add to the certificate (repeat); the current ones are kept.")
@click.pass_obj
def renew(data_dir: Path, hosts: tuple[str, ...]) -> None:
    """Re-issue the API server's serving certificate from the cluster CA."""
    from corral.api.tls import renew_serving_cert

    pki = data_dir / "pki"
    if not (pki / "ca.key").exists() or not (pki / "apiserver.crt").exists():
        raise click.ClickException(f"no cluster CA and serving certificate in {pki}")
    files = renew_serving_cert(data_dir, list(hosts))
    info = describe("API server serving", files.cert)
    click.echo(f"renewed {files.cert} (valid until {info.not_after:%Y-%m-%dT%H:%M:%SZ}, for {info.sans}); "
               "a running server serves it within seconds")
