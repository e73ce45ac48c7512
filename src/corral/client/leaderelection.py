"""Leader election on a coordination.k8s.io/v1 Lease, through the API.

client-go's algorithm, kept: every write of the Lease carries the
resourceVersion it was read at, so two candidates never both win; a
candidate judges expiry by how long *it* has watched the record stay
unchanged (its own monotonic clock, no trust in other machines' clocks);
the holder releases the Lease on a clean exit so a successor need not wait.

What makes "a deposed leader stops acting before a new one may start" hold:
the holder measures its deadline from the moment it *sent* its last
successful renewal, and gives up leading ``renew_deadline`` after that;
any other candidate can take over only ``lease_duration`` after it *saw*
that renewal, which is later than it was sent. ``lease_duration -
renew_deadline`` is the margin in which the old leader's components are
cancelled; :class:`LeaderElectionConfig` refuses settings without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from corral.client import errors
from corral.client.api import ApiClient
from corral.client.resources import LEASES
from corral.clock import Clock, RealClock, format_microtime

log = logging.getLogger(__name__)



def default_identity() -> str:
    """Unique per process: two servers on one host must not share a name."""
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class LeaderElectionConfig:
    identity: str
    namespace: str = "kube-system"
    name: str = "corral-controller-manager"
    lease_duration: float = 3.0
    """How long a candidate waits after last seeing the record change."""
    renew_deadline: float = 2.0
    """How long the holder keeps leading without a successful renewal."""
    retry_period: float = 0.25
    """Pause between attempts to acquire or renew."""
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("identity: required")
        for field in ("lease_duration", "renew_deadline", "retry_period"):
            if getattr(self, field) <= 0:
                raise ValueError(f"{field}: must be positive")
        if self.lease_duration < 1:
            raise ValueError("lease_duration: at least 1 second (the Lease counts whole seconds)")
        if not self.renew_deadline + 2 * self.retry_period <= self.lease_duration:
            raise ValueError(
                "renew_deadline: must leave time to stop (renew_deadline + 2*retry_period <= "
                f"lease_duration), got {self.renew_deadline} + 2*{self.retry_period} > "
                f"{self.lease_duration}")


class LeaderElector:
    """Campaigns, and runs ``lead()`` only while holding the Lease.

    ``on_change(leading, holder)`` is called (synchronously) whenever this
    process's role or the observed holder changes, for /readyz and metrics.
    """

    def __init__(self, client: ApiClient, config: LeaderElectionConfig, *,
                 clock: Clock | None = None,
                 on_change: Callable[[bool, str], None] | None = None) -> None:
        self.client = client
        self.config = config
        self.clock = clock or RealClock()
        self._on_change = on_change
        self.leading = False
        self.holder = ""
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._lease: dict[str, Any] | None = None
        self.transitions = 0
        self._sent_at = 0.0

    # -- one attempt ---------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One round of client-go's tryAcquireOrRenew; True if we hold the Lease now."""
        cfg = self.config
        now = self.clock.monotonic()
        try:
            lease = await self.client.get(LEASES, cfg.name, cfg.namespace)
        except errors.NotFoundError:
            return await self._create()
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity") or "", spec.get("renewTime"),
                  spec.get("leaseTransitions"), spec.get("leaseDurationSeconds"))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        holder = record[0]
        self._set_holder(holder)
        duration = max(cfg.lease_duration, float(spec.get("leaseDurationSeconds") or 0))
        if holder and holder != cfg.identity and now < self._observed_at + duration:
            return False
        stamp = self._stamp()
        new_spec = dict(spec)
        if holder != cfg.identity:
            new_spec["acquireTime"] = stamp
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        new_spec.update(holderIdentity=cfg.identity, renewTime=stamp,
                        leaseDurationSeconds=_whole_seconds(cfg.lease_duration))
        lease["spec"] = new_spec
        try:
            self._lease = await self.client.replace(LEASES, lease)  # carries resourceVersion
        except errors.ConflictError:
            return False
        self._observed = None  # our own write; re-observe from the next read
        self._set_holder(cfg.identity)
        return True

    async def _create(self) -> bool:
        cfg = self.config
        stamp = self._stamp()
        lease = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": cfg.name, "namespace": cfg.namespace},
            "spec": {"holderIdentity": cfg.identity, "acquireTime": stamp, "renewTime": stamp,
                     "leaseDurationSeconds": _whole_seconds(cfg.lease_duration),
                     "leaseTransitions": 0},
        }
        try:
            self._lease = await self.client.create(LEASES, lease)
        except errors.AlreadyExistsError:
            return False
        self._set_holder(cfg.identity)
        return True

    async def release(self) -> None:
        """Give the Lease up (holder cleared, 1 s duration), if we still hold it."""
        lease = self._lease
        if lease is None:
            return
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.config.identity:
            return
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=self._stamp())
        spec.pop("acquireTime", None)
        lease["spec"] = spec
        try:
            await self.client.replace(LEASES, lease)
            log.info("released lease %s/%s", self.config.namespace, self.config.name)
        except errors.ApiError as exc:
            log.info("could not release lease %s: %s", self.config.name, exc)
        self._lease = None

    def _stamp(self) -> str:
        return format_microtime(self.clock.now())

    def _set_holder(self, holder: str) -> None:
        leading = holder == self.config.identity
        if holder != self.holder or leading != self.leading:
            self.holder, self.leading = holder, leading
            if self._on_change is not None:
                self._on_change(leading, holder)

    def _lost(self) -> None:
        self._lease = None
        if self.leading:
            self.leading = False
            if self._on_change is not None:
                self._on_change(False, self.holder)

    # -- the loop ------------------------------------------------------------

    async def _attempt(self, budget: float) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), budget)
        except (TimeoutError, errors.ApiError, OSError) as exc:
            log.debug("lease %s: attempt failed: %r", self.config.name, exc)
            return False

    async def acquire(self) -> None:
        """Return once we hold the Lease."""
        cfg = self.config
        while True:
            started = self.clock.monotonic()
            if await self._attempt(cfg.renew_deadline):
                break
            await self.clock.sleep(cfg.retry_period)
        self._sent_at = started
        self.transitions += 1
        log.info("%s became the leader (lease %s/%s)", cfg.identity, cfg.namespace, cfg.name)

    async def _renew_until_lost(self) -> None:
        """Return when renewal has failed for ``renew_deadline``."""
        cfg = self.config
        sent = self._sent_at
        while True:
            await self.clock.sleep(cfg.retry_period)
            started = self.clock.monotonic()
            remaining = sent + cfg.renew_deadline - started
            if remaining <= 0:
                return
            if await self._attempt(remaining):
                sent = started
            elif self.clock.monotonic() >= sent + cfg.renew_deadline:
                return

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign forever; ``lead()`` runs while we lead and is cancelled,
        and awaited, before leadership is given up or lost."""
        cfg = self.config
        try:
            while True:
                await self.acquire()
                leader = asyncio.ensure_future(lead())
                renewer = asyncio.ensure_future(self._renew_until_lost())
                try:
                    await asyncio.wait({leader, renewer}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (leader, renewer):
                        task.cancel()
                    for task in (leader, renewer):
                        with contextlib.suppress(BaseException):
                            await task
                if leader.done() and not leader.cancelled() and leader.exception() is not None:
                    log.error("leading failed", exc_info=leader.exception())
                if renewer.done() and not renewer.cancelled():
                    log.warning("%s lost the lease %s: stopped leading", cfg.identity, cfg.name)
                    self._lost()
                else:
                    await self._release_quietly()
                    self._lost()
                    await self.clock.sleep(cfg.retry_period)
        except asyncio.CancelledError:
            if cfg.release_on_cancel:
                await asyncio.shield(self._release_quietly())
            self._lost()
            raise

    async def _release_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.release(), self.config.renew_deadline)


def _whole_seconds(seconds: float) -> int:
    return max(1, int(seconds + 0.999))
