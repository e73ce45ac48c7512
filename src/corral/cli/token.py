"""``corral token``: bootstrap (join) tokens for new machines.

A join token is ``<id>.<secret>`` (6 and 16 characters of ``[a-z0-9]``),
kept where Kubernetes keeps bootstrap tokens: a Secret
``kube-system/bootstrap-token-<id>`` of type ``bootstrap.kubernetes.io/token``
with ``token-id``, ``token-secret``, ``expiration`` and
``usage-bootstrap-authentication``. The server authenticates the token as
``system:bootstrap:<id>`` in ``system:bootstrappers``, which may only ask
for a node client certificate (api/csr.py auto-approves it); the agent uses
that certificate from then on. An expired or deleted token stops working at
once. The commands talk to the running server with the admin kubeconfig
in the data directory (or ``--kubeconfig``), like ``kubeadm token``.

    corral token create --ttl 2h     # prints abcdef.0123456789abcdef
    corral agent --server https://198.18.200.10:6443 --token <it> --ca-file ca.crt
    corral token list
    corral token delete abcdef
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import secrets
import string
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from corral.client.api import ApiClient
from corral.client.errors import ApiError, NotFoundError
from corral.client.resources import SECRETS

NAMESPACE = "kube-system"
TOKEN_TYPE = "bootstrap.kubernetes.io/token"
DEFAULT_TTL = dt.timedelta(hours=24)
DEFAULT_GROUP = "system:bootstrappers:corral:default-node-token"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
ID_RE = re.compile(r"^[a-z0-9]{6}$")
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
_ALPHABET = string.ascii_lowercase + string.digits
T = TypeVar("T")


def new_token() -> str:
    pick = secrets.choice
    return "".join(pick(_ALPHABET) for _ in range(6)) + "." + "".join(pick(_ALPHABET) for _ in range(16))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(data: dict[str, Any], key: str) -> str:
    try:
        return base64.b64decode(data.get(key) or "").decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def token_secret(token: str, *, ttl: dt.timedelta | None, now: dt.datetime, description: str = "",
                 groups: tuple[str, ...] = (DEFAULT_GROUP,)) -> dict[str, Any]:
    """The Secret a bootstrap token lives in; ``ttl`` None = never expires."""
    match = TOKEN_RE.match(token)
    if match is None:
        raise ValueError("token: a bootstrap token looks like abcdef.0123456789abcdef ([a-z0-9], 6 + 16)")
    if ttl is not None and ttl <= dt.timedelta(0):
        raise ValueError(f"ttl: must be positive, got {ttl}")
    for group in groups:
        if not GROUP_RE.match(group):
            raise ValueError(f"groups: {group!r} must match system:bootstrappers:[a-z0-9:-]*")
    token_id, token_secret_ = match.groups()
    data = {"token-id": _b64(token_id), "token-secret": _b64(token_secret_),
            "usage-bootstrap-authentication": _b64("true")}
    if ttl is not None:
        data["expiration"] = _b64(f"{now + ttl:%Y-%m-%dT%H:%M:%SZ}")
    if description:
        data["description"] = _b64(description)
    if groups:
        data["auth-extra-groups"] = _b64(",".join(groups))
    return {"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": NAMESPACE}, "data": data}


async def create_token(client: ApiClient, *, ttl: dt.timedelta | None = DEFAULT_TTL, description: str = "",
                       groups: tuple[str, ...] = (DEFAULT_GROUP,), token: str | None = None) -> str:
    token = token or new_token()
    body = token_secret(token, ttl=ttl, now=dt.datetime.now(dt.UTC), description=description, groups=groups)
    await client.create(SECRETS, body, NAMESPACE)
    return token


async def list_tokens(client: ApiClient) -> list[dict[str, str]]:
    """One row per bootstrap token: id, expiration, usages, groups,
    description (never the secret half)."""
    secrets_ = await client.list(SECRETS, NAMESPACE)
    rows = []
    for s in secrets_.get("items") or []:
        if s.get("type") != TOKEN_TYPE:
            continue
        data = s.get("data") or {}
        usages = [k.removeprefix("usage-bootstrap-") for k in sorted(data)
                  if k.startswith("usage-bootstrap-") and _unb64(data, k) == "true"]
        rows.append({"id": _unb64(data, "token-id"), "expiration": _unb64(data, "expiration") or "<forever>",
                     "usages": ",".join(usages), "groups": _unb64(data, "auth-extra-groups"),
                     "description": _unb64(data, "description")})
    return sorted(rows, key=lambda r: r["id"])


async def delete_token(client: ApiClient, token_or_id: str) -> str:
    """Delete by id or whole token; returns the id."""
    token_id = token_or_id.split(".", 1)[0]
    if not ID_RE.match(token_id):
        raise ValueError(f"token: {token_or_id!r} is neither a token id ([a-z0-9]{{6}}) nor a token")
    await client.delete(SECRETS, f"bootstrap-token-{token_id}", NAMESPACE)
    return token_id


def parse_ttl(text: str) -> dt.timedelta | None:
    """``90s``, ``30m``, ``24h``, ``7d``; ``0`` = never expires (as kubeadm)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None:
        raise ValueError(f"ttl: expected a number with s, m, h or d (e.g. 24h), got {text!r}")
    value, unit = int(match.group(1)), match.group(2) or "s"
    if value == 0:
        return None
    return dt.timedelta(seconds=value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def _kubeconfig(data_dir: Path | None, kubeconfig: Path | None) -> Path:
    if kubeconfig is not None:
        return kubeconfig
    from corral.api.bootstrap import default_data_dir

    path = (data_dir or default_data_dir()) / "kubeconfig"
    if not path.exists():
        raise click.ClickException(f"no kubeconfig at {path}: is the server running with this --data-dir? "
                                   "(or pass --kubeconfig)")
    return path


def _run(kubeconfig: Path, action: Callable[[ApiClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with ApiClient.from_kubeconfig(str(kubeconfig), timeout=15.0) as client:
            return await action(client)

    try:
        return asyncio.run(go())
    except NotFoundError as exc:
        raise click.ClickException(f"no such token ({exc.message})") from exc
    except (ApiError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


def _where(fn: Callable[..., None]) -> Callable[..., None]:
    fn = click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), default=None,
                      help="An admin kubeconfig (default: DATA_DIR/kubeconfig).")(fn)
    return click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                        help="The server's data directory (default: $XDG_DATA_HOME/corral).")(fn)


@click.group()
def token() -> None:
    """Bootstrap tokens for machines that join the cluster."""


@token.command("create")
@_where
@click.option("--ttl", default="24h", show_default=True,
              help="How long the token works (s, m, h, d; 0 = forever).")
@click.option("--description", default="", help="A note kept with the token.")
@click.option("--group", "groups", multiple=True,
              help=f"Extra group for the token's user (repeat; default {DEFAULT_GROUP}).")
def create(data_dir: Path | None, kubeconfig: Path | None, ttl: str, description: str,
           groups: tuple[str, ...]) -> None:
    """Print a new join token for `corral agent --token`."""
    try:
        lifetime = parse_ttl(ttl)
        token_secret(new_token(), ttl=lifetime, now=dt.datetime.now(dt.UTC), groups=groups or (DEFAULT_GROUP,))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    path = _kubeconfig(data_dir, kubeconfig)
    click.echo(_run(path, lambda c: create_token(c, ttl=lifetime, description=description,
                                                 groups=groups or (DEFAULT_GROUP,))))


@token.command("list")
@_where
def list_(data_dir: Path | None, kubeconfig: Path | None) -> None:
    """The bootstrap tokens: id, expiry, usages, groups (never the secret)."""
    rows = _run(_kubeconfig(data_dir, kubeconfig), list_tokens)
    click.echo("TOKEN-ID\tEXPIRES\tUSAGES\tEXTRA-GROUPS\tDESCRIPTION")
    for r in rows:
        click.echo(f"{r['id']}\t{r['expiration']}\t{r['usages']}\t{r['groups']}\t{r['description']}")


@token.command("delete")
@_where
@click.argument("tokens", nargs=-1, required=True)
def delete(data_dir: Path | None, kubeconfig: Path | None, tokens: tuple[str, ...]) -> None:
    """Delete tokens by id (or whole token); they stop working at once."""
    path = _kubeconfig(data_dir, kubeconfig)
    for item in tokens:
        click.echo(f"bootstrap token {_run(path, lambda c, item=item: delete_token(c, item))} deleted")
