"""/readyz and /metrics: is this server ready, and is it the leader?

Every API server over one etcd serves reads and writes, so all of them are
ready; only the holder of the controller-manager Lease runs controllers and
the scheduler. /readyz says which this one is (``X-Corral-Role`` header and,
with ``?verbose``, a check line), and /metrics exports Kubernetes'
``leader_election_master_status`` gauge, so a load balancer or an operator
can tell without reading logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from corral.store.protocol import StoreError

LEASE_NAME = "corral-controller-manager"
ROLES = ("standalone", "leader", "follower")


class ServerRole:
    """``standalone``: no election (one server runs everything, or none);
    ``leader``/``follower``: leader election is on and this server does or
    does not hold the Lease."""

    def __init__(self) -> None:
        self.role = "standalone"
        self.holder = ""
        self.registry = CollectorRegistry()
        self._master = Gauge("leader_election_master_status",
                             "1 if this server holds the leader Lease, else 0.",
                             ["name"], registry=self.registry)
        self._role = Gauge("corral_apiserver_role", "1 for this server's current role.",
                           ["role"], registry=self.registry)
        self._publish()

    def update(self, leading: bool, holder: str) -> None:
        """A LeaderElector ``on_change`` callback."""
        self.role = "leader" if leading else "follower"
        self.holder = holder
        self._publish()

    def standalone(self) -> None:
        self.role, self.holder = "standalone", ""
        self._publish()

    def _publish(self) -> None:
        self._master.labels(LEASE_NAME).set(1 if self.role in ("leader", "standalone") else 0)
        for role in ROLES:
            self._role.labels(role).set(1 if role == self.role else 0)


ROLE_KEY = web.AppKey("corral_role", ServerRole)
FOLLOW_EVERY = 1.0  # seconds between an API worker's looks at its server process's role
_HOLDER = re.compile(r"role (\w+)(?:, holder (.+))?$", re.MULTILINE)


async def follow_owner(role: ServerRole, socket_path: str, every: float = FOLLOW_EVERY) -> None:
    """Keeps an API worker's role that of its server process, which runs the
    leader election: the port's /readyz and /metrics are answered by the
    workers, and must say whether *this server* leads. Reads the server
    process's /readyz over its Unix socket until cancelled; while it does not
    answer, the last role stays."""
    connector = aiohttp.UnixConnector(path=socket_path)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5),
                                     headers={"User-Agent": "corral-api-worker"}) as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get("http://localhost/readyz?verbose") as response:
                    apply_owner_role(role, response.headers.get("X-Corral-Role", ""), await response.text())
            await asyncio.sleep(every)


def apply_owner_role(role: ServerRole, name: str, body: str) -> None:
    match = _HOLDER.search(body)
    holder = (match.group(2) or "") if match else ""
    if name == "standalone":
        if role.role != "standalone":
            role.standalone()
    elif name in ("leader", "follower") and (role.role, role.holder) != (name, holder):
        role.update(name == "leader", holder)


def install(app: web.Application) -> ServerRole:
    role = ServerRole()
    app[ROLE_KEY] = role
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return role


def role_of(app: web.Application) -> ServerRole:
    return app[ROLE_KEY]


async def readyz(request: web.Request) -> web.Response:
    from corral.api.server import CONTEXT_KEY

    role = request.app[ROLE_KEY]
    headers = {"X-Corral-Role": role.role, "Cache-Control": "no-cache, private"}
    leader_line = f"[+]leader-election ok: role {role.role}" + (
        f", holder {role.holder}" if role.holder else "")
    try:
        await request.app[CONTEXT_KEY].store.current_revision()
    except StoreError as exc:
        body = f"[-]store failed: {exc}\n{leader_line}\nreadyz check failed\n"
        return web.Response(status=503, text=body, headers=headers)
    if "verbose" not in request.query:
        return web.Response(text="ok", headers=headers)
    return web.Response(text=f"[+]ping ok\n[+]store ok\n{leader_line}\nreadyz check passed\n",
                        headers=headers)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[ROLE_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
