"""Reading a kubeconfig file the way kubectl does (the parts corral uses).

Relative ``certificate-authority`` and ``tokenFile`` paths are resolved
against the kubeconfig's own directory, as Kubernetes does, so a generated
kubeconfig can sit next to its CA file and be moved as a unit.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

import yaml


class KubeconfigError(ValueError):
    """A kubeconfig that cannot be used; the message names the field."""


@dataclass(frozen=True)
class KubeConfig:
    server: str
    token: str | None = None
    ca_file: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    namespace: str = "default"
    context: str = ""
    servers: tuple[str, ...] = ()
    """Every API server of an HA control plane, from the cluster's
    ``corral.io/servers`` extension (kubectl ignores it and uses ``server``)."""


def load_kubeconfig(path: str, context: str | None = None) -> KubeConfig:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise KubeconfigError(f"kubeconfig {path}: {exc.strerror}") from exc
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig {path}: not valid YAML: {exc}") from exc
    return parse_kubeconfig(doc, context=context, base_dir=os.path.dirname(os.path.abspath(path)))


def parse_kubeconfig(doc: Any, *, context: str | None = None, base_dir: str = ".") -> KubeConfig:
    if not isinstance(doc, dict):
        raise KubeconfigError("kubeconfig: expected a mapping at the top level")
    name = context or doc.get("current-context")
    if not name:
        raise KubeconfigError("current-context: not set and no context was given")
    ctx = _named(doc, "contexts", "context", name)
    cluster_name = ctx.get("cluster")
    if not cluster_name:
        raise KubeconfigError(f"contexts[{name}].context.cluster: required")
    cluster = _named(doc, "clusters", "cluster", cluster_name)
    user_name = ctx.get("user")
    user = _named(doc, "users", "user", user_name) if user_name else {}

    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise KubeconfigError(
            f"clusters[{cluster_name}].cluster.server: expected an http(s) URL, got {server!r}"
        )
    ca_data = None
    if cluster.get("certificate-authority-data"):
        field = f"clusters[{cluster_name}].cluster.certificate-authority-data"
        ca_data = _b64(cluster["certificate-authority-data"], field)
    ca_file = _path(cluster.get("certificate-authority"), base_dir)
    return KubeConfig(
        server=server.rstrip("/"),
        token=_token(user, user_name or "", base_dir),
        ca_file=ca_file,
        ca_data=ca_data,
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        namespace=ctx.get("namespace") or "default",
        context=name,
        servers=_servers(cluster, cluster_name, server.rstrip("/")),
    )


SERVERS_EXTENSION = "corral.io/servers"


def _servers(cluster: dict[str, Any], cluster_name: str, server: str) -> tuple[str, ...]:
    for entry in cluster.get("extensions") or []:
        if not isinstance(entry, dict) or entry.get("name") != SERVERS_EXTENSION:
            continue
        field = f"clusters[{cluster_name}].cluster.extensions[{SERVERS_EXTENSION}].extension.servers"
        urls = (entry.get("extension") or {}).get("servers")
        if not isinstance(urls, list) or not all(
            isinstance(u, str) and u.startswith(("https://", "http://")) for u in urls
        ):
            raise KubeconfigError(f"{field}: expected a list of http(s) URLs")
        ordered = [server] + [u.rstrip("/") for u in urls if u.rstrip("/") != server]
        return tuple(ordered)
    return ()


def _named(doc: dict[str, Any], section: str, inner: str, name: str) -> dict[str, Any]:
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise KubeconfigError(f"{section}: expected a list")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(inner)
            if not isinstance(body, dict):
                raise KubeconfigError(f"{section}[{name}].{inner}: expected a mapping")
            return body
    raise KubeconfigError(f"{section}: no entry named {name!r}")


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise KubeconfigError(f"{field}: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KubeconfigError(f"{field}: not valid base64") from exc


def _path(value: Any, base_dir: str) -> str | None:
    if not value:
        return None
    return value if os.path.isabs(value) else os.path.join(base_dir, value)


def _token(user: dict[str, Any], user_name: str, base_dir: str) -> str | None:
    if user.get("token"):
        return str(user["token"])
    token_file = _path(user.get("tokenFile"), base_dir)
    if token_file is None:
        return None
    try:
        with open(token_file, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        raise KubeconfigError(f"users[{user_name}].user.tokenFile: {exc.strerror}") from exc
