"""The simulated processing pipeline answers from the crystal the beam went through: its space
group, a resolution near its limit (or the detector edge), completeness from the rotation."""

from __future__ import annotations

from typing import Any

import pytest

from bes.acquisition.processing import check_summary, run_hook
from bes.hal import Beamline, DeviceAction, Location
from simulators.processing import SimProcessing, crystal_system, edge_resolution_a
from tests.conftest import make_sim_beamline

CRYSTAL_MM = (0.1, 0.08, -0.05)
SHEET: dict[str, Any] = {
    "pins": [
        {
            "location": "1:1",
            "protein": "lysozyme",
            "loop": {"centre_mm": list(CRYSTAL_MM)},
            "crystals": [
                {
                    "position_mm": list(CRYSTAL_MM),
                    "size_um": [50, 40, 40],
                    "resolution_limit_a": 2.5,
                }
            ],
        },
        {
            "location": "1:2",
            "protein": "trypsin",
            "crystals": [{"position_mm": [0, 0, 0], "resolution_limit_a": 1.2}],
        },
    ]
}


def scan(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "master_file": "/data/lyso/lyso_1_master.h5",
        "directory": "/data/lyso",
        "prefix": "lyso",
        "run": 1,
        "n_frames": 1800,
        "omega_start_deg": 0.0,
        "oscillation_deg": 0.1,
        "exposure_s": 0.01,
        "wavelength_a": 0.976,
        "detector_distance_mm": 80.0,  # edge at 1.74 A: the crystal limits the resolution
        "sample": "1:1",
        "space_group": None,
        "cell": None,
    }
    return {**request, **changes}


@pytest.fixture
def beamline() -> Beamline:
    beamline = make_sim_beamline(world={"sheet": SHEET})
    beamline.sample_changer.load(Location(1, 1))
    a, b, c = CRYSTAL_MM
    beamline.goniometer.move_many({"phiy": -a, "sampx": -b, "sampy": -c})
    return beamline


def test_the_simulated_beamline_config_names_the_simulated_pipeline(beamline: Beamline) -> None:
    assert isinstance(beamline.extras["processing"], SimProcessing)


def test_a_centred_crystal_gives_its_space_group_and_resolution(beamline: Beamline) -> None:
    summary = run_hook(beamline.extras["processing"], scan())
    assert summary["status"] == "success" and summary["simulated"] is True
    assert summary["program"] == "simulated-processing"
    assert summary["space_group"] == "P43212"
    assert summary["resolution_a"] == pytest.approx(2.5, rel=0.1)
    a, b, c, *angles = summary["cell"]
    assert a == b == pytest.approx(79.1, rel=0.01) and c == pytest.approx(37.9, rel=0.01)
    assert angles == [90.0, 90.0, 90.0]
    assert summary["completeness"] == pytest.approx(0.99)  # 180 deg of a tetragonal crystal
    assert summary["multiplicity"] == pytest.approx(6.0)
    assert summary["i_over_sigma"] == pytest.approx(2.0, rel=0.2)
    assert summary["cc_half"] == pytest.approx(0.5, abs=0.06)
    assert check_summary(summary) == summary


def test_the_same_scan_gives_the_same_summary_and_another_run_differs(
    beamline: Beamline,
) -> None:
    hook = beamline.extras["processing"]
    first = hook(scan())
    assert hook(scan()) == first
    assert hook(scan(run=2)) != first


def test_a_short_rotation_is_incomplete(beamline: Beamline) -> None:
    summary = beamline.extras["processing"](scan(n_frames=300))  # 30 of 60 deg needed
    assert summary["completeness"] == pytest.approx(0.495)
    assert summary["multiplicity"] == pytest.approx(1.0)


def test_the_crystal_out_of_the_beam_gives_no_diffraction(beamline: Beamline) -> None:
    beamline.goniometer.move("phiy", -CRYSTAL_MM[0] + 0.5)  # 0.5 mm along the axis
    summary = run_hook(beamline.extras["processing"], scan())
    assert summary == {
        "program": "simulated-processing",
        "status": "failed",
        "simulated": True,
        "message": "no diffraction (simulated processing)",
    }


def test_an_off_axis_crystal_diffracts_only_when_the_rotation_turns_it_into_the_beam(
    beamline: Beamline,
) -> None:
    beamline.goniometer.move("sampx", -CRYSTAL_MM[1] + 0.3)  # 0.3 mm above the axis at 0 deg
    hook = beamline.extras["processing"]
    assert hook(scan(n_frames=10))["status"] == "failed"  # 1 deg at omega 0: never in the beam
    assert hook(scan())["status"] == "success"  # 180 deg: crosses the beam at omega 90


def test_an_empty_goniometer_gives_no_diffraction() -> None:
    beamline = make_sim_beamline(world={"sheet": SHEET})
    summary = beamline.extras["processing"](scan())
    assert summary["status"] == "failed" and summary["message"].startswith("no diffraction")


def test_the_detector_edge_limits_a_strong_crystal() -> None:
    beamline = make_sim_beamline(world={"sheet": SHEET})
    beamline.sample_changer.load(Location(1, 2))  # trypsin at the pin origin, 1.2 A
    hook = beamline.extras["processing"]
    summary = hook(scan(detector_distance_mm=150.0, n_frames=450))  # 45 of 90 deg needed
    assert summary["space_group"] == "P212121"
    assert summary["resolution_a"] == pytest.approx(edge_resolution_a(0.976, 150.0, 51.2), abs=0.01)
    assert summary["i_over_sigma"] > 10 and summary["cc_half"] > 0.8
    assert summary["completeness"] == pytest.approx(0.495)
    wider = hook(scan(detector_distance_mm=150.0, n_frames=450, edge_radius_mm=80.0))
    assert wider["resolution_a"] < summary["resolution_a"]


def test_a_run_is_reported_on_the_clock_without_holding_the_beamline(
    beamline: Beamline,
) -> None:
    seen: list[DeviceAction] = []
    beamline.clock.subscribe(seen.append)
    before = beamline.clock.now()
    beamline.extras["processing"](scan())
    assert beamline.clock.now() == before
    (action,) = seen
    assert (action.device, action.action, action.duration_s) == ("processing", "process", 60.0)
    assert action.details == {"prefix": "lyso", "run": 1, "status": "success"}


@pytest.mark.parametrize(
    ("cell", "system"),
    [
        ((78.0, 78.0, 78.0, 90.0, 90.0, 90.0), "cubic"),
        ((79.1, 79.1, 37.9, 90.0, 90.0, 90.0), "tetragonal"),
        ((54.8, 58.6, 67.5, 90.0, 90.0, 90.0), "orthorhombic"),
        ((93.0, 93.0, 130.0, 90.0, 90.0, 120.0), "hexagonal"),
        ((50.0, 60.0, 70.0, 90.0, 105.0, 90.0), "monoclinic"),
        ((50.0, 60.0, 70.0, 80.0, 105.0, 95.0), "triclinic"),
    ],
)
def test_crystal_system_from_the_cell(cell: tuple[float, ...], system: str) -> None:
    assert crystal_system(cell) == system
