"""The local agent's node token in the server's token file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from corral.agent.localidentity import LOCAL_AGENT_UID, ensure_local_node_token
from corral.api.auth import read_token_file


def test_the_token_names_the_node_and_keeps_the_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    admin = 'sekrit,admin,admin,"system:masters"\n'
    path.write_text(admin)
    token = ensure_local_node_token(path, "n1")
    users = read_token_file(path)
    assert users["sekrit"].name == "admin"  # untouched, and still the first line
    assert path.read_text().startswith(admin)
    assert users[token].name == "system:node:n1"
    assert users[token].uid == LOCAL_AGENT_UID
    assert users[token].groups == ("system:nodes",)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_reused_across_restarts_without_rewriting(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('a,admin,admin,"system:masters"\n')
    first = ensure_local_node_token(path, "n1")
    mtime = path.stat().st_mtime_ns
    assert ensure_local_node_token(path, "n1") == first
    assert path.stat().st_mtime_ns == mtime


def test_a_new_node_name_replaces_the_old_entry(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('a,admin,admin,"system:masters"\nb,someone,someone\n')
    old = ensure_local_node_token(path, "old-name")
    new = ensure_local_node_token(path, "new-name")
    users = read_token_file(path)
    assert old != new and old not in users
    assert users[new].name == "system:node:new-name"
    assert {"a", "b"} <= users.keys()  # only this module's own entries are rewritten


def test_a_missing_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="node_name"):
        ensure_local_node_token(tmp_path / "tokens.csv", "")
