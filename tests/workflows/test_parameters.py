"""Bad parameters stop an MX recipe at its first node, naming the parameter, before the robot
or a motor has moved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bes.hal import Beamline
from bes.hal.clock import DeviceAction
from tests.workflows.helpers import SAMPLE, MxRun, run_mx, sheet_beamline

MOVING = {"goniometer", "sample_changer"}


@pytest.fixture(scope="module")
def beamline() -> Beamline:
    return sheet_beamline({"location": SAMPLE})


def run_watching(
    beamline: Beamline, data_root: Path, **inputs: Any
) -> tuple[MxRun, list[DeviceAction]]:
    """Run mxpresse on ``beamline`` and the device actions that happened meanwhile."""
    actions: list[DeviceAction] = []
    unsubscribe = beamline.clock.subscribe(actions.append)
    try:
        run = run_mx(beamline, "mxpresse", data_root, **inputs)
    finally:
        unsubscribe()
    return run, actions


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({"sample": SAMPLE, "mesh_box_um": -5}, "bad parameter mesh_box_um=-5"),
        ({"sample": "x"}, "bad parameter sample='x'"),
        ({"sample": SAMPLE, "file_format": "tiff"}, "bad parameter file_format='tiff'"),
        (
            {"sample": SAMPLE, "mesh_rows": 100, "mesh_cols": 100},
            "mesh_rows=100, mesh_cols=100: 10000 points exceed mesh_max_points=2500",
        ),
    ],
    ids=["mesh_box_um", "sample", "file_format", "mesh_points"],
)
def test_a_bad_parameter_fails_at_prepare_before_anything_moves(
    beamline: Beamline, tmp_path: Path, inputs: dict[str, Any], named: str
) -> None:
    omega = beamline.goniometer.read("omega")

    run, actions = run_watching(beamline, tmp_path, **inputs)

    result = run.result
    assert result.status == "failed"
    assert result.node_executions == {"prepare": 1, "fault": 1}
    assert run.failed_nodes() == ["prepare", "fault"]
    assert result.error is not None
    assert "ParameterError" in result.error.message
    assert named in result.error.message
    assert [a for a in actions if a.device in MOVING] == []
    assert beamline.sample_changer.mounted is None
    assert beamline.goniometer.read("omega") == omega
    assert list(tmp_path.iterdir()) == []  # no data directory made either


def test_the_device_watch_sees_a_move(beamline: Beamline) -> None:
    """The check above would pass on a clock that reports nothing; this one would not."""
    actions: list[DeviceAction] = []
    unsubscribe = beamline.clock.subscribe(actions.append)
    try:
        beamline.goniometer.move("omega", beamline.goniometer.read("omega") + 10.0)
    finally:
        unsubscribe()

    assert [a.device for a in actions] == ["goniometer"]


def test_an_unknown_parameter_name_fails_at_prepare(beamline: Beamline, tmp_path: Path) -> None:
    # A pin that is not there: should the run go on, it stops at the mount, not later.
    run, actions = run_watching(beamline, tmp_path, sample="1:2", mesh_box=10.0)

    assert run.result.unused_inputs == ("mesh_box",)
    assert run.failed_nodes() == ["prepare", "fault"]
    assert run.result.error is not None and "mesh_box" in run.result.error.message
    assert "did you mean 'mesh_box_um'" in run.result.error.message
    assert [a for a in actions if a.device in MOVING] == []


def test_the_keys_of_an_mxcube_start_body_are_accepted(beamline: Beamline, tmp_path: Path) -> None:
    body = {"modelpath": "mxpresse", "initiator": "mxcube", "shape": None, "token": "t"}
    run, actions = run_watching(beamline, tmp_path, sample="1:2", mesh_box_um=-5.0, **body)

    assert run.failed_nodes() == ["prepare", "fault"]
    assert run.result.error is not None and "mesh_box_um" in run.result.error.message
    assert "modelpath" not in run.result.error.message
    assert [a for a in actions if a.device in MOVING] == []
