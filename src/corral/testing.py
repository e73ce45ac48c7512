"""Helpers for tests that need a real API server in-process.

Shipped beside the real thing (as DESIGN.md asks) rather than kept in
conftest files, so every test package starts servers the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from corral.api.bootstrap import RunningServer, ServerOptions
from corral.clock import Clock


class TestServer(RunningServer):
    def client(self, **kwargs: Any) -> Any:
        """An ApiClient for this server (the caller closes it)."""
        from corral.client.api import ApiClient

        return ApiClient(self.url, token=self.token, ca_file=str(self.ca_file), **kwargs)


@asynccontextmanager
async def running_server(tmp_path: Path, *, clock: Clock | None = None, **options: Any) -> AsyncIterator[TestServer]:
    """An API server on a free loopback port with its data under tmp_path."""
    opts = ServerOptions(data_dir=Path(tmp_path) / "server", port=0, **options)
    server = TestServer(opts, clock=clock)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
