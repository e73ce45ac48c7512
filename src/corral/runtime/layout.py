"""Where the process runtime keeps what: the one place that says so.

``state_dir/run`` (a tmpfs when the node asks for it, see
:mod:`corral.runtime.memfs`) holds the small, churning state: one directory
per container (``run/containers/<id>``: spec, meta, pid files, the shim's
own log) and each pod's sandbox lock and ``sandbox.json``
(``run/pods/<uid>``). ``state_dir/pods/<uid>`` holds what a pod writes (its
private /tmp, its root's upper and work layers) and stays on disk, like the
logs: a pod writing gigabytes must not fill the node's memory.
``state_dir/containers`` is a link to ``run/containers`` (the path of older
versions, which the fencing watchdog is given).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def run_dir(state_dir: Path) -> Path:
    """The runtime's memory-backed directory (a tmpfs when asked for)."""
    return Path(state_dir) / "run"


def containers_dir(state_dir: Path) -> Path:
    """Where each container's directory is: the one place that says so
    (the fencing watchdog and the test harness read it too)."""
    return run_dir(state_dir) / "containers"


def pod_states_dir(state_dir: Path) -> Path:
    """Where each pod's sandbox lock and ``sandbox.json`` are (``<uid>/``)."""
    return run_dir(state_dir) / "pods"


def sandbox_state_dirs(state_dir: Path) -> list[Path]:
    """Every pod's sandbox state directory (``sandbox.json`` in it)."""
    return sorted(pod_states_dir(state_dir).glob("*"))


def link_old_layout(state_dir: Path, containers: Path) -> None:
    """``state_dir/containers`` was the directory itself; it is now a link
    to it, so readers of the old path (and containers an older agent left
    there, moved over first; their shims open their files by name) keep
    working."""
    old = state_dir / "containers"
    if old.is_symlink():
        return
    if old.is_dir():
        for entry in old.iterdir():
            if not (containers / entry.name).exists():
                shutil.move(str(entry), str(containers / entry.name))
        try:
            old.rmdir()
        except OSError as exc:
            log.warning("keeping %s (%s): containers there are not adopted", old, exc)
            return
    with contextlib.suppress(FileExistsError):
        os.symlink(os.path.relpath(containers, state_dir), old)
