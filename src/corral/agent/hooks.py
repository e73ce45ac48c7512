"""Container lifecycle hooks: ``postStart`` and ``preStop``.

A hook is an exec command, an HTTP GET or a sleep, as in Kubernetes. preStop
runs before the container is signalled and counts against the pod's grace
period (what is left of it goes to SIGTERM before SIGKILL, never less than
two seconds, as the kubelet allows); postStart runs right after the start
and a failing one kills the container.
"""

from __future__ import annotations

import asyncio
from typing import Any

from corral.agent.probes import ExecRunner, ProbeSpec, check
from corral.clock import Clock

MIN_GRACE_AFTER_HOOK = 2.0


async def run_hook(
    handler: dict[str, Any],
    container: dict[str, Any],
    *,
    pod_ip: str,
    run_exec: ExecRunner,
    clock: Clock,
    timeout: float,
    field_path: str,
) -> str | None:
    """Run one handler within ``timeout``; None on success, else why not."""
    if handler.get("sleep") is not None:
        seconds = (handler.get("sleep") or {}).get("seconds")
        if not isinstance(seconds, int) or seconds < 0:
            return f"{field_path}.sleep.seconds: must be a non-negative integer"
        await clock.sleep(min(seconds, timeout))
        return None
    kinds = [k for k in ("exec", "httpGet", "tcpSocket") if handler.get(k) is not None]
    if len(kinds) != 1:
        return f"{field_path}: must specify exactly one of exec, httpGet, sleep"
    spec = ProbeSpec(kind=kinds[0], action=dict(handler[kinds[0]]), timeout=max(timeout, 0.1))
    try:
        result = await asyncio.wait_for(
            check(spec, container, pod_ip=pod_ip, run_exec=run_exec, field_path=field_path),
            max(timeout, 0.1) + 1.0,
        )
    except TimeoutError:
        return f"{field_path}: did not finish within {timeout:g}s"
    if result.ok:
        return None
    if kinds[0] == "exec":
        return f"command {handler['exec'].get('command')!r} exited: {result.output.strip()}"
    return result.output.strip() or "hook failed"


def grace_after_hook(grace: float, spent: float) -> float:
    """What is left of the grace period for SIGTERM once preStop ran."""
    return max(grace - spent, MIN_GRACE_AFTER_HOOK) if grace > 0 else 0.0
