"""The static token file: lookups, the authenticated group, reload on change;
and ``corral certs``."""

from __future__ import annotations

import os
import time
from pathlib import Path

from click.testing import CliRunner

from corral.api import auth
from corral.api.auth import TokenAuthenticator, user_from_peercert
from corral.api.tls import ensure_serving_files
from corral.cli.certs import certs


def test_token_file_reload(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('t1,admin,admin,"system:masters"\n')
    tokens = TokenAuthenticator(auth.read_token_file(path), path, reload_seconds=0.0)
    user = tokens.lookup("t1")
    assert user is not None and user.groups == ("system:masters", "system:authenticated")
    assert tokens.lookup("t2") is None
    path.write_text('t1,admin,admin,"system:masters"\nt2,bob,bob\n')
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    bob = tokens.lookup("t2")
    assert bob is not None and bob.name == "bob"


def test_peercert_subject() -> None:
    cert = {"subject": ((("commonName", "system:node:n1"),), (("organizationName", "system:nodes"),))}
    user = user_from_peercert(cert)
    assert user is not None and user.name == "system:node:n1"
    assert user.groups == ("system:nodes", "system:authenticated")
    assert user_from_peercert({}) is None


def test_certs_command_lists_and_renews(tmp_path: Path) -> None:
    files = ensure_serving_files(tmp_path, ["127.0.0.1"])
    before = files.cert.read_bytes()
    listed = CliRunner().invoke(certs, ["--data-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    serving = next(line.split("\t") for line in listed.output.splitlines() if line.startswith("API server serving"))
    assert serving[2] == "CN=corral-apiserver" and serving[3] == "127.0.0.1" and serving[5] in ("364", "365")
    renewed = CliRunner().invoke(certs, ["--data-dir", str(tmp_path), "renew"])
    assert renewed.exit_code == 0, renewed.output
    assert files.cert.read_bytes() != before
    assert "127.0.0.1" in renewed.output  # the names it had are kept
    missing = CliRunner().invoke(certs, ["--data-dir", str(tmp_path / "nothing")])
    assert missing.exit_code != 0 and "no certificates" in missing.output
