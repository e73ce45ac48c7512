"""Container probes: liveness, readiness and startup, as the kubelet runs them.

Each probe of a running container instance is a loop of its own: wait
``initialDelaySeconds`` from the container's start, then check every
``periodSeconds`` with ``timeoutSeconds``; ``successThreshold`` consecutive
successes make the result Success, ``failureThreshold`` consecutive failures
make it Failure. Until its startup probe has succeeded a container's other
probes do not run. The loops only record results and wake the pod worker;
the worker decides (set Ready, kill and restart), so all writes of a pod
stay in one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from corral.clock import Clock

log = logging.getLogger(__name__)

KINDS = ("exec", "httpGet", "tcpSocket", "grpc")
MAX_OUTPUT = 10 * 1024
"""Kubernetes keeps at most this much of a probe's output."""

ExecRunner = Callable[[list[str], float], Awaitable[tuple[int, str]]]
"""(argv, timeout seconds) -> (exit code, combined output); inside the container."""


class ProbeConfigError(ValueError):
    """A probe the agent cannot run; the message names the field."""


@dataclass(frozen=True)
class ProbeSpec:
    kind: str
    action: dict[str, Any]
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, probe: dict[str, Any], field_path: str) -> ProbeSpec:
        """From a container's ``livenessProbe`` (etc.), with Kubernetes'
        defaults; ``field_path`` names it in error messages."""
        kinds = [k for k in KINDS if probe.get(k) is not None]
        if len(kinds) != 1:
            raise ProbeConfigError(
                f"{field_path}: must specify exactly one of exec, httpGet, tcpSocket, grpc"
            )

        def number(name: str, default: int, minimum: int) -> int:
            value = probe.get(name, default)
            if value is None:
                value = default
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ProbeConfigError(
                    f"{field_path}.{name}: Invalid value: {value!r}: must be an integer >= {minimum}"
                )
            return value

        return cls(
            kind=kinds[0],
            action=dict(probe[kinds[0]]),
            initial_delay=number("initialDelaySeconds", 0, 0),
            period=number("periodSeconds", 10, 1),
            timeout=number("timeoutSeconds", 1, 1),
            success_threshold=number("successThreshold", 1, 1),
            failure_threshold=number("failureThreshold", 3, 1),
        )


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    output: str = ""


def resolve_port(port: Any, container: dict[str, Any], field_path: str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) and not isinstance(port, bool):
        if 0 < port < 65536:
            return port
    elif isinstance(port, str):
        if port.isdigit():
            return resolve_port(int(port), container, field_path)
        for p in container.get("ports") or []:
            if p.get("name") == port and isinstance(p.get("containerPort"), int):
                return int(p["containerPort"])
        raise ProbeConfigError(f"{field_path}.port: no container port named {port!r}")
    raise ProbeConfigError(f"{field_path}.port: Invalid value: {port!r}: must be 1-65535 or a name")


async def check(
    spec: ProbeSpec,
    container: dict[str, Any],
    *,
    pod_ip: str,
    run_exec: ExecRunner,
    field_path: str = "probe",
) -> ProbeResult:
    """Run one check; never raises for a failing target (that is a result)."""
    action = spec.action
    try:
        if spec.kind == "exec":
            command = [str(a) for a in action.get("command") or []]
            if not command:
                raise ProbeConfigError(f"{field_path}.exec.command: Required value")
            code, output = await run_exec(command, spec.timeout)
            return ProbeResult(code == 0, output[:MAX_OUTPUT])
        port = resolve_port(action.get("port"), container, f"{field_path}.{spec.kind}")
        host = str(action.get("host") or pod_ip)
        if spec.kind == "tcpSocket":
            return await _tcp(host, port, spec.timeout)
        if spec.kind == "httpGet":
            return await _http(action, host, port, spec.timeout)
        return await _grpc(host, port, spec.timeout)
    except ProbeConfigError as exc:
        return ProbeResult(False, str(exc))


async def _tcp(host: str, port: int, timeout: float) -> ProbeResult:
    target = f"{host}:{port}"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return ProbeResult(False, f"dial tcp {target}: i/o timeout")
    except OSError as exc:
        return ProbeResult(False, f"dial tcp {target}: connect: {_reason(exc)}")
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return ProbeResult(True)


