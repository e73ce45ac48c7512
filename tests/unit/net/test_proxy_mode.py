"""Which proxy mode an agent gets, and the errors for one it cannot run."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from corral.cli.main import main
from corral.net import node
from corral.net.node import default_proxy_mode, proxy_mode_problem


def machine(monkeypatch: pytest.MonkeyPatch, *, root: bool, has_nft: bool) -> None:
    monkeypatch.setattr(node.os, "geteuid", lambda: 0 if root else 1000)
    monkeypatch.setattr(node.nft, "available", lambda: has_nft)


@pytest.mark.parametrize(("root", "has_nft", "one_machine", "expected"), [
    (True, True, False, "nftables"),
    (True, True, True, "userspace"),
    (True, False, False, "userspace"),
    (False, True, False, "userspace"),
])
def test_default(monkeypatch: pytest.MonkeyPatch, root: bool, has_nft: bool, one_machine: bool,
                 expected: str) -> None:
    machine(monkeypatch, root=root, has_nft=has_nft)
    assert default_proxy_mode(one_machine=one_machine) == expected


def test_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, root=False, has_nft=True)
    assert proxy_mode_problem("userspace") is None
    assert "needs root" in (proxy_mode_problem("nftables") or "")
    assert "not one of" in (proxy_mode_problem("ipvs") or "")
    machine(monkeypatch, root=True, has_nft=False)
    assert "nft command" in (proxy_mode_problem("nftables") or "")


def test_cli_refuses_kernel_mode_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, root=False, has_nft=True)
    result = CliRunner().invoke(main, ["agent", "--server", "https://127.0.0.1:1", "--token", "t",
                                       "--proxy-mode", "nftables"])
    assert result.exit_code == 2 and "--proxy-mode" in result.output and "needs root" in result.output
    result = CliRunner().invoke(main, ["up", "--proxy-mode", "ipvs"])
    assert result.exit_code == 2 and "ipvs" in result.output
