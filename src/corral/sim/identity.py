"""Hollow nodes that log in as nodes.

A kubelet is ``system:node:<name>`` in ``system:nodes``, and every request
it makes passes the node authorizer: it may read only its own pods and what
they mount, write only their status, its own Node and its own Lease. Hollow
nodes are meant to load the server exactly as agents would, so each gets
that identity too: a static token entry (Kubernetes' token file lines,
``token,user,uid,"groups"``) added to the server's token file, which the
server re-reads while it runs. That needs the file, so the sim must run
where the server keeps its data (the benchmarks do); without it every node
shares the token it was given, and the authorizer's per-node work goes
unmeasured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path

from corral.agent import localidentity
from corral.client.api import ApiClient
from corral.client.errors import UnauthorizedError
from corral.client.resources import NODES

HOLLOW_UID = "corral-hollow-node"
"""The uid column marking the entries this module owns (the only ones it rewrites)."""


def ensure_node_tokens(token_file: Path, names: Iterable[str]) -> dict[str, str]:
    """A bearer token of ``system:node:<name>`` for each name, in
    ``token_file``: an entry of an earlier run for the same name is reused,
    hollow entries for other names are dropped, every other line is kept
    byte for byte."""
    return localidentity.ensure_node_tokens(token_file, names, HOLLOW_UID)


async def wait_accepted(client: ApiClient, timeout: float = 30.0) -> None:
    """Until the server knows the token ``client`` carries (it re-reads its
    token file every few seconds); a node may get its own Node even before
    it exists (NotFound), so only 401 means "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.list(NODES, limit=1)
            return
        except UnauthorizedError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not accept the node tokens within {timeout:.0f}s "
                                   "(is --node-token-file the server's token file?)") from None
            await asyncio.sleep(0.2)
        except Exception:  # noqa: BLE001 - anything but 401: the token was read
            return