async def _http(action: dict[str, Any], host: str, port: int, timeout: float) -> ProbeResult:
    scheme = str(action.get("scheme") or "HTTP").lower()
    if scheme not in ("http", "https"):
        return ProbeResult(False, f"httpGet.scheme: unsupported value {scheme.upper()!r}")
    path = str(action.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{host}:{port}{path}"
    headers = {"User-Agent": "kube-probe/1.32", "Accept": "*/*"}
    for h in action.get("httpHeaders") or []:
        if h.get("name"):
            headers[str(h["name"])] = str(h.get("value") or "")
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with aiohttp.ClientSession(timeout=client_timeout) as session, session.get(
            url, headers=headers, ssl=False, allow_redirects=True
        ) as resp:
            body = (await resp.content.read(MAX_OUTPUT)).decode("utf-8", "replace")
            if 200 <= resp.status < 400:
                return ProbeResult(True, body)
            return ProbeResult(False, f"HTTP probe failed with statuscode: {resp.status}")
    except TimeoutError:
        return ProbeResult(
            False,
            f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
        )
    except aiohttp.ClientConnectorError as exc:
        return ProbeResult(
            False, f'Get "{url}": dial tcp {host}:{port}: connect: {_reason(exc.os_error)}'
        )
    except (aiohttp.ClientError, OSError) as exc:
        return ProbeResult(False, f'Get "{url}": {exc}')


async def _grpc(host: str, port: int, timeout: float) -> ProbeResult:
    """Without a gRPC stack the agent can only check that the port answers;
    it says so in the output rather than pretending to have called Check."""
    result = await _tcp(host, port, timeout)
    if not result.ok:
        return result
    return ProbeResult(True, "grpc port reachable (health service not called)")


def _reason(exc: OSError | None) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return (exc.strerror or str(exc)).lower() if exc is not None else "error"


class ProbeLoop:
    """One probe of one container instance, with its thresholds."""

    def __init__(
        self,
        name: str,
        spec: ProbeSpec,
        run_check: Callable[[], Awaitable[ProbeResult]],
        on_result: Callable[[ProbeLoop], None],
        clock: Clock,
    ) -> None:
        self.name = name  # "Liveness", "Readiness", "Startup"
        self.spec = spec
        self.run_check = run_check
        self.on_result = on_result
        self.clock = clock
        self.result: bool | None = None
        """None until thresholds give a verdict."""
        self.last_output = ""
        self.failures = 0
        self.successes = 0

    async def run(self, gate: asyncio.Event | None = None) -> None:
        if gate is not None:
            await gate.wait()
        await self.clock.sleep(self.spec.initial_delay)
        while True:
            try:
                outcome = await self.run_check()
            except Exception as exc:  # a probe bug must not take the pod down
                log.exception("%s probe raised", self.name)
                outcome = ProbeResult(False, f"probe error: {exc}")
            self._record(outcome)
            await self.clock.sleep(self.spec.period)

    def _record(self, outcome: ProbeResult) -> None:
        self.last_output = outcome.output.strip()
        verdict: bool | None = None
        if outcome.ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.spec.success_threshold:
                verdict = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.spec.failure_threshold:
                verdict = False
        changed = verdict is not None and verdict != self.result
        if verdict is not None:
            self.result = verdict
        if changed or not outcome.ok:  # every failed check is worth an Unhealthy event
            self.on_result(self)


class ContainerProbes:
    """The probes of one running container instance.

    ``started`` and ``ready`` are what the pod status shows; ``liveness_failed``
    is set (with a message) when the container must be killed.
    """

    def __init__(
        self,
        container: dict[str, Any],
        *,
        pod_ip: str,
        run_exec: ExecRunner,
        clock: Clock,
        on_change: Callable[[ContainerProbes, ProbeLoop], None],
    ) -> None:
        self.container = container
        self.name = str(container.get("name", ""))
        self.on_change = on_change
        self.loops: dict[str, ProbeLoop] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started_gate = asyncio.Event()
        self.kill_message: str | None = None
        for key, label in (
            ("startupProbe", "Startup"),
            ("livenessProbe", "Liveness"),
            ("readinessProbe", "Readiness"),
        ):
            raw = container.get(key)
            if not raw:
                continue
            path = f"spec.containers[{self.name}].{key}"
            spec = ProbeSpec.parse(raw, path)

            async def run_check(spec: ProbeSpec = spec, path: str = path) -> ProbeResult:
                return await check(
                    spec, container, pod_ip=pod_ip, run_exec=run_exec, field_path=path
                )

            self.loops[label] = ProbeLoop(label, spec, run_check, self._on_result, clock)
        if "Startup" not in self.loops:
            self._started_gate.set()

    @property
    def started(self) -> bool:
        return self._started_gate.is_set()

    @property
    def ready(self) -> bool:
        if not self.started:
            return False
        loop = self.loops.get("Readiness")
        return loop is None or loop.result is True

    def start(self) -> None:
        for label, loop in self.loops.items():
            gate = None if label == "Startup" else self._started_gate
            task = asyncio.get_running_loop().create_task(
                loop.run(gate), name=f"{label} probe {self.name}"
            )
            self._tasks.append(task)

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def _on_result(self, loop: ProbeLoop) -> None:
        if loop.name == "Startup":
            if loop.result is True and not self._started_gate.is_set():
                self._started_gate.set()
                for task in self._tasks:  # the startup probe's work is done
                    if task.get_name().startswith("Startup"):
                        task.cancel()
            elif loop.result is False:
                self.kill_message = f"Container {self.name} failed startup probe, will be restarted"
        elif loop.name == "Liveness" and loop.result is False:
            self.kill_message = f"Container {self.name} failed liveness probe, will be restarted"
        self.on_change(self, loop)


def unhealthy_message(loop: ProbeLoop) -> str:
    """The Unhealthy event's message, as the kubelet words it."""
    text = f"{loop.name} probe failed: {loop.last_output}"
    return text if loop.last_output else f"{loop.name} probe failed"
