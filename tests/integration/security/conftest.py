"""An in-process API server with a few ordinary users besides the admin,
and the real kubectl run in a thread so the server keeps serving."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.api.security import SecurityOptions
from corral.testing import TestServer, running_server

USERS = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789"}


class Users:
    def __init__(self, server: TestServer, tmp: Path) -> None:
        self.server = server
        self.cache = tmp / "kubecache"

    async def kubectl(self, *args: str, token: str | None = None, check: bool = True,
                      input: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl as the admin (kubeconfig) or with a bearer token."""
        base = ["kubectl", f"--cache-dir={self.cache}"]
        if token is None:
            base.append(f"--kubeconfig={self.server.kubeconfig}")
        else:
            base += ["--kubeconfig=/dev/null", f"--server={self.server.url}",
                     f"--certificate-authority={self.server.ca_file}", f"--token={token}"]
        result = await asyncio.to_thread(subprocess.run, [*base, *args], capture_output=True, text=True,
                                         timeout=60, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result


@pytest.fixture
async def secure(tmp_path: Path) -> AsyncIterator[Users]:
    data = tmp_path / "server"
    data.mkdir()
    lines = ['admin-token-0123456789,admin,admin,"system:masters"']
    lines += [f"{token},{name},{name}-uid" for name, token in USERS.items()]
    (data / "tokens.csv").write_text("\n".join(lines) + "\n")
    async with running_server(tmp_path, security=SecurityOptions(token_recheck_seconds=0.5)) as server:
        yield Users(server, tmp_path)
