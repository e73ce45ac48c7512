"""Starting an API server from a data directory: store, TLS, token, kubeconfig.

Used by ``corral server``, ``corral up`` and the test fixture, so all three
start the server the same way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from corral.api.auth import TokenAuthenticator, ensure_token_file
from corral.api.certs import accept_client_certs
from corral.api.context import ServerContext, ServerSettings
from corral.api.encryption import encrypt_secrets, reencrypt
from corral.api.kubelet_client import KubeletClient
from corral.api.security import SecurityOptions, start_security
from corral.api.server import build_app, ensure_default_namespaces, make_context, token_file
from corral.api.slowclients import GuardedSite
from corral.api.tls import ServingCertificateReloader, ensure_serving_files, server_ssl_context
from corral.clock import Clock

log = logging.getLogger(__name__)
LOCAL_SOCKET = "api.sock"  # in the data dir: the same-process components' way in
STORE_SOCKET = "store.sock"  # in the data dir: the API workers' way to the store


def server_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop for a process that serves the API, when installed.

    Its loop, transports and TLS are C rather than asyncio's Python, which
    takes about a tenth of the interpreter's work off every request (see
    bench/README.md); None (asyncio's loop) where uvloop is missing."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "corral"


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, token: str, name: str = "corral") -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(ca_pem).decode(),
        }}],
        "users": [{"name": f"{name}-admin", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": name,
        "preferences": {},
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, path)


def in_cluster_names(service_cidr: str) -> list[str]:
    """What pods call the API server (the ``kubernetes`` Service's address
    and names), which its certificate must carry for them to verify it."""
    from corral.controllers.kubernetes_service import first_service_ip

    svc = "kubernetes.default.svc"
    return [first_service_ip(service_cidr), "kubernetes", "kubernetes.default", svc, f"{svc}.cluster.local"]


@dataclass
class ServerOptions:
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 6443
    store_url: str = ""
    """Empty = SQLite at DATA_DIR/state.db."""
    service_cidr: str = "127.43.0.0/16"
    security: Any = None
    """api.security.SecurityOptions (audit level, fair-share limits); None = defaults."""
    api_workers: int = 1
    """Processes serving the port. 1: this one. More: that many API worker
    processes (api/workers.py), while this one owns the store and runs the
    controllers."""


class RunningServer:
    """A started API server; ``url``, ``token``, ``ca_file`` and ``kubeconfig``
    tell a client how to reach it."""

    def __init__(self, options: ServerOptions, clock: Clock | None = None) -> None:
        self.options = options
        self.clock = clock
        self.runner: web.AppRunner | None = None
        self.ctx: ServerContext | None = None
        self.security: Any = None
        self.port = options.port
        self.token = ""
        self.ca_file = options.data_dir / "pki" / "ca.crt"
        self.kubeconfig = options.data_dir / "kubeconfig"
        self.cert_reloader: ServingCertificateReloader | None = None
        self._reloading: asyncio.Task[None] | None = None
        self.local_socket: Path | None = None
        self._socket_dir: Path | None = None
        self.store_service: Any = None
        self.workers: Any = None
        self._reserved_port: Any = None
        self._components_placed = 0

    @property
    def url(self) -> str:
        return f"https://{self.options.host}:{self.port}"

    async def start(self) -> None:
        from corral.store import open_store

        opts = self.options
        opts.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = encrypt_secrets(open_store(opts.store_url or str(opts.data_dir / "state.db")), opts.data_dir)
        await store.start()
        await reencrypt(store)
        self.token = ensure_token_file(token_file(opts.data_dir))
        self.ctx = make_context(store, clock=self.clock, settings=ServerSettings(service_cidr=opts.service_cidr))
        await ensure_default_namespaces(self.ctx)
        # With workers, this process leaves the port to them: owning the store
        # and running the controllers is a core's worth of work on its own, and
        # a share of the connections on top made it the bottleneck (bench/README.md).
        await self.serve(opts.security, reuse_port=False, listen=opts.api_workers == 1)
        if opts.api_workers > 1:
            await self._start_workers(store)
        self.local_socket = await self._serve_locally()
        write_kubeconfig(self.kubeconfig, self.url, self.ca_file.read_bytes(), self.token)
        log.info("API server listening on %s", self.url)

    async def serve(self, security: Any, *, reuse_port: bool, listen: bool = True) -> None:
        """TLS files, authentication, authorization, the app and the port:
        what the store owner and every API worker process set up alike.
        Without ``listen`` the port is only reserved (for the workers)."""
        opts, ctx = self.options, self.ctx
        assert ctx is not None
        hosts = sorted({opts.host, "127.0.0.1", "localhost", "::1", *in_cluster_names(opts.service_cidr)}
                       - {"0.0.0.0"})
        files = ensure_serving_files(opts.data_dir, hosts)
        ctx.settings.kubelet_client = KubeletClient(files.ca_cert.parent)  # its own, from the (shared) CA
        tokens = TokenAuthenticator.from_file(token_file(opts.data_dir))
        if not listen:  # the workers serve every node; this process only them and its own components
            security = dataclasses.replace(security or SecurityOptions(), serves_nodes=False)
        self.security = await start_security(ctx, opts.data_dir, tokens, security)
        app = build_app(ctx, tokens, self.security)
        self.runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                                    shutdown_timeout=2.0)
        await self.runner.setup()
        tls = accept_client_certs(server_ssl_context(files), files.ca_cert)
        self.cert_reloader = ServingCertificateReloader(tls, files, hosts)  # `corral certs renew`, no restart
        self._reloading = asyncio.create_task(self.cert_reloader.run(), name="serving-cert-reloader")
        limits = (security or SecurityOptions()).limits
        if listen:
            site = GuardedSite(self.runner, opts.host, opts.port, ssl_context=tls, backlog=1024,
                               reuse_address=True, reuse_port=reuse_port, header_timeout=limits.header_timeout)
            await site.start()
            self.port = site.port
        else:
            self.port = self._reserve_port()
        ctx.settings.advertise_address = f"{opts.host}:{self.port}"

    async def _start_workers(self, store: Any) -> None:
        """The store goes on a socket for the worker processes, which then
        bind this process's port too; the kernel spreads new connections
        over all of them (SO_REUSEPORT)."""
        from corral.api.workers import WorkerPool
        from corral.store.service import StoreService

        self.store_service = StoreService(store, self._socket_path(STORE_SOCKET))
        await self.store_service.start()
        sockets = {i: self._socket_path(f"api.worker{i}.sock") for i in range(1, self.options.api_workers + 1)}
        self.workers = WorkerPool(self.options, self.port, self.store_service.path, sockets,
                                  self._socket_path(LOCAL_SOCKET), verbose=logging.getLogger().isEnabledFor(logging.DEBUG))
        await self.workers.start()

    def component_socket(self) -> Path | None:
        """The Unix socket a component in this process (controller manager,
        scheduler, local agent) should use: with API workers, a worker's
        (dealt out in turn), so serving the components' requests does not
        fall on this process, which already owns the store and runs them;
        else this process's own."""
        if self.workers is None:
            return self.local_socket
        sockets = list(self.workers.local_sockets.values())
        self._components_placed += 1
        return sockets[(self._components_placed - 1) % len(sockets)]

    def _reserve_port(self) -> int:
        """Binds the port without listening, so no connection comes here but
        the port stays this server's while workers come and go (port 0 picks
        one). The workers' SO_REUSEPORT sockets join it; only the same user
        can join a SO_REUSEPORT group."""
        import socket

        reserved = socket.socket(socket.AF_INET6 if ":" in self.options.host else socket.AF_INET)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            reserved.bind((self.options.host, self.options.port))
        except OSError:
            reserved.close()
            raise
        self._reserved_port = reserved
        return int(reserved.getsockname()[1])

    def _socket_path(self, name: str) -> Path:
        """``name`` in the data dir, or in a private temp dir when that path
        is too long for a Unix socket (sun_path holds 108 bytes)."""
        path = self.options.data_dir / name
        if len(bytes(path)) > 100:
            if self._socket_dir is None:
                self._socket_dir = Path(tempfile.mkdtemp(prefix="corral-api-"))
            path = self._socket_dir / name
        return path

    async def _serve_locally(self, path: Path | None = None) -> Path | None:
        """A Unix socket for the components in this process (controllers,
        scheduler): plain HTTP, so no handshake per new connection and no
        record encryption per request. Only this user can reach it: the
        socket is 0600 in a 0700 directory, and callers still need a token."""
        path = path or self._socket_path(LOCAL_SOCKET)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a killed server
        assert self.runner is not None
        await web.UnixSite(self.runner, str(path)).start()
        path.chmod(0o600)
        return path

    async def stop(self) -> None:
        if self.workers is not None:
            await self.workers.stop()
            self.workers = None
        if self.store_service is not None:
            await self.store_service.close()
            self.store_service = None
        if self._reserved_port is not None:
            self._reserved_port.close()
            self._reserved_port = None
        if self._reloading is not None:
            self._reloading.cancel()
            self._reloading = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.local_socket is not None:
            with contextlib.suppress(OSError):
                self.local_socket.unlink()
            self.local_socket = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        if self.security is not None:
            await self.security.stop()
            self.security = None
        if self.ctx is not None:
            await self.ctx.store.close()
            self.ctx = None

    async def __aenter__(self) -> RunningServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self.stop())
