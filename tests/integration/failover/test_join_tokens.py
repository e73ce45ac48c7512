"""`corral token create/list` on a data directory (no server needed)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from corral.api.auth import TokenAuthenticator
from corral.cli.main import main
from corral.cli.token import create_join_token, list_join_tokens


def test_join_token_is_a_node_group_line_after_the_admin(tmp_path: Path) -> None:
    token = create_join_token(tmp_path, description="rack 7")
    rows = [r for r in csv.reader(io.StringIO((tmp_path / "tokens.csv").read_text()))
            if r and not r[0].startswith("#")]
    assert rows[0][1] == "admin"  # the server's kubeconfig keeps using the first line
    assert rows[-1][0] == token and rows[-1][1].startswith("system:node-join:")
    user = TokenAuthenticator.from_file(tmp_path / "tokens.csv").lookup(token)
    assert user is not None and "system:nodes" in user.groups
    ident = token.split(".")[0]
    assert list_join_tokens(tmp_path) == [(ident, "system:nodes")]
    assert (tmp_path / "tokens.csv").stat().st_mode & 0o777 == 0o600


def test_bad_group_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="group"):
        create_join_token(tmp_path, group='a,"b')
    result = CliRunner().invoke(main, ["token", "create", "--data-dir", str(tmp_path),
                                       "--group", ""])
    assert result.exit_code != 0 and "group" in result.output


def test_cli_prints_the_token_and_says_when_it_cannot_bind_the_role(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["token", "create", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    token = result.stdout.strip().splitlines()[0]
    assert "." in token
    assert "kubeconfig" in result.stderr  # no server yet: it says what to do
    listed = CliRunner().invoke(main, ["token", "list", "--data-dir", str(tmp_path)])
    assert listed.stdout.split("\t")[0] == token.split(".")[0]
