"""``corral token``: join tokens for new machines.

A join token is, for now, one more line in the server's static token file
(``DATA_DIR/tokens.csv``, Kubernetes' ``token,user,uid,"groups"`` format)
for the user ``system:node-join:<id>`` in the group ``system:nodes``; a
running server picks new lines up within a second (api/auth.py reloads the
file). What the group may do is
the ClusterRole ``corral:node`` (what an agent reads and writes), bound to
the group by ``corral token create`` when the server is up, through the
admin kubeconfig in the data directory.

    corral token create            # prints a token
    corral agent --server https://198.18.200.10:6443 --token <it> --ca-file ca.crt
"""

from __future__ import annotations

import csv
import io
import os
import secrets
from pathlib import Path
from typing import Any

import click

NODE_GROUP = "system:nodes"
JOIN_USER_PREFIX = "system:node-join:"


def _token_file(data_dir: Path) -> Path:
    return data_dir / "tokens.csv"


def create_join_token(data_dir: Path, *, group: str = NODE_GROUP, description: str = "") -> str:
    """Append a join token to the server's token file; returns the token."""
    if not group or any(c in group for c in ',"\n'):
        raise ValueError(f"group: must be non-empty without commas or quotes, got {group!r}")
    from corral.api.auth import ensure_token_file

    path = _token_file(data_dir)
    ensure_token_file(path)  # the admin token stays first: the server's kubeconfig uses it
    ident = secrets.token_hex(3)
    token = f"{ident}.{secrets.token_urlsafe(24)}"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(
        [token, f"{JOIN_USER_PREFIX}{ident}", f"join-{ident}", group]
    )
    text = path.read_text()
    with open(path, "a") as fh:
        if text and not text.endswith("\n"):
            fh.write("\n")
        if description:
            fh.write(f"# join token {ident}: {description.replace(chr(10), ' ')}\n")
        fh.write(out.getvalue())
    os.chmod(path, 0o600)
    return token


NODE_ROLE = "corral:node"


def _rule(group: str, resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs}


READ = ["get", "list", "watch"]
NODE_RULES = [
    _rule("", ["nodes"], [*READ, "create", "update", "patch"]),
    _rule("", ["nodes/status"], ["patch", "update"]),
    _rule("coordination.k8s.io", ["leases"], [*READ, "create", "update", "patch"]),
    _rule("", ["pods"], [*READ, "delete"]),
    _rule("", ["pods/status"], ["patch", "update"]),
    _rule("", ["events"], ["create", "update", "patch"]),
    _rule("events.k8s.io", ["events"], ["create", "update", "patch"]),
    _rule("", ["configmaps", "secrets", "services", "endpoints", "persistentvolumeclaims",
               "persistentvolumes"], READ),
    _rule("", ["serviceaccounts/token"], ["create"]),
    _rule("", ["namespaces"], [*READ, "create"]),
    _rule("node.k8s.io", ["runtimeclasses"], READ),
]


async def ensure_node_rbac(client: Any, group: str = NODE_GROUP) -> None:
    """The ClusterRole an agent needs and its binding to ``group``
    (idempotent: both are replaced with what this version needs)."""
    from corral.client.errors import AlreadyExistsError
    from corral.client.resources import Resource

    roles = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)
    bindings = Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                        "ClusterRoleBinding", False)
    gv = "rbac.authorization.k8s.io/v1"
    objs = [
        (roles, {"apiVersion": gv, "kind": "ClusterRole", "metadata": {"name": NODE_ROLE},
                 "rules": NODE_RULES}),
        (bindings, {"apiVersion": gv, "kind": "ClusterRoleBinding",
                    "metadata": {"name": f"{NODE_ROLE}:{group}"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": NODE_ROLE},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                  "name": group}]}),
    ]
    for res, body in objs:
        try:
            await client.create(res, body)
        except AlreadyExistsError:
            current = await client.get(res, body["metadata"]["name"])
            body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
            await client.replace(res, body)


def _grant_online(data_dir: Path, group: str) -> str:
    """Bind the node role through the running server, if there is one."""
    import asyncio

    from corral.client.api import ApiClient
    from corral.client.errors import ApiError

    kubeconfig = data_dir / "kubeconfig"
    if not kubeconfig.exists():
        return "no kubeconfig in the data dir: run `corral token create` again once the server is up"

    async def grant() -> None:
        async with ApiClient.from_kubeconfig(str(kubeconfig), timeout=10.0) as client:
            await ensure_node_rbac(client, group)

    try:
        asyncio.run(grant())
    except (ApiError, OSError, ValueError) as exc:
        return f"could not bind the {NODE_ROLE} ClusterRole ({exc}); run again once the server is up"
    return ""


def list_join_tokens(data_dir: Path) -> list[tuple[str, str]]:
    """(id, group) of each join token in the token file; never the secret."""
    path = _token_file(data_dir)
    if not path.exists():
        return []
    out = []
    for row in csv.reader(io.StringIO(path.read_text())):
        if len(row) >= 2 and not row[0].startswith("#") and row[1].startswith(JOIN_USER_PREFIX):
            out.append((row[1].removeprefix(JOIN_USER_PREFIX), row[3] if len(row) > 3 else ""))
    return out


def _data_dir(value: Path | None) -> Path:
    from corral.api.bootstrap import default_data_dir

    return value or default_data_dir()


@click.group()
def token() -> None:
    """Join tokens for machines that join the cluster."""


@token.command("create")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="The server's data directory (default: $XDG_DATA_HOME/corral).")
@click.option("--group", default=NODE_GROUP, show_default=True, help="Group the token's user is in.")
@click.option("--description", default="", help="A note kept beside the token in the token file.")
def create(data_dir: Path | None, group: str, description: str) -> None:
    """Print a new join token for `corral agent --token`."""
    where = _data_dir(data_dir)
    try:
        click.echo(create_join_token(where, group=group, description=description))
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    note = _grant_online(where, group)
    if note:
        click.echo(f"note: {note}", err=True)


@token.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
def list_(data_dir: Path | None) -> None:
    """The join tokens' ids and groups (not the secrets)."""
    for ident, group in list_join_tokens(_data_dir(data_dir)):
        click.echo(f"{ident}\t{group}")
