"""Reaching an etcd cluster: endpoint lists, the gRPC channel, error mapping.

With ``etcds://`` or any of the ``cafile``/``certfile``/``keyfile``
options (``corral server --etcd-cafile/--etcd-certfile/--etcd-keyfile``,
as kube-apiserver names them) the channel speaks TLS, verifies the members
against the CA and presents the client certificate that etcd's
``--client-cert-auth`` asks for.

One gRPC channel holds every endpoint and the ``pick_first`` policy: it
talks to one member and, when that member's connection breaks, moves on to
the next address by itself. Calls are made ``wait_for_ready`` with a
deadline, so a call issued while the channel is between members waits for
the next one instead of failing at once; a call still unanswered at its
deadline (no quorum, every member down) becomes
:class:`StoreUnavailableError`, which the API serves as 503.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from aetcd import rpc

from corral.store.protocol import (
    CompactedError,
    FutureRevisionError,
    StoreError,
    StoreUnavailableError,
)

DEFAULT_PORT = 2379
MAX_MESSAGE = 64 * 1024 * 1024

# Codes that mean "this member cannot answer now": try again elsewhere/later.
_UNAVAILABLE_CODES = frozenset({
    rpc.StatusCode.UNAVAILABLE,
    rpc.StatusCode.DEADLINE_EXCEEDED,
    rpc.StatusCode.CANCELLED,
    rpc.StatusCode.ABORTED,
    rpc.StatusCode.RESOURCE_EXHAUSTED,
})
# etcd reports losing its leader or a proposal timeout with UNKNOWN in some paths.
_UNAVAILABLE_TEXT = ("no leader", "leader changed", "request timed out", "timed out",
                     "not capable", "too many requests", "stopped", "closing")


@dataclass(frozen=True)
class EtcdOptions:
    """Everything an ``etcd://`` URL says."""

    endpoints: tuple[tuple[str, int], ...]
    root: str = ""
    """Key prefix that every corral key is stored under (isolates clusters
    sharing one etcd)."""
    history_limit: int = 100_000
    watch_buffer: int = 4096
    timeout: float = 5.0
    """Deadline of one call to etcd, in seconds."""
    tls: bool = False
    ca_file: str = ""
    """PEM CA bundle the members' certificates must chain to ("" = system roots)."""
    cert_file: str = ""
    key_file: str = ""

    def describe(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.endpoints)
        return f"{'etcds' if self.tls else 'etcd'}://{hosts}{self.root}"


_INT_OPTIONS = ("history_limit", "watch_buffer")
_FLOAT_OPTIONS = ("timeout",)
_FILE_OPTIONS = {"cafile": "ca_file", "certfile": "cert_file", "keyfile": "key_file"}


