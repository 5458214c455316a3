"""``bes db``, ``bes runs`` and ``bes mine`` from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bes.cli import main
from bes.engine import RunContext, run_workflow
from bes.record.database import open_database
from bes.record.recorder import Recorder
from tests.conftest import make_sim_beamline


def test_db_upgrade_creates_the_database_and_status_counts_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'workflows.db'}"

    assert main(["db", "upgrade", "--url", url]) == 0
    assert "revision (empty) -> 0002" in capsys.readouterr().out.replace("\n", "")
    assert main(["db", "status", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "up to date" in out and "run_summary" in out


def test_readers_say_what_to_do_when_there_is_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"

    assert main(["runs", "list", "--url", url]) == 2
    assert "no workflow database at" in capsys.readouterr().err
    assert main(["mine", "--url", url]) == 2
    assert "bes db upgrade" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
    assert main(["mine", "--url", "mysql://x/y"]) == 2
    assert "unsupported database 'mysql'" in capsys.readouterr().err


def test_runs_list_show_and_mine_with_report_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'workflows.db'}"
    database = open_database(url, upgrade=True)
    beamline = make_sim_beamline()
    with Recorder(database, beamline=beamline) as recorder:
        context = RunContext(beamline=beamline, recorder=recorder)
        result = run_workflow("beamline_check", {"step_deg": 90.0, "sessionId": "mx9-1"}, context)
        run_workflow("beamline_check", {"step_deg": -1.0}, context.fresh())

    assert main(["runs", "list", "--url", url]) == 0
    assert result.run_id[:8] in capsys.readouterr().out
    assert main(["runs", "show", result.run_id[:6], "--url", url]) == 0
    out = capsys.readouterr().out
    assert "rotate#4" in out and "goniometer.move" in out and "energy_kev = 12.7 keV" in out
    assert main(["runs", "show", "abc", "--url", url]) == 2
    assert "at least 4 characters" in capsys.readouterr().err

    report, plots = tmp_path / "report.html", tmp_path / "plots"
    assert main(["mine", "--url", url, "--html", str(report), "--plots", str(plots)]) == 0
    out = capsys.readouterr().out
    assert "Success rate per recipe" in out and "Reasons of failure" in out
    page = report.read_text()
    assert page.count("<section>") == 8 and page.count("data:image/png;base64,") >= 5
    assert "step_deg must be &gt; #" in page
    pngs = sorted(p.name for p in plots.glob("*.png"))
    assert {"success_per_recipe.png", "step_times.png", "failure_reasons.png"} <= set(pngs)
    assert all((plots / name).read_bytes()[:4] == b"\x89PNG" for name in pngs)

    assert main(["mine", "step_times", "--url", url, "--session", "mx9-1"]) == 0
    assert "rotate" in capsys.readouterr().out
    assert main(["mine", "nonsense", "--url", url]) == 2
    error = capsys.readouterr().err
    assert "unknown mining query 'nonsense'; known: success_per_recipe" in error
    assert main(["mine", "--list"]) == 0
    assert "decisions_per_branch" in capsys.readouterr().out
    database.dispose()
