"""Containers on the Docker Engine, through the ``docker`` SDK.

Crash-only like the process runtime: everything the agent needs to adopt a
container after a restart is in the container's labels (the pod's uid,
namespace and name, the container's name, attempt and log file), and the
``corral.dev/owner`` label scopes an agent to its own containers, so several
agents may share one engine. The engine is the source of truth; this object
caches only the final state of exited containers (it never changes).

Pods use the node's network unless the agent gives them their own
(net/podnet.py): then each pod gets a sandbox container (``sleep`` in the
pod's first image, or ``sandbox_image``, with network ``none``) whose
network namespace the CNI plugins put on the node's bridge, and every app
container joins it (``network_mode=container:<sandbox>``, as Kubernetes'
pause container), with the pod's resolv.conf bound at /etc/resolv.conf.
The sandbox is labelled like the pod's containers (plus
``corral.dev/sandbox``), so a restarted agent finds it again. No init is put
in front of the command, so a missing executable fails the start itself
(a clear RunContainerError) rather than a crash loop.

Engine calls go over the engine's socket from the agent's loop
(runtime/dockerapi.py); only image pulls use the blocking SDK, on a small
thread pool of their own. A container start is two calls (create, start):
a missing image shows as the create's 404, so a cached image costs no
lookup, and a container just started counts as running until the next
shared list of the node's containers. The engine is the bottleneck of a
burst (~80 ms of its CPU per container here, in dockerd, containerd and
the shim with its runc runs, against ~2 ms of the agent's for the calls),
and it starts containers fastest a few at a time, so at most START_SLOTS
containers are being created or started at once, each slot held from the
create to the start's answer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from corral.runtime.dockerapi import CALL_TIMEOUT, EngineApi, EngineError
from corral.runtime.dockerlogs import DockerEndpoint, LogFollowers
from corral.runtime.dockerstate import cgroup_usage, state_from_inspect
from corral.runtime.limits import ContainerLimits, LimitError
from corral.runtime.protocol import (
    ContainerHandle,
    ContainerState,
    ContainerStats,
    ExecPlan,
    LogPaths,
    Mount,
    StartError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
OWNER_LABEL = "corral.dev/owner"
POD_UID = "io.kubernetes.pod.uid"
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"
ATTEMPT = "corral.dev/attempt"
INIT = "corral.dev/init"
LOG_PATH = "corral.dev/log-path"
LOG_MAX = "corral.dev/log-max-bytes"
SANDBOX = "corral.dev/sandbox"
SANDBOX_SLEEP = ["sleep", "2147483647"]
PULL_TIMEOUT = 30.0
SNAPSHOT_TTL = 0.5
THREADS = 4
"""Threads for image pulls, the one blocking SDK call left."""
START_SLOTS = 8
"""Containers being created or started at once: the engine's fastest
burst here (2 cores) was with 4-8; 16 and more only queue inside it."""
CONNECTIONS = 32
IMAGE_REASONS = ("InvalidImageName", "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull")


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: Always for ``:latest`` or no tag, else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _check_image(container: dict[str, Any]) -> None:
    if not str(container.get("image") or ""):
        raise StartError("InvalidImageName", "image: a container needs an image to run on docker")


class DockerRuntime:
    handler = "docker"

    def __init__(self, client: Any, *, owner: str, base_url: str) -> None:
        """``client`` is a connected ``docker.DockerClient``; use :meth:`connect`."""
        self._docker = client
        self._api = client.api
        self.owner = owner
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="docker")
        endpoint = DockerEndpoint(base_url, self._api.api_version)
        self._engine = EngineApi(endpoint, CONNECTIONS)
        self._logs = LogFollowers(endpoint)
        self._start_slots: asyncio.Semaphore | None = None
        self._final: dict[str, ContainerState] = {}
        self._started: dict[str, datetime] = {}
        self._started_loop: dict[str, float] = {}  # when we started it (loop time)
        self._snapshot: dict[str, str] = {}
        self._snapshot_at = float("-inf")
        self._snapshot_lock = asyncio.Lock()
        self._pull_failures: dict[tuple[str, str], int] = {}
        self._pids: dict[str, int] = {}
        self.base_url = base_url
        self.pod_network: Any = None
        """net.podnet.PodNetwork when pods get their own network (set by the agent)."""
        self.sandbox_image: str | None = None
        """Image of the sandbox containers (needs ``sleep``); None: the pod's first image."""
        self._sandbox_locks: dict[str, asyncio.Lock] = {}
        self._sandboxes: dict[str, tuple[str, int, int | None]] = {}
        """Pod uid → (sandbox id, its pid, its netns inode): a reused pid does not match."""
        self._engine_version = str(client.version().get("Version", "unknown"))

    @classmethod
    def connect(cls, owner: str, base_url: str | None = None) -> DockerRuntime | None:
        """A runtime on the engine at ``base_url`` (default: ``DOCKER_HOST``
        or the standard socket), or None when no engine answers there."""
        import os

        import docker

        url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        try:
            client = docker.DockerClient(
                base_url=url, version="auto", timeout=120, max_pool_size=THREADS
            )
            client.ping()
        except Exception as exc:
            log.info("no Docker engine at %s (%s)", url, exc)
            return None
        return cls(client, owner=owner, base_url=url)

    def version(self) -> str:
        return f"docker://{self._engine_version}"

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))

    # -- start ---------------------------------------------------------------

    async def start_container(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        logs: LogPaths,
        env: dict[str, str],
        *,
        attempt: int = 0,
        init: bool = False,
        mounts: Sequence[Mount] = (),
    ) -> ContainerHandle:
        meta = pod.get("metadata") or {}
        uid, name = str(meta.get("uid", "")), str(container.get("name", ""))
        _check_image(container)
        net = await self.pod_sandbox(pod)
        labels = {
            OWNER_LABEL: self.owner,
            POD_UID: uid,
            POD_NAME: str(meta.get("name", "")),
            POD_NAMESPACE: str(meta.get("namespace", "")),
            CONTAINER_NAME: name,
            ATTEMPT: str(attempt),
            INIT: "true" if init else "false",
            LOG_PATH: str(logs.path),
            LOG_MAX: str(logs.max_bytes),
        }
        config = self._create_config(pod, container, env, labels, mounts, net)
        cname = f"k8s_{name}_{meta.get('name')}_{meta.get('namespace')}_{uid}_{attempt}"
        cid = await self._create_and_start(cname, config, container, uid)
        handle = _handle(cid, labels)
        self._started[cid] = datetime.now(UTC)
        self._started_loop[cid] = asyncio.get_running_loop().time()
        self._logs.follow(cid, logs.path, logs.max_bytes)
        return handle

    def _create_config(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        env: dict[str, str],
        labels: dict[str, str],
        mounts: Sequence[Mount] = (),
        net: tuple[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            limits = ContainerLimits.from_container(container, pod)
        except LimitError as exc:
            raise StartError("CreateContainerConfigError", str(exc)) from exc
        for key in env:
            if not key or "=" in key or "\0" in key:
                raise StartError("CreateContainerConfigError", f"env: invalid variable {key!r}")
        # Volumes at their mountPath, as the process runtime binds them.
        binds = [f"{m.host_path}:{m.container_path}:{'ro' if m.read_only else 'rw'}" for m in mounts]
        network_mode = "host"
        if net is not None:  # the pod's sandbox: its network namespace and resolv.conf
            network_mode = f"container:{net[0]}"
            binds.append(f"{net[1].resolv_conf}:/etc/resolv.conf:ro")
        host_config = self._api.create_host_config(
            network_mode=network_mode,
            binds=binds,
            **limits.docker_host_config(),
            log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "1"}},
        )
        entrypoint, command = None, None
        if container.get("command"):
            entrypoint = [str(a) for a in container["command"]]
            command = [str(a) for a in container.get("args") or []]
        elif container.get("args"):
            command = [str(a) for a in container["args"]]
        config: dict[str, Any] = self._api.create_container_config(
            container.get("image"), command, entrypoint=entrypoint,
            environment=[f"{k}={v}" for k, v in env.items()], labels=labels,
            host_config=host_config, working_dir=container.get("workingDir") or None,
            user=_user(pod, container), stdin_open=False, tty=False,
        )
        return config

    def _slots(self) -> asyncio.Semaphore:
        if self._start_slots is None:
            self._start_slots = asyncio.Semaphore(START_SLOTS)
        return self._start_slots

    async def _create_and_start(
        self, cname: str, config: dict[str, Any], image_of: dict[str, Any], pod_uid: str
    ) -> str:
        """Create and start, with the pull policy of ``image_of`` (a container
        spec): Always pulls first; IfNotPresent pulls only when the create
        says the image is missing; Never then fails clearly."""
        image = str(config.get("Image") or "")
        policy = image_of.get("imagePullPolicy") or default_pull_policy(image)
        if policy == "Always":
            await self._pull(image, pod_uid)
        async with self._slots():
            cid = await self._create(cname, config)
            if cid is not None:
                return await self._start(cid)
        if policy == "Never":
            raise StartError(
                "ErrImageNeverPull",
                f'Container image "{image}" is not present with pull policy of Never',
            )
        await self._pull(image, pod_uid)
        async with self._slots():
            cid = await self._create(cname, config)
            if cid is None:
                raise StartError("ErrImagePull", f'image "{image}" is missing after its pull')
            return await self._start(cid)

    async def _create(self, cname: str, config: dict[str, Any]) -> str | None:
        """The new container's id; None when its image is not on the engine."""
        for again in (False, True):
            try:
                created = await self._engine.call(
                    "POST", "/containers/create", params={"name": cname}, body=config)
                return str(created["Id"])
            except EngineError as exc:
                if exc.status == 404 and "no such image" in exc.message.lower():
                    return None
                if exc.status == 400 and "reference format" in exc.message:
                    raise StartError("InvalidImageName", exc.message) from exc
                if exc.status != 409 or again:
                    raise StartError("CreateContainerError", exc.message) from exc
            # A leftover of a failed earlier try with the same attempt number.
            await self._forget(cname)
        raise AssertionError("unreachable")

    async def _start(self, cid: str) -> str:
        try:
            await self._engine.call("POST", f"/containers/{cid}/start")
        except EngineError as exc:
            await self._forget(cid)
            raise StartError("RunContainerError", exc.message) from exc
        return cid

    async def _pull(self, image: str, pod_uid: str) -> None:
        """Without a registry a pull fails; it says what to do instead."""
        import docker

        key = (pod_uid, image)
        try:
            await asyncio.wait_for(self._call(self._docker.images.pull, image), PULL_TIMEOUT)
            self._pull_failures.pop(key, None)
        except (docker.errors.APIError, docker.errors.DockerException, TimeoutError) as exc:
            failures = self._pull_failures.get(key, 0) + 1
            self._pull_failures[key] = failures
            why = _explain(exc) if not isinstance(exc, TimeoutError) else "pull timed out"
            message = (
                f'Failed to pull image "{image}": {why} (no registry answered; use an '
                "image present on the node, e.g. made with docker import, and "
                "imagePullPolicy IfNotPresent or Never)"
            )
            if failures > 1:
                raise StartError(
                    "ImagePullBackOff", f'Back-off pulling image "{image}": ' + message
                ) from exc
            raise StartError("ErrImagePull", message) from exc

    # -- the pod's network sandbox ------------------------------------------------

    async def pod_sandbox(self, pod: dict[str, Any]) -> tuple[str, Any] | None:
        """(sandbox container id, PodNet) of a pod that gets its own network
        namespace: found (after an agent restart too) or made, and on the
        pod network; None for a pod on the node's network."""
        from corral.net.podnet import wants_own_network

        if self.pod_network is None or not wants_own_network(pod):
            return None
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        async with self._sandbox_locks.setdefault(uid, asyncio.Lock()):
            known = self._sandboxes.get(uid)
            if known is not None and _netns_inode(known[1]) == known[2]:
                cid, pid = known[0], known[1]  # no engine call for a pod's later containers
            else:
                cid, pid = await self._find_sandbox(uid)
            if cid is None or pid <= 0:
                if cid is not None:
                    await self._forget(cid)
                cid, pid = await self._make_sandbox(pod)
            net = await self.pod_network.attach(pod, f"/proc/{pid}/ns/net", cid)
            self._sandboxes[uid] = (cid, pid, _netns_inode(pid))
            return cid, net

    async def _find_sandbox(self, uid: str) -> tuple[str | None, int]:
        found = await self._engine.containers(
            [f"{OWNER_LABEL}={self.owner}", f"{POD_UID}={uid}", f"{SANDBOX}=true"])
        if not found:
            return None, 0
        cid = str(found[0]["Id"])
        info = await self._inspect(cid)
        state = (info or {}).get("State") or {}
        return cid, int(state.get("Pid") or 0) if state.get("Running") else 0

    async def _make_sandbox(self, pod: dict[str, Any]) -> tuple[str, int]:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        uid = str(meta.get("uid", ""))
        first = (spec.get("initContainers") or spec.get("containers") or [{}])[0]
        image = self.sandbox_image or str(first.get("image") or "")
        image_of = ({**first, "image": image} if not self.sandbox_image else
                    {"image": image, "imagePullPolicy": "IfNotPresent"})
        _check_image(image_of)
        labels = {OWNER_LABEL: self.owner, POD_UID: uid, POD_NAME: str(meta.get("name", "")),
                  POD_NAMESPACE: str(meta.get("namespace", "")), SANDBOX: "true"}
        config = self._api.create_container_config(
            image, [], entrypoint=SANDBOX_SLEEP, labels=labels,
            host_config=self._api.create_host_config(network_mode="none"),
            hostname=str(spec.get("hostname") or meta.get("name"))[:63])
        cname = f"k8s_POD_{meta.get('name')}_{meta.get('namespace')}_{uid}_0"
        try:
            cid = await self._create_and_start(cname, config, image_of, uid)
        except StartError as exc:
            if exc.reason in IMAGE_REASONS:
                raise
            raise StartError("ContainerCreating", f"the pod's network sandbox ({image} running "
                             f"sleep) did not start: {exc.message}") from exc
        info = await self._inspect(cid)
        pid = int(((info or {}).get("State") or {}).get("Pid") or 0)
        if pid <= 0:
            await self._forget(cid)
            raise StartError("ContainerCreating", f"the pod's network sandbox ({image}) exited at once")
        return cid, pid

    # -- observe -------------------------------------------------------------

    async def container_state(self, handle: ContainerHandle) -> ContainerState:
        final = self._final.get(handle.id)
        if final is not None:
            return final
        # Started by us after the last list began: running as of our start,
        # no engine call for it (a list within SNAPSHOT_TTL of the start says
        # more), nor an inspect when a list that began earlier did not see it.
        started = self._started_loop.get(handle.id)
        fresh = started is not None and started >= self._snapshot_at
        if fresh and asyncio.get_running_loop().time() - started < SNAPSHOT_TTL:
            return ContainerState("running", self._started[handle.id])
        status = (await self._states()).get(handle.id)
        fresh = started is not None and started >= self._snapshot_at
        if handle.id in self._started and (status == "running" or fresh):
            return ContainerState("running", self._started[handle.id])
        state = await self._inspect_state(handle.id)
        if state.status == "exited":
            await self._logs.drained(handle.id)
            self._final[handle.id] = state
        else:
            self._started[handle.id] = state.started_at
        return state

    async def _states(self) -> dict[str, str]:
        """Id → Docker state of every owned container, from one list call
        shared by all pod workers (at most every SNAPSHOT_TTL seconds)."""
        loop = asyncio.get_running_loop()
        async with self._snapshot_lock:
            if loop.time() - self._snapshot_at >= SNAPSHOT_TTL:
                began = loop.time()  # what starts after this, the list may miss
                found = await self._engine.containers([f"{OWNER_LABEL}={self.owner}"])
                self._snapshot = {str(c["Id"]): str(c.get("State", "")) for c in found}
                self._snapshot_at = began
            return self._snapshot

    async def _inspect(self, cid: str) -> dict[str, Any] | None:
        """The engine's view of a container; None when it has none."""
        try:
            return dict(await self._engine.call("GET", f"/containers/{cid}/json"))
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise

    async def _inspect_state(self, cid: str) -> ContainerState:
        info = await self._inspect(cid)
        if info is None:
            now = datetime.now(UTC)
            return ContainerState(
                "exited", now, exit_code=137, finished_at=now, reason="ContainerStatusUnknown",
                message="the container was removed from the Docker engine outside corral",
            )
        return state_from_inspect(info.get("State") or {})

    async def list(self) -> list[ContainerHandle]:
        found = await self._engine.containers([f"{OWNER_LABEL}={self.owner}"])
        handles = []
        for c in found:
            labels = c.get("Labels") or {}
            if labels.get(SANDBOX) == "true":
                continue  # a pod's network sandbox, not one of its containers
            try:
                handle = _handle(str(c["Id"]), labels)
            except (KeyError, ValueError):
                log.warning("ignoring container %s with unreadable labels", c.get("Id"))
                continue
            handles.append(handle)
            if c.get("State") == "running" and not self._logs.following(handle.id):
                self._logs.follow(handle.id, handle.log_path, int(labels.get(LOG_MAX, 10 << 20)))
        return handles

    def mounts_supported(self, pod: dict[str, Any]) -> bool:
        """The engine binds the agent's volume directories at their mountPath."""
        return True

    async def exec_plan(
        self, handle: ContainerHandle, command: list[str], *, tty: bool
    ) -> ExecPlan | None:
        """``docker exec`` against this runtime's engine (the CLI speaks
        the exec stream protocol; the agent pipes it to kubectl)."""
        cli = shutil.which("docker")
        if cli is None:
            return None
        flags = ["-i", "-t"] if tty else ["-i"]
        return ExecPlan(argv=[cli, "-H", self.base_url, "exec", *flags, handle.id, *command],
                        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cwd="/")

    async def stats(self, handle: ContainerHandle) -> ContainerStats | None:
        """From the container's cgroup (found through its main process);
        Docker's own stats call takes a second per container."""
        pid = self._pids.get(handle.id)
        if pid is None:
            try:
                info = await self._inspect(handle.id)
            except Exception:
                return None
            pid = int(((info or {}).get("State") or {}).get("Pid") or 0)
            if pid <= 0:
                return None
            self._pids[handle.id] = pid
        cpu, mem = cgroup_usage(pid)
        if cpu is None or mem is None:
            self._pids.pop(handle.id, None)
            return None
        return ContainerStats(cpu, mem, datetime.now(UTC))

    # -- stop ----------------------------------------------------------------

    async def stop_container(self, handle: ContainerHandle, grace_seconds: float) -> None:
        grace = max(0, int(grace_seconds))
        try:
            await self._engine.call("POST", f"/containers/{handle.id}/stop",
                                    params={"t": str(grace)}, timeout=grace + CALL_TIMEOUT)
        except EngineError as exc:
            if exc.status == 404:
                return
            log.warning("stopping container %s: %s", handle.id[:12], exc.message)
        self._started_loop.pop(handle.id, None)  # no longer running as of our start
        self._snapshot_at = float("-inf")

    async def remove_container(self, handle: ContainerHandle) -> None:
        await self._logs.drained(handle.id, timeout=0.5)
        await self._forget(handle.id)

    async def _forget(self, cid: str) -> None:
        await self._logs.stop(cid)
        try:
            await self._engine.call("DELETE", f"/containers/{cid}", params={"force": "1"})
        except EngineError as exc:
            if exc.status != 404:
                log.warning("removing container %s: %s", cid[:12], exc.message)
        self._final.pop(cid, None)
        self._started.pop(cid, None)
        self._started_loop.pop(cid, None)
        self._pids.pop(cid, None)

    async def remove_pod(self, pod_uid: str) -> None:
        for key in [k for k in self._pull_failures if k[0] == pod_uid]:
            del self._pull_failures[key]
        if self.pod_network is not None:
            cid, _ = await self._find_sandbox(pod_uid)
            if cid is not None:
                await self._forget(cid)
        self._sandbox_locks.pop(pod_uid, None)
        self._sandboxes.pop(pod_uid, None)

    async def close(self) -> None:
        await self._logs.close()
        await self._engine.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._docker.close()


def _netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _handle(cid: str, labels: dict[str, str]) -> ContainerHandle:
    return ContainerHandle(
        id=cid,
        pod_uid=labels[POD_UID],
        pod_namespace=labels[POD_NAMESPACE],
        pod_name=labels[POD_NAME],
        container_name=labels[CONTAINER_NAME],
        attempt=int(labels[ATTEMPT]),
        log_path=Path(labels[LOG_PATH]),
        init=labels.get(INIT) == "true",
        runtime="docker",
    )


def _user(pod: dict[str, Any], container: dict[str, Any]) -> str | None:
    """securityContext.runAsUser/runAsGroup, the container's over the pod's."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = container.get("securityContext") or {}
    user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    group = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    if user is None:
        return None if group is None else f"0:{int(group)}"
    return f"{int(user)}:{int(group)}" if group is not None else str(int(user))


def _explain(exc: BaseException) -> str:
    """The engine's own sentence, without the SDK's HTTP wrapping."""
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)
