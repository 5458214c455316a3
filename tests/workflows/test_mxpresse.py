"""MXPressE end to end on the simulated beamline: a good crystal is centred and collected, an
empty loop and a weak crystal stop early with their reasons, a very strong crystal makes the
meshes attenuate. Every verdict is checked against the simulator's truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from bes.frames.nxmx import NxmxSeries
from bes.hal import Beamline
from tests.workflows.helpers import (
    FAST_COLLECTION,
    GOOD_PIN,
    SAMPLE,
    MxRun,
    centring_error_um,
    crystal_truth,
    file_stats,
    files_named,
    rotation,
    run_mx,
    run_number,
    sheet_beamline,
)

DOSE_CAP_MGY = 20.0


@dataclass
class TwoRuns:
    beamline: Beamline
    root: Path
    first: MxRun
    second: MxRun
    files_after_first: dict[Path, tuple[int, int]]
    files_after_second: dict[Path, tuple[int, int]]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    """The good crystal through MXPressE twice, into the same data area."""
    beamline = sheet_beamline(GOOD_PIN)
    root = tmp_path_factory.mktemp("good")
    first = run_mx(beamline, "mxpresse", root, sample=SAMPLE, **FAST_COLLECTION)
    after_first = file_stats(root)
    second = run_mx(beamline, "mxpresse", root, sample=SAMPLE, **FAST_COLLECTION)
    return TwoRuns(beamline, root, first, second, after_first, file_stats(root))


def test_a_good_crystal_is_centred_characterised_and_collected(good: TwoRuns) -> None:
    result = good.first.result

    assert result.status == "finished", result.error
    assert result.outputs["outcome"] == "collected"
    assert result.outputs["success"] is True
    # One pass straight through: no mesh retry, no attenuation.
    assert result.node_executions == {
        "prepare": 1,
        "mount": 1,
        "centre_loop": 1,
        "plan_mesh": 1,
        "mesh_first": 1,
        "mesh_second": 1,
        "centre_crystal": 1,
        "move_to_crystal": 1,
        "characterise": 1,
        "collect": 1,
        "unmount": 1,
        "summarise": 1,
    }
    assert good.beamline.sample_changer.mounted is None


def test_the_collection_rotates_the_crystal_centre_on_the_axis(good: TwoRuns) -> None:
    (crystal,) = crystal_truth(good.beamline)
    (collection,) = good.first.summary["collections"]
    positions = collection["positions"]

    assert positions["phiz"] == pytest.approx(0.0, abs=1e-6)
    # X-ray centring on 20 um boxes: over 36 seeds of this pin the error was 1.5-5.6 um
    # (beyond 5 um for 14 % to 33 % of them, depending on the noise draws)
    assert centring_error_um(positions, crystal) <= 6.0


def test_the_dose_stays_within_the_strategy_budget_and_the_cap(good: TwoRuns) -> None:
    summary = good.first.summary
    strategy = summary["strategy"]

    collected = sum(c["dose_mgy"] for c in summary["collections"])
    assert strategy["collectable"] is True
    assert strategy["dose_mgy"] <= strategy["budget_mgy"]
    assert 0.0 < collected < summary["dose_mgy"] <= DOSE_CAP_MGY
    # Had the strategy been collected in full (not FAST_COLLECTION), still within the cap.
    assert summary["dose_mgy"] - collected + strategy["dose_mgy"] <= DOSE_CAP_MGY


def test_the_collection_is_an_nxmx_master_with_every_frame(good: TwoRuns) -> None:
    (collection,) = good.first.summary["collections"]
    master = Path(collection["master_file"])
    series = NxmxSeries(master)

    assert master.is_relative_to(good.root)
    assert master.name.startswith("dc-")
    assert series.n_frames == collection["n_frames"] == 30  # FAST_COLLECTION
    assert series.available() == series.n_frames
    last = series.read(series.n_frames - 1)
    assert last.image.shape == good.beamline.detector.geometry.shape
    series.close()
    with h5py.File(master) as f:
        assert f["/entry/definition"][()] == b"NXmx"


def test_a_second_run_of_the_same_sample_never_overwrites_the_first(good: TwoRuns) -> None:
    assert good.second.result.status == "finished", good.second.result.error
    first_files = {Path(p) for p in good.first.summary["files"]}
    second_files = {Path(p) for p in good.second.summary["files"]}
    (first_dc,) = (Path(c["master_file"]) for c in good.first.summary["collections"])
    (second_dc,) = (Path(c["master_file"]) for c in good.second.summary["collections"])

    assert (run_number(first_dc), run_number(second_dc)) == (1, 2)
    assert first_files.isdisjoint(second_files)
    assert files_named(good.root, "dc-") == [first_dc, second_dc]
    # Every file of the first run is still there, untouched.
    for path, stat in good.files_after_first.items():
        assert good.files_after_second.get(path) == stat, path


def test_an_empty_loop_ends_no_diffraction_without_collecting(tmp_path: Path) -> None:
    beamline = sheet_beamline(
        {"location": SAMPLE, "loop": {"centre_mm": [-0.04, -0.09, 0.05], "size_um": [130, 110]}}
    )

    run = run_mx(beamline, "mxpresse", tmp_path, sample=SAMPLE)

    result = run.result
    assert result.status == "finished", result.error
    assert result.outputs["outcome"] == "no_diffraction"
    assert result.outputs["success"] is False
    assert result.node_executions.get("mesh_first", 0) <= 2
    assert "mesh_second" not in result.node_executions
    assert "characterise" not in result.node_executions
    assert "collect" not in result.node_executions
    assert run.summary["reason"].startswith("no diffraction")
    assert files_named(tmp_path, "dc-", "") == []
    assert files_named(tmp_path, "ref-", "") == []
    assert beamline.sample_changer.mounted is None


WEAK_RESOLUTION_A = 4.0
MIN_RESOLUTION_A = 3.5


def test_a_weak_crystal_stops_after_characterisation_as_poor_diffraction(
    tmp_path: Path,
) -> None:
    """Diffracts to 4 A (truth): the meshes find it, the characterisation measures it worse
    than the 3.5 A asked for, so no data are collected."""
    beamline = sheet_beamline(
        {
            "location": SAMPLE,
            "loop": {"centre_mm": [-0.03, -0.1, 0.06], "size_um": [130.0, 110.0]},
            "crystals": [
                {
                    "position_mm": [-0.02, -0.09, 0.065],
                    "size_um": [60.0, 48.0, 36.0],
                    "orientation": rotation(35.0, 20.0, 10.0),
                    "resolution_limit_a": WEAK_RESOLUTION_A,
                }
            ],
        }
    )

    run = run_mx(beamline, "mxpresse", tmp_path, sample=SAMPLE, min_resolution_a=MIN_RESOLUTION_A)

    result = run.result
    summary = run.summary
    assert result.status == "finished", result.error
    decisions = summary["decisions"]
    assert decisions[0].startswith("signal: first mesh")
    assert decisions[1].startswith("signal: second mesh")
    (crystal,) = crystal_truth(beamline)
    assert centring_error_um(summary["crystal"]["position"], crystal) <= 10.0
    measured = summary["characterisation"]["resolution_a"]
    assert MIN_RESOLUTION_A < measured == pytest.approx(WEAK_RESOLUTION_A, rel=0.2)
    assert result.outputs["outcome"] == "poor_diffraction"
    reason = summary["reason"]
    assert reason.startswith("poor diffraction: ")
    assert reason.endswith(f" A is worse than the {MIN_RESOLUTION_A:g} A threshold")
    # the reason rounds the measured resolution to 0.1 A, the summary keeps it to 0.01 A
    assert float(reason.split()[2]) == pytest.approx(measured, abs=0.051)
    assert result.node_executions["characterise"] == 1
    assert "collect" not in result.node_executions
    assert summary["collections"] == []
    assert files_named(tmp_path, "dc-", "") == []


def test_overloaded_meshes_are_repeated_with_less_transmission(tmp_path: Path) -> None:
    """A very strong 60 um crystal overloads pixels in 4 ms mesh frames (the truth: pixels at
    the detector's saturation value in the files); the overloaded meshes are repeated with
    less transmission until they are not, and the crystal is still centred and collected."""
    beamline = sheet_beamline(
        {
            "location": SAMPLE,
            "loop": {"centre_mm": [0.05, 0.12, -0.08], "size_um": [130.0, 110.0]},
            "crystals": [
                {
                    "position_mm": [0.06, 0.125, -0.08],
                    "size_um": [60.0, 60.0, 60.0],
                    "orientation": rotation(30.0, 20.0, 10.0),
                    "strength": 100.0,
                }
            ],
        }
    )

    run = run_mx(beamline, "mxpresse", tmp_path, sample=SAMPLE, **FAST_COLLECTION)

    result = run.result
    summary = run.summary
    assert result.status == "finished", result.error
    assert summary["decisions"][0].startswith("overload: ")
    assert summary["decisions"][1] == "attenuate: transmission 1 -> 0.25 for the first mesh"
    attenuations = result.node_executions["attenuate"]
    assert 1 <= attenuations <= 2  # max_attenuations
    assert result.node_outputs["attenuate"]["transmission"] == pytest.approx(0.25**attenuations)

    meshes = sorted(files_named(tmp_path, "mesh-"), key=run_number)
    assert len(meshes) == 2 + attenuations  # each attenuation repeats a mesh
    transmissions = [_transmission(m) for m in meshes]
    assert transmissions[0] == 1.0
    assert transmissions == sorted(transmissions, reverse=True)
    assert transmissions[-1] == pytest.approx(0.25**attenuations)
    overload_fraction = 0.1  # the parameter's default
    assert _overloaded_share(meshes[0]) >= overload_fraction
    assert _overloaded_share(meshes[1]) < _overloaded_share(meshes[0])
    assert _overloaded_share(meshes[-1]) < overload_fraction

    assert result.outputs["outcome"] == "collected"
    (crystal,) = crystal_truth(beamline)
    (collection,) = summary["collections"]
    assert centring_error_um(collection["positions"], crystal) <= 5.0


def _transmission(master: Path) -> float:
    with h5py.File(master) as f:
        return float(f["/entry/instrument/beam/transmission"][()])


def _overloaded_share(master: Path) -> float:
    """Share of the mesh's frames with a pixel at the saturation value (read from the files)."""
    series = NxmxSeries(master)
    try:
        hits = [
            bool(np.any(series.read(i).image >= series.saturation)) for i in range(series.n_frames)
        ]
    finally:
        series.close()
    return float(np.mean(hits))
