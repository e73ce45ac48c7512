"""The agent's Node object and its heartbeat Lease.

Registration is idempotent: a node that comes back under the same name
takes over the existing Node and only refreshes its status. The Lease in
``kube-node-lease`` is the cheap heartbeat (every half second: the control
plane declares a node dead within seconds, see failover.py); the full status
is written when it changes and at least every minute, as the kubelet does,
and at once after a silence (the control plane will have marked it Unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import platform
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import AlreadyExistsError, ApiError, NotFoundError
from corral.client.resources import LEASES, NAMESPACES, NODES
from corral.clock import Clock, RealClock, format_microtime, format_timestamp
from corral.failover import DEFAULT_TIMING

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = math.ceil(DEFAULT_TIMING.grace)
LEASE_RENEW = DEFAULT_TIMING.renew_interval
MAX_INFLIGHT_RENEWALS = 4
STATUS_CHECK = 10.0
STATUS_EVERY = 60.0
KUBELET_VERSION = "v1.32.0-corral"
MEMORY_PRESSURE_BYTES = 100 * 1024 * 1024  # kubelet's default memory.available<100Mi
DISK_PRESSURE_FRACTION = 0.10  # nodefs.available<10%
INODE_PRESSURE_FRACTION = 0.05  # nodefs.inodesFree<5%
PID_PRESSURE_FRACTION = 0.05


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return Path(path).read_text().strip()
        except OSError:
            continue
    return ""


def _pid_usage() -> tuple[int, int]:
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        pid_max = 32768
    count = sum(1 for e in os.listdir("/proc") if e.isdigit())
    return count, pid_max


class NodeStatusManager:
    def __init__(
        self,
        client: ApiClient,
        node_name: str,
        *,
        address: str,
        port: int,
        data_dir: Path,
        clock: Clock | None = None,
        runtime_version: str = "process://corral",
        annotations: dict[str, str] | None = None,
        system_reserved: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.system_reserved = validate_reserved(system_reserved or {})
        self.allocatable: dict[str, str] = {}
        self.runtime_version = runtime_version
        self.annotations = dict(annotations or {})
        self.node_name = node_name
        self.address = address
        self.port = port
        self.data_dir = Path(data_dir)
        self.clock = clock or RealClock()
        self.node_uid: str | None = None
        self._last_status_core: Any = None
        self._last_status_at = float("-inf")
        self.on_renewed: Callable[[float], None] | None = None
        """Called with the monotonic time a successful renewal was sent (fencing)."""
        self._last_renew_sent = float("-inf")
        self._renew_failures = 0
        self._status_due = asyncio.Event()

    # -- what the machine looks like ----------------------------------------

    def readings(self) -> dict[str, Any]:
        mem = _meminfo()
        disk = shutil.disk_usage(self.data_dir)
        pids, pid_max = _pid_usage()
        try:
            vfs = os.statvfs(self.data_dir)
            inodes_total, inodes_free = vfs.f_files, vfs.f_favail
        except OSError:
            inodes_total = inodes_free = 0
        return {
            "inodes_total": inodes_total,
            "inodes_free": inodes_free,
            "memory_total": mem.get("MemTotal", 0),
            "memory_available": mem.get("MemAvailable", mem.get("MemFree", 0)),
            "disk_total": disk.total,
            "disk_free": disk.free,
            "pids": pids,
            "pid_max": pid_max,
        }

    def status(self, readings: dict[str, Any]) -> dict[str, Any]:
        capacity = {
            "cpu": str(os.cpu_count() or 1),
            "memory": f"{readings['memory_total'] // 1024}Ki",
            "pods": "110",
            "ephemeral-storage": f"{readings['disk_total'] // 1024}Ki",
        }
        now = format_timestamp(self.clock.now())
        mem_low = readings["memory_available"] < MEMORY_PRESSURE_BYTES
        disk_low = readings["disk_free"] < DISK_PRESSURE_FRACTION * readings["disk_total"] or (
            readings.get("inodes_free", 1) < INODE_PRESSURE_FRACTION * readings.get("inodes_total", 0)
        )
        pid_low = readings["pids"] > (1 - PID_PRESSURE_FRACTION) * readings["pid_max"]
        conds = [
            (
                "MemoryPressure",
                mem_low,
                "KubeletHasInsufficientMemory",
                "KubeletHasSufficientMemory",
                "memory available",
            ),
            (
                "DiskPressure",
                disk_low,
                "KubeletHasDiskPressure",
                "KubeletHasNoDiskPressure",
                "disk space",
            ),
            (
                "PIDPressure",
                pid_low,
                "KubeletHasInsufficientPID",
                "KubeletHasSufficientPID",
                "PIDs available",
            ),
        ]
        conditions = []
        for ctype, bad, bad_reason, ok_reason, what in conds:
            conditions.append(
                {
                    "type": ctype,
                    "status": "True" if bad else "False",
                    "reason": bad_reason if bad else ok_reason,
                    "message": f"corral agent has {'insufficient' if bad else 'sufficient'} {what}",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            )
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "corral agent is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        )
        uname = os.uname()
        self.allocatable = allocatable(capacity, self.system_reserved)
        return {
            "capacity": capacity,
            "allocatable": dict(self.allocatable),
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": self.address},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "machineID": _machine_id(),
                "systemUUID": _machine_id(),
                "bootID": _boot_id(),
                "kernelVersion": uname.release,
                "osImage": _os_image(),
                "containerRuntimeVersion": self.runtime_version,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }

    # -- writes --------------------------------------------------------------

    async def register(self) -> dict[str, Any]:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": _arch(),
                },
                "annotations": dict(self.annotations),
            },
            "spec": {},
        }
        try:
            node = await self.client.create(NODES, body)
            log.info("registered node %s", self.node_name)
        except AlreadyExistsError:
            node = await self.client.get(NODES, self.node_name)
            log.info("node %s exists; resuming it", self.node_name)
            if self.annotations:
                # The runtimes may differ from the last run (Docker came or went).
                patch = {"metadata": {"annotations": self.annotations}}
                node = await self.client.patch(NODES, self.node_name, patch)
        self.node_uid = (node.get("metadata") or {}).get("uid")
        await self.update_status(force=True)
        return node

    async def update_status(self, *, force: bool = False) -> bool:
        """Write the status if it changed (conditions, capacity...) or a
        minute has passed; returns whether it wrote."""
        status = self.status(self.readings())
        core = _without_times(status)
        due = self.clock.monotonic() - self._last_status_at >= STATUS_EVERY
        if not (force or due or core != self._last_status_core):
            return False
        current = await self.client.get(NODES, self.node_name)
        status["conditions"] = _keep_transitions(
            status["conditions"], (current.get("status") or {}).get("conditions") or []
        )
        await self.client.patch(NODES, self.node_name, {"status": status}, subresource="status")
        self._last_status_core = core
        self._last_status_at = self.clock.monotonic()
        return True

    async def renew_lease(self) -> None:
        """One renewal: a merge patch, so renewals in flight together never
        conflict; the Lease is created when missing."""
        sent = self.clock.monotonic()
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": format_microtime(self.clock.now()),
        }
        try:
            await self.client.patch(LEASES, self.node_name, {"spec": spec}, LEASE_NAMESPACE)
        except NotFoundError:
            await self._create_lease(spec)
        if sent - self._last_renew_sent > 3 * LEASE_RENEW:
            self._status_due.set()  # back from a silence: Ready may read Unknown
        self._last_renew_sent = max(self._last_renew_sent, sent)
        if self.on_renewed is not None:
            self.on_renewed(sent)

    async def _create_lease(self, spec: dict[str, Any]) -> None:
        meta: dict[str, Any] = {"name": self.node_name, "namespace": LEASE_NAMESPACE}
        if self.node_uid:
            meta["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": self.node_uid}
            ]
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }
        try:
            await self.client.create(LEASES, body, LEASE_NAMESPACE)
        except NotFoundError:
            await self._ensure_namespace()
            await self.client.create(LEASES, body, LEASE_NAMESPACE)
        except AlreadyExistsError:
            pass

    async def _ensure_namespace(self) -> None:
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NAMESPACE}}
        try:
            await self.client.create(NAMESPACES, ns)
        except AlreadyExistsError:
            pass

    async def run(self) -> None:
        """Heartbeat until cancelled. A renewal goes out every LEASE_RENEW
        seconds whether or not the previous one has answered, since a slow
        answer must not delay the next try; failures are logged and the node
        just goes stale."""
        status = asyncio.ensure_future(self._status_loop())
        inflight: set[asyncio.Future[None]] = set()
        try:
            while True:
                if len(inflight) < MAX_INFLIGHT_RENEWALS:
                    task = asyncio.ensure_future(self._renew_once())
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                await self.clock.sleep(LEASE_RENEW)
        finally:
            for task in (status, *inflight):
                task.cancel()
            await asyncio.gather(status, *inflight, return_exceptions=True)

    async def _renew_once(self) -> None:
        try:
            await asyncio.wait_for(self.renew_lease(), MAX_INFLIGHT_RENEWALS * LEASE_RENEW)
            self._renew_failures = 0
        except (ApiError, TimeoutError) as exc:
            self._renew_failures += 1
            if self._renew_failures in (1, 10) or self._renew_failures % 100 == 0:
                log.warning("node %s: lease renewal failed (%d in a row): %s",
                            self.node_name, self._renew_failures, exc or "timed out")

    async def _status_loop(self) -> None:
        while True:
            force = self._status_due.is_set()
            self._status_due.clear()
            try:
                await self.update_status(force=force)
            except NotFoundError:
                # Our Node was deleted (its pods are evicted meanwhile): a
                # live agent comes back as a fresh node under the same name.
                log.warning("node %s was deleted; registering it again", self.node_name)
                await self._register_again()
            except ApiError as exc:
                log.warning("node %s status update failed: %s", self.node_name, exc)
                self._status_due.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_due.wait(), STATUS_CHECK)

    async def _register_again(self) -> None:
        try:
            await self.register()
        except ApiError as exc:
            log.warning("node %s: registering again failed: %s", self.node_name, exc)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _without_times(status: dict[str, Any]) -> Any:
    conds = [
        {k: v for k, v in c.items() if k not in ("lastHeartbeatTime", "lastTransitionTime")}
        for c in status["conditions"]
    ]
    return {**status, "conditions": conds}


def _keep_transitions(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A condition whose status did not change keeps its lastTransitionTime."""
    by_type = {c.get("type"): c for c in old}
    out = []
    for cond in new:
        prev = by_type.get(cond["type"])
        if prev and prev.get("status") == cond["status"] and prev.get("lastTransitionTime"):
            cond = {**cond, "lastTransitionTime": prev["lastTransitionTime"]}
        out.append(cond)
    return out


