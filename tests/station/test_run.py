"""``bes run``: a recipe on the embedded station, as a user types it."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bes.cli import main
from bes.record import Miner
from bes.station import open_station
from bes.station.cli import UsageError, check_mx_parameters, parse_samples, parse_settings

SHEET = {
    "pins": [
        {
            "location": "1:1",
            "loop": {"centre_mm": [0.0, 0.08, -0.03]},
            "crystals": [{"position_mm": [0.02, 0.09, -0.02], "size_um": [50, 40, 30]}],
        },
        {"location": "1:2", "loop": {"centre_mm": [0.0, 0.05, 0.0]}},
    ]
}
"""1:1 holds a good crystal, 1:2 an empty loop; every other pin is missing."""

SHORT = ["--set", "oscillation_deg=0.5"]
"""A 180 deg collection in 360 frames instead of the strategy's 1800."""


@pytest.fixture
def sheet(tmp_path: Path) -> Path:
    path = tmp_path / "sheet.json"
    path.write_text(json.dumps(SHEET))
    return path


def test_run_collects_the_crystal_and_records_it_everywhere(
    tmp_path: Path, sheet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    args = ["run", "mxpresse", "--sample", "1:1", "--sheet", str(sheet), "--data-dir", str(data)]
    assert main([*args, *SHORT]) == 0
    out = capsys.readouterr().out

    # live progress (plain lines off a terminal), then the summary
    assert "start  mount #1" in out and "-> mesh_second" in out
    assert "mxpresse 1:1 (1-1): collected" in out
    assert "data collected" in out and "(simulated)" in out
    assert re.search(r"crystal at\s+phiy -0\.0\d\d, sampx", out)

    raw = list(data.glob("mx0000/SIM-MX1/*/RAW_DATA/1-1"))
    assert len(raw) == 1
    assert (raw[0] / "dc-1-1_1_master.h5").is_file()
    assert list(raw[0].glob("mesh-1-1_1_*.h5"))

    run_id = re.search(r"workflow run\s+([0-9a-f]{32})", out)
    assert run_id is not None
    per_recipe = Miner(f"sqlite:///{data / 'workflows.db'}").success_per_recipe()
    assert per_recipe.set_index("recipe").loc["mxpresse", ["runs", "succeeded"]].tolist() == [1, 1]
    with sqlite3.connect(data / "workflows.db") as db:
        rows = db.execute("SELECT run_id, status, sample, session FROM runs").fetchall()
    assert rows == [(run_id.group(1), "finished", "1:1", "mx0000-1")]

    # the embedded LIMS was stopped at the end; its file keeps what it was sent
    with sqlite3.connect(data / "lims" / "lims.sqlite") as lims:
        images = [n for (n,) in lims.execute("SELECT numberOfImages FROM DataCollection")]
        samples = lims.execute("SELECT COUNT(*) FROM BLSample").fetchone()[0]
    assert 360 in images
    assert samples == 1
    assert re.search(r"LIMS records\s+Proposal 1, BLSession 1", out)


def test_a_bad_parameter_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    args = ["run", "mxpresse", "--sample", "1:1", "--data-dir", str(data)]
    assert main([*args, "--set", "mesh_box_um=-5"]) == 2
    assert "bad parameter mesh_box_um=-5" in capsys.readouterr().err
    assert not data.exists()


def test_a_misspelt_parameter_gets_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["run", "mxpresse", "--data-dir", str(data), "--set", "oscilation_deg=1"]) == 2
    assert "did you mean 'oscillation_deg'" in capsys.readouterr().err
    assert not data.exists()


def test_an_unknown_recipe_lists_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "mxpresse2", "--sample", "1:1", "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'mxpresse2'; known:" in err and "mxpresse," in err


def test_no_lims_and_json_give_one_parsable_summary_per_run(
    tmp_path: Path, sheet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    args = ["run", "mxpresse", "--sample", "1:2", "--sheet", str(sheet), "--data-dir", str(data)]
    assert main([*args, "--no-lims", "--json", "--set", "mesh_retries=0"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["outcome"] == "no_diffraction" and summary["success"] is False
    assert summary["run"]["status"] == "finished"
    assert summary["run"]["lims_records"] is None
    assert "start  mesh_first #1" in captured.err  # progress goes to stderr with --json
    assert not (data / "lims").exists()


def test_a_failed_sample_makes_the_exit_status_1_and_the_next_sample_still_runs(
    tmp_path: Path, sheet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    args = ["run", "mxpresse", "--sample", "1:3-4", "--sheet", str(sheet), "--data-dir", str(data)]
    assert main([*args, "--no-lims", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "mxpresse 1:3 (1-3): failed" in out and "mxpresse 1:4 (1-4): failed" in out
    overview = out[out.index("Samples") :]
    assert "1:3" in overview and "1:4" in overview


def test_ctrl_c_aborts_the_run_and_closes_the_station(
    tmp_path: Path, sheet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"

    def interrupt_once_meshing() -> None:
        deadline = time.monotonic() + 60
        while not list(data.glob("mx0000/*/*/RAW_DATA/1-1/mesh-*")):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_once_meshing, daemon=True)
    interrupter.start()
    args = [
        "run",
        "mxpresse",
        "--sample",
        "1:1,1:2",
        "--sheet",
        str(sheet),
        "--data-dir",
        str(data),
    ]
    assert main([*args, *SHORT]) == 1
    interrupter.join(5)
    out = capsys.readouterr().out
    assert "mxpresse 1:1 (1-1): aborted" in out
    assert "signal SIGINT" in out
    assert "mxpresse 1:2" not in out  # the next sample does not start
    with sqlite3.connect(data / "workflows.db") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("aborted",)]
    with sqlite3.connect(data / "lims" / "lims.sqlite") as lims:  # not left "Started"
        assert lims.execute("SELECT status FROM Workflow").fetchall() == [("Error",)]


def test_open_station_serves_its_own_lims_until_closed(tmp_path: Path) -> None:
    with open_station(data_dir=tmp_path, seed=7) as station:
        assert station.lims is not None and station.lims.health()
        service = station.lims_service
        assert service is not None and service.url.startswith("http://127.0.0.1:")
        context = station.context(task_timeout_s=60)
        assert context.lims is station.lims and context.recorder is station.recorder
        assert context.limits.task_timeout_s == 60
    assert not service.running
    assert (tmp_path / "workflows.db").is_file()
    assert (tmp_path / "lims" / "tokens.json").is_file()


def test_samples_and_settings_as_typed() -> None:
    assert parse_samples(["1:1-3,2:5", "3:1"]) == ["1:1", "1:2", "1:3", "2:5", "3:1"]
    with pytest.raises(UsageError, match="bad sample range '1:3-1'"):
        parse_samples(["1:3-1"])
    settings = parse_settings(["oscillation_deg=0.5", "char_omegas_deg=[0, 90]", "prefix=lyso"])
    assert settings == {"oscillation_deg": 0.5, "char_omegas_deg": [0, 90], "prefix": "lyso"}
    assert parse_settings(["unmount_at_end=false"]) == {"unmount_at_end": False}
    # a number given to a text parameter stays text
    assert check_mx_parameters({"prefix": 2024}, "1:1", "/data")["prefix"] == "2024"
    with pytest.raises(UsageError, match="bad --set 'oops'"):
        parse_settings(["oops"])
