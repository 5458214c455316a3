"""Mesh and collect on a loop holding two crystals: one wedge from each, each centred on its
own crystal (the simulator's truth)."""

from __future__ import annotations

from pathlib import Path

from tests.workflows.helpers import (
    SAMPLE,
    centring_error_um,
    crystal_truth,
    files_named,
    rotation,
    run_mx,
    sheet_beamline,
)

TWO_CRYSTALS = {
    "location": SAMPLE,
    "loop": {"centre_mm": [-0.05, 0.1, 0.07], "size_um": [220.0, 160.0]},
    "crystals": [
        {
            "position_mm": [-0.1, 0.083, 0.068],
            "size_um": [50.0, 40.0, 35.0],
            "orientation": rotation(30.0, 20.0, 10.0),
            "strength": 1.5,
        },
        {
            "position_mm": [0.005, 0.121, 0.073],
            "size_um": [45.0, 40.0, 30.0],
            "orientation": rotation(-20.0, 40.0, 65.0),
        },
    ],
}
"""Two crystals 110 um apart in one loop."""


def test_two_crystals_in_one_loop_give_two_wedges_one_on_each(tmp_path: Path) -> None:
    beamline = sheet_beamline(TWO_CRYSTALS)

    run = run_mx(
        beamline, "mesh_and_collect", tmp_path, sample=SAMPLE, n_crystals=2, oscillation_deg=1.0
    )

    result = run.result
    summary = run.summary
    assert result.status == "finished", result.error
    assert result.outputs["outcome"] == "collected"
    assert summary["n_crystals"] >= 2
    assert result.node_executions["collect"] == 2
    collections = summary["collections"]
    masters = [Path(c["master_file"]) for c in collections]
    assert len(collections) == 2
    assert files_named(tmp_path, "dc-") == sorted(masters)
    assert [c["n_frames"] for c in collections] == [30, 30]  # wedge_range_deg 30 at 1 deg

    truth = crystal_truth(beamline)
    errors = [
        [centring_error_um(c["positions"], crystal) for crystal in truth] for c in collections
    ]
    nearest = [row.index(min(row)) for row in errors]  # the crystal each wedge was centred on
    assert sorted(nearest) == [0, 1], errors  # one wedge each
    assert all(min(row) <= 5.0 for row in errors), errors
    assert beamline.sample_changer.mounted is None
