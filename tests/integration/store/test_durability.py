"""An acknowledged write survives SIGKILL.

A child process creates keys through SqliteStore from several concurrent
tasks (so acknowledgements come out of group commits) and prints each key the
moment its create() returns. We kill it mid-stream, reopen the database and
require every printed key, with its value. Several rounds reuse one file, so
recovery from a killed WAL is also exercised by the following rounds.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from corral.store.sqlite import SqliteStore

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from corral.store.sqlite import SqliteStore

    async def main(path, round_no):
        store = SqliteStore(path)
        await store.start()
        out = sys.stdout

        async def writer(w):
            i = 0
            while True:
                key = f"/r{round_no}/w{w}/{i}"
                await store.create(key, f"value of {key}".encode())
                out.write(key + "\\n")
                out.flush()
                i += 1

        await asyncio.gather(*(writer(w) for w in range(8)))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def run_and_kill(path: Path, round_no: int, kill_after: int) -> list[str]:
    """Start the writer, read acknowledged keys until ``kill_after`` of them
    have been printed, SIGKILL it, and return every key it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(round_no)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked: list[str] = []
    buffer = b""
    deadline = time.monotonic() + 30
    try:
        while len(acked) < kill_after:
            assert time.monotonic() < deadline, "writer too slow"
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                assert proc.poll() is None, proc.stderr.read().decode()
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, proc.stderr.read().decode() if proc.stderr else "writer exited"
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            acked += [line.decode() for line in lines]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # Anything it printed before dying was acknowledged too.
    rest = buffer + proc.stdout.read()
    acked += [line.decode() for line in rest.split(b"\n")[:-1]]
    proc.stdout.close()
    proc.stderr.close()
    return acked


async def test_acknowledged_creates_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    total = 0
    for round_no, kill_after in enumerate([150, 400, 50, 300]):
        acked = await asyncio.to_thread(run_and_kill, path, round_no, kill_after)
        assert len(acked) >= kill_after
        store = SqliteStore(str(path))
        await store.start()
        try:
            for key in acked:
                kv = await store.get(key)
                assert kv is not None, f"acknowledged key {key} lost in round {round_no}"
                assert kv.value == f"value of {key}".encode()
            revisions = [kv.mod_revision for kv in (await store.list(f"/r{round_no}/")).items]
            assert len(set(revisions)) == len(revisions)
            total += len(acked)
            assert await store.count("/r") >= total
        finally:
            await store.close()
