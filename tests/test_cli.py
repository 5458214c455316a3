"""The `bes` command as a user types it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import bes
from bes.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mxbes {bes.__version__}"


def test_sim_info_lists_every_device_and_the_timing_profile(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sim", "info"]) == 0
    out = capsys.readouterr().out
    for role in ("clock", "goniometer", "detector", "sample_changer", "beam", "shutter", "camera"):
        assert role in out
    assert "Timing profile" in out
    assert "omega_speed_deg_s" in out and "exchange_s" in out


def test_sim_info_clock_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "info", "--clock", "scaled", "--speed", "20"]) == 0
    out = capsys.readouterr().out
    assert "scaled" in out


def test_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "info", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml does not exist" in capsys.readouterr().err


def test_python_dash_m_bes_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bes", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "mxbes" in done.stdout
