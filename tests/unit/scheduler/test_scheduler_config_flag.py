"""--scheduler-config FILE on corral server/up: same format as
CORRAL_SCHEDULER_CONFIG, and a bad file is refused before anything starts,
naming the file and the field at fault."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from corral.cli.main import main
from corral.scheduler.profile import load_profiles_file


def test_the_file_is_read_in_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text("profiles:\n- schedulerName: default-scheduler\n  strategy: binpack\n"
                    "- schedulerName: batch\n  strategy: random\n")
    got = load_profiles_file(path)
    assert [(p.scheduler_name, p.strategy) for p in got] == [("default-scheduler", "binpack"),
                                                             ("batch", "random")]


@pytest.mark.parametrize("command", ["server", "up"])
def test_a_bad_file_names_the_field_and_nothing_starts(tmp_path: Path, command: str) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text("profiles:\n- schedulerName: default-scheduler\n  strategy: fastest\n")
    result = CliRunner().invoke(main, [command, "--data-dir", str(tmp_path / "d"), "--scheduler-config", str(path)])
    assert result.exit_code == 2
    assert "profiles[0].strategy" in result.output and "fastest" in result.output
    assert str(path) in result.output
    assert not (tmp_path / "d").exists()


def test_unreadable_and_malformed_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read it"):
        load_profiles_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: [unclosed\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: scheduler config: not valid YAML"):
        load_profiles_file(bad)
