"""The node identity of ``corral up``'s own agent on the server's Unix socket.

The agent of the machine the server runs on talks to a server in its own
process. Over TLS every request was encrypted and decrypted twice in one
interpreter, and every new pooled connection cost a handshake on both ends
(a 100-pod burst opened ~40; handshakes and records were ~20 % of the
process's CPU). The server's local socket (api/bootstrap.py) is plain HTTP
reachable only by this user, but it carries no client certificate, so the
agent needs a bearer token with the same identity its certificate has:
``system:node:<name>`` in ``system:nodes``, confined by the node
authorizer like any other node. Kubernetes allows exactly that for a
kubelet (a static token file entry); this one lives in the server's own
token file (0600, next to the admin token), is reused across restarts, and
replaces the entry of an earlier node name of this machine.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

from corral.client.api import ApiClient
from corral.client.errors import ForbiddenError, NotFoundError, UnauthorizedError
from corral.client.resources import NODES

LOCAL_AGENT_UID = "corral-local-agent"
"""The uid column that marks the entry as this module's (the only one it rewrites)."""
NODES_GROUP = "system:nodes"


def ensure_local_node_token(token_file: Path, node_name: str) -> str:
    """The bearer token of ``system:node:<node_name>`` in ``token_file``
    (Kubernetes' ``token,user,uid,"groups"`` lines), added if missing; other
    lines are kept byte for byte."""
    if not node_name:
        raise ValueError("node_name: required for a node identity")
    return ensure_node_tokens(token_file, [node_name], LOCAL_AGENT_UID)[node_name]


def ensure_node_tokens(token_file: Path, names: Iterable[str], marker: str) -> dict[str, str]:
    """A bearer token of ``system:node:<name>`` for each of ``names``, in
    entries whose uid column is ``marker`` (the only ones rewritten): an
    entry for a wanted name is reused, marked entries of other names are
    dropped, every other line is kept byte for byte. The file is replaced
    whole (0600), and only when that changes it."""
    wanted = list(dict.fromkeys(names))
    if not wanted or any(not name for name in wanted):
        raise ValueError("names: one or more non-empty node names")
    users = {f"system:node:{name}": name for name in wanted}
    text = token_file.read_text() if token_file.exists() else ""
    lines = text.splitlines()
    kept: list[str] = []
    tokens: dict[str, str] = {}
    for line in lines:
        row = next(csv.reader(io.StringIO(line)), [])
        if len(row) > 2 and row[2].strip() == marker:
            name = users.get(row[1].strip())
            if name is None or name in tokens:
                continue  # an earlier name (or a duplicate) of this marker's nodes
            tokens[name] = row[0].strip()
        kept.append(line)
    if len(tokens) == len(wanted) and len(kept) == len(lines):
        return tokens
    for name in wanted:
        if name not in tokens:
            tokens[name] = secrets.token_urlsafe(32)
            kept.append(f'{tokens[name]},system:node:{name},{marker},"{NODES_GROUP}"')
    _write_private(token_file, "\n".join(kept) + "\n")
    return tokens


def _write_private(path: Path, text: str) -> None:
    """Whole or not at all (the server re-reads the file while it runs)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


async def local_node_client(socket_path: str, token_file: Path, node_name: str, *,
                            ca_file: str | None = None, timeout: float = 10.0,
                            user_agent: str = "corral-agent") -> ApiClient:
    """A client of the server's local socket authenticated as the node,
    returned once the server accepts its token (a new entry is read within
    a second or so of being written). ``ca_file`` is the CA the agent's own
    endpoint verifies the API server's client certificate with."""
    token = ensure_local_node_token(token_file, node_name)
    client = ApiClient("http://localhost", token=token, ca_file=ca_file, user_agent=user_agent,
                       unix_socket=socket_path)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                await client.get(NODES, node_name)
                return client
            except (NotFoundError, ForbiddenError):
                return client  # authenticated (not registered yet, or not allowed to look)
            except UnauthorizedError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    except BaseException:
        await client.close()
        raise