RESERVABLE = ("cpu", "memory", "ephemeral-storage", "pid")


def parse_reserved(text: str) -> dict[str, str]:
    """``cpu=100m,memory=256Mi`` (the kubelet's --system-reserved form);
    raises ValueError naming the bad entry."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.strip():
            raise ValueError(f"--system-reserved: {part!r} is not NAME=QUANTITY")
        out[name.strip()] = value.strip()
    return validate_reserved(out)


def validate_reserved(reserved: dict[str, str]) -> dict[str, str]:
    from corral.resources.quantity import QuantityError, parse_quantity

    for name, value in reserved.items():
        if name not in RESERVABLE:
            raise ValueError(
                f"--system-reserved: unknown resource {name!r} (one of {', '.join(RESERVABLE)})"
            )
        try:
            if parse_quantity(value) < 0:
                raise ValueError(f"--system-reserved: {name}={value} must not be negative")
        except QuantityError as exc:
            raise ValueError(f"--system-reserved: {name}={value}: {exc}") from None
    return dict(reserved)


def allocatable(capacity: dict[str, str], reserved: dict[str, str]) -> dict[str, str]:
    """Capacity minus what the system keeps, never below zero."""
    from corral.resources.quantity import cpu_millis, parse_quantity

    out = dict(capacity)
    if "cpu" in reserved:
        out["cpu"] = f"{max(cpu_millis(capacity['cpu']) - cpu_millis(reserved['cpu']), 0)}m"
    for name in ("memory", "ephemeral-storage"):
        if name in reserved and name in capacity:
            left = int(parse_quantity(capacity[name]) - parse_quantity(reserved[name]))
            out[name] = f"{max(left, 0) // 1024}Ki"
    return out


def hostname() -> str:
    return socket.gethostname().lower()
