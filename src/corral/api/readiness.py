"""/readyz and /metrics: is this server ready, and is it the leader?

Every API server over one etcd serves reads and writes, so all of them are
ready; only the holder of the controller-manager Lease runs controllers and
the scheduler. /readyz says which this one is (``X-Corral-Role`` header and,
with ``?verbose``, a check line), and /metrics exports Kubernetes'
``leader_election_master_status`` gauge, so a load balancer or an operator
can tell without reading logs.
"""

from __future__ import annotations

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