def parse_etcd_url(url: str) -> EtcdOptions:
    """``etcd[s]://h1:2379,h2:2379[/root][?history_limit=N&watch_buffer=N&timeout=S
    &cafile=PATH&certfile=PATH&keyfile=PATH]``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("etcd", "etcds"):
        raise ValueError(f"store url {url!r}: expected etcd://host:port[,host:port...]")
    rest, _, query = rest.partition("?")
    hosts, slash, root = rest.partition("/")
    root = (slash + root).rstrip("/") if root else ""
    endpoints = tuple(_parse_endpoint(url, part) for part in hosts.split(","))
    if not endpoints:
        raise ValueError(f"store url {url!r}: no etcd endpoints")
    options: dict[str, Any] = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        raw = values[-1]
        if name in _FILE_OPTIONS:
            options[_FILE_OPTIONS[name]] = _readable(url, name, raw)
            continue
        try:
            if name in _INT_OPTIONS:
                options[name] = int(raw)
            elif name in _FLOAT_OPTIONS:
                options[name] = float(raw)
            else:
                known = ", ".join(_INT_OPTIONS + _FLOAT_OPTIONS + tuple(_FILE_OPTIONS))
                raise ValueError(f"store url {url!r}: unknown option {name!r} (known: {known})")
        except ValueError as exc:
            if "unknown option" in str(exc):
                raise
            raise ValueError(f"store url {url!r}: option {name!r} must be a number, got {raw!r}") from exc
        if options[name] <= 0:
            raise ValueError(f"store url {url!r}: option {name!r} must be positive, got {raw!r}")
    if bool(options.get("cert_file")) != bool(options.get("key_file")):
        raise ValueError(f"store url {url!r}: option 'certfile' and option 'keyfile' go together")
    options["tls"] = scheme.lower() == "etcds" or any(k in options for k in _FILE_OPTIONS.values())
    return EtcdOptions(endpoints=endpoints, root=root, **options)


def _readable(url: str, name: str, path: str) -> str:
    if not path:
        raise ValueError(f"store url {url!r}: option {name!r} needs a file path")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise ValueError(f"store url {url!r}: option {name!r}: cannot read {path}: {exc.strerror}") from None
    return path


def with_tls_files(url: str, ca_file: str | None, cert_file: str | None, key_file: str | None) -> str:
    """``url`` with the TLS files of ``--etcd-cafile/--etcd-certfile/--etcd-keyfile``
    added as options (they only make sense for an etcd store)."""
    pairs = [(k, v) for k, v in (("cafile", ca_file), ("certfile", cert_file), ("keyfile", key_file)) if v]
    if not pairs:
        return url
    if not url.lower().startswith(("etcd://", "etcds://")):
        raise ValueError("--etcd-cafile/--etcd-certfile/--etcd-keyfile: need --store etcd://...")
    query = "&".join(f"{k}={quote(os.path.abspath(v), safe='/')}" for k, v in pairs)
    return url + ("&" if "?" in url else "?") + query


def _parse_endpoint(url: str, part: str) -> tuple[str, int]:
    part = part.strip()
    if not part:
        raise ValueError(f"store url {url!r}: empty endpoint in the host list")
    if part.startswith("["):  # [v6]:port
        host, _, tail = part[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif part.count(":") == 1:
        host, port_text = part.split(":")
    else:
        host, port_text = part, ""
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"store url {url!r}: endpoint {part!r} has a bad port {port_text!r}") from None
    if not host or not 0 < port < 65536:
        raise ValueError(f"store url {url!r}: endpoint {part!r} must be host:port")
    return host, port


def grpc_target(endpoints: tuple[tuple[str, int], ...]) -> str:
    """A gRPC target naming every endpoint, so the channel itself fails over.

    Host names are resolved once here: gRPC's multi-address syntax takes
    addresses only."""
    v4: list[str] = []
    v6: list[str] = []
    for host, port in endpoints:
        for addr in _addresses(host):
            if addr.version == 4:
                v4.append(f"{addr}:{port}")
            else:
                v6.append(f"[{addr}]:{port}")
    if v4:
        return "ipv4:" + ",".join(v4)
    if v6:
        return "ipv6:" + ",".join(v6)
    raise StoreUnavailableError(f"no address for any etcd endpoint of {endpoints}")


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise StoreUnavailableError(f"etcd endpoint {host!r}: {exc}") from exc
    seen: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


def open_channel(options: EtcdOptions) -> rpc.Channel:
    target = grpc_target(options.endpoints)
    channel_options: list[tuple[str, Any]] = [
        ("grpc.lb_policy_name", "pick_first"),
        ("grpc.keepalive_time_ms", 5_000),
        ("grpc.keepalive_timeout_ms", 3_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1_000),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
    ]
    if not options.tls:
        return rpc.insecure_channel(target, options=channel_options)
    # The target lists resolved addresses; the members' certificates are
    # checked against the name the operator wrote (the first endpoint's).
    channel_options.append(("grpc.ssl_target_name_override", options.endpoints[0][0]))
    return rpc.secure_channel(target, tls_credentials(options), options=channel_options)


def tls_credentials(options: EtcdOptions) -> Any:
    import grpc

    def read(path: str) -> bytes | None:
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(root_certificates=read(options.ca_file),
                                        private_key=read(options.key_file),
                                        certificate_chain=read(options.cert_file))


def is_unavailable(exc: BaseException) -> bool:
    if not isinstance(exc, rpc.AioRpcError):
        return False
    if exc.code() in _UNAVAILABLE_CODES:
        return True
    details = (exc.details() or "").lower()
    return any(text in details for text in _UNAVAILABLE_TEXT)


def translate(exc: rpc.AioRpcError, what: str, *, revision: int = 0, current: int = 0,
              oldest: int = 0) -> StoreError:
    """An etcd error as the Store protocol's error (the caller raises it ``from exc``)."""
    details = exc.details() or ""
    if "required revision has been compacted" in details:
        return CompactedError(revision, oldest)
    if "future revision" in details:
        return FutureRevisionError(revision, current)
    if is_unavailable(exc):
        return StoreUnavailableError(f"etcd {what}: {exc.code().name}: {details}")
    return StoreError(f"etcd {what}: {exc.code().name}: {details}")


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with ``prefix`` (etcd's range end)."""
    if not prefix:
        return b"\0"
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"
