"""One API worker process: ``python -m corral.api.worker``, started by the
server's :class:`~corral.api.workers.WorkerPool`, never by hand.

It serves the same port as its server (SO_REUSEPORT) with the same TLS
files, tokens and kinds, and does a request's whole HTTP, TLS,
authentication, admission, validation and encoding work on its own core.
Only the store call crosses to the owner (:mod:`corral.store.remote`). It
runs no controllers and no scheduler: those stay in the owner process.

It also serves a Unix socket (plain HTTP, 0600) for the server process's
controllers, scheduler and local agent. It prints ``ready PORT`` once it
listens, and exits when told to (SIGTERM) or when the owner's store socket
goes away, so a killed server never leaves workers answering for a store
that is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
from pathlib import Path

from corral.api import readiness
from corral.api.auth import ensure_token_file
from corral.api.bootstrap import RunningServer, ServerOptions, server_loop_factory
from corral.api.context import ServerSettings
from corral.api.ratelimit import LimitSettings
from corral.api.security import SecurityOptions
from corral.api.server import make_context, token_file
from corral.store.remote import RemoteStore

log = logging.getLogger(__name__)


class WorkerServer(RunningServer):
    """A RunningServer whose store is the owner's, reached over a socket."""

    def __init__(self, options: ServerOptions, store_socket: Path, index: int, local_socket: Path,
                 owner_socket: Path) -> None:
        super().__init__(options)
        self.store_socket = store_socket
        self.index = index
        self.socket_for_components = local_socket
        self.owner_socket = owner_socket
        self._following: asyncio.Task[None] | None = None
        self.remote: RemoteStore | None = None

    async def start(self) -> None:
        opts = self.options
        self.remote = RemoteStore(self.store_socket)
        await self.remote.start()
        self.token = ensure_token_file(token_file(opts.data_dir))
        self.ctx = make_context(self.remote, settings=ServerSettings(service_cidr=opts.service_cidr))
        base = opts.security or SecurityOptions()
        security = dataclasses.replace(base, audit_file=f"audit.worker{self.index}.log", recount_quotas=False)
        await self.serve(security, reuse_port=True)
        self.local_socket = await self._serve_locally(self.socket_for_components)
        assert self.runner is not None
        self._following = asyncio.create_task(
            readiness.follow_owner(readiness.role_of(self.runner.app), str(self.owner_socket)),
            name="follow-server-role")

    async def stop(self) -> None:
        if self._following is not None:
            self._following.cancel()
            self._following = None
        await super().stop()


def security_to_json(options: SecurityOptions | None) -> str:
    return json.dumps(dataclasses.asdict(options or SecurityOptions()))


def security_from_json(text: str) -> SecurityOptions:
    fields = json.loads(text)
    fields["limits"] = LimitSettings(**fields["limits"])
    return SecurityOptions(**fields)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="corral-api-worker", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--service-cidr", required=True)
    parser.add_argument("--store-socket", type=Path, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--local-socket", type=Path, required=True,
                        help="Unix socket served for the server process's own components")
    parser.add_argument("--owner-socket", type=Path, required=True,
                        help="the server process's own Unix socket (its leader-election role)")
    parser.add_argument("--security", default="", help="SecurityOptions as JSON")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace, stop: asyncio.Event) -> None:
    """Serve until ``stop`` (a signal) or until the store owner goes away,
    which ends the process with status 3."""
    options = ServerOptions(data_dir=args.data_dir, host=args.host, port=args.port,
                            service_cidr=args.service_cidr,
                            security=security_from_json(args.security) if args.security else None)
    server = WorkerServer(options, args.store_socket, args.index, args.local_socket, args.owner_socket)
    try:
        await server.start()
        print(f"ready {server.port}", flush=True)
        assert server.remote is not None
        waits = [asyncio.create_task(server.remote.lost.wait()), asyncio.create_task(stop.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        if not stop.is_set():
            log.warning("API worker %d: the store owner went away; exiting", args.index)
            raise SystemExit(3)
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    from corral.cli.main import run_until_signalled

    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=f"%(asctime)s worker{args.index} %(levelname)s %(name)s: %(message)s")
    run_until_signalled(lambda stop: serve(args, stop), server_loop_factory())

if __name__ == "__main__":
    main()
