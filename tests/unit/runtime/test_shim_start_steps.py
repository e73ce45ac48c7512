"""The supervisor's start steps (runtime/shim.py run()): its started report
carries CLOCK_MONOTONIC marks the agent can place in a pod's timeline."""

from __future__ import annotations

import json
import time
from pathlib import Path

from corral.runtime.process import ProcessRuntime
from corral.runtime.protocol import LogPaths

POD = {"metadata": {"name": "steps", "namespace": "default", "uid": "uid-steps"}}


async def test_started_report_has_ordered_monotonic_steps(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path / "state")
    try:
        before = time.monotonic()
        handle = await rt.start_container(
            POD, {"name": "c", "command": ["sleep", "30"]}, LogPaths(tmp_path / "c.log", 1 << 20), {})
        after = time.monotonic()
        started = json.loads((rt.state_dir / "containers" / handle.id / "started.json").read_text())
        steps = started["steps"]
        assert before <= steps["began"] <= steps["isolated"] <= steps["spawned"] <= after
        # The runtime passes them on, after the agent side's own mark.
        assert handle.start_steps == {"laid_out": handle.start_steps["laid_out"], **steps}
        assert before <= handle.start_steps["laid_out"] <= steps["began"]
    finally:
        for h in await rt.list():
            await rt.remove_container(h)
        await rt.close()
