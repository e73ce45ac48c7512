"""A Docker container's state and usage in corral's terms: its state from
the engine's inspect answer, its CPU and memory from its cgroup (Docker's
own stats call takes a second per container)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corral.runtime.protocol import ContainerState
from corral.runtime.shim import parse_rfc3339nano


def state_from_inspect(state: dict[str, Any]) -> ContainerState:
    started = _time(state.get("StartedAt"))
    status = state.get("Status")
    if status in ("running", "paused", "restarting"):
        return ContainerState("running", started or datetime.now(UTC))
    finished = _time(state.get("FinishedAt")) or datetime.now(UTC)
    if status == "created":  # never started: the start failed
        return ContainerState(
            "exited", finished, exit_code=128, finished_at=finished, reason="StartError",
            message=str(state.get("Error") or "the container was created but never started"),
        )
    code = int(state.get("ExitCode") or 0)
    oom = bool(state.get("OOMKilled"))
    return ContainerState(
        "exited",
        started or finished,
        exit_code=137 if oom and code == 0 else code,
        finished_at=finished,
        reason="OOMKilled" if oom else None,
        message=str(state.get("Error") or "") or None,
    )


def cgroup_usage(pid: int) -> tuple[int | None, int | None]:
    """CPU time (ns) and memory in use of the cgroup ``pid`` is in, v1 or v2."""
    root = Path("/sys/fs/cgroup")
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None, None
    paths = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path.lstrip("/")
    cpu = mem = None
    try:
        if "cpuacct" in paths:
            base = next(root / d for d in ("cpuacct", "cpu,cpuacct") if (root / d).exists())
            cpu = int((base / paths["cpuacct"] / "cpuacct.usage").read_text())
            mem = int((root / "memory" / paths["memory"] / "memory.usage_in_bytes").read_text())
        elif "" in paths:
            d = root / paths[""]
            stat = dict(ln.split() for ln in (d / "cpu.stat").read_text().splitlines())
            cpu = int(stat["usage_usec"]) * 1000
            mem = int((d / "memory.current").read_text())
    except (OSError, ValueError, KeyError, StopIteration):
        return None, None
    return cpu, mem


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str) or text.startswith("0001-"):
        return None
    ns = parse_rfc3339nano(text)
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC)
