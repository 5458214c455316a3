"""Collection strategy: the dose stays within the budget in every case, and the plan follows
its documented rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bes.analysis.dose import collection_budget_mgy, dose_rate_mgy_s
from bes.analysis.strategy import (
    _SYSTEM_GROUPS,
    BeamState,
    DetectorLimits,
    Strategy,
    crystal_system,
    plan_strategy,
)

EIGER_4M = DetectorLimits(max_frame_rate_hz=560.0, edge_radius_mm=77.55)
SMALL = DetectorLimits(
    max_frame_rate_hz=1000.0, edge_radius_mm=51.2, min_distance_mm=50.0, max_distance_mm=800.0
)
DEFAULT_BEAM = BeamState(full_flux_ph_s=2e12, beam_fwhm_um=(20.0, 20.0), energy_kev=12.7)

CHIRAL_TABLE = """
P1
P2 P21 C2
P222 P2221 P21212 P212121 C2221 C222 F222 I222 I212121
P4 P41 P42 P43 I4 I41 P422 P4212 P4122 P41212 P4222 P42212 P4322 P43212 I422 I4122
P3 P31 P32 R3 P312 P321 P3112 P3121 P3212 P3221 R32
P6 P61 P65 P62 P64 P63 P622 P6122 P6522 P6222 P6422 P6322
P23 F23 I23 P213 I213 P432 P4232 F432 F4132 I432 P4332 P4132 I4132
"""
CHIRAL_GROUPS = CHIRAL_TABLE.split()
"""The 65 chiral (Sohncke) space groups, one crystal system a line."""


def test_the_65_chiral_space_groups_are_known() -> None:
    assert len(CHIRAL_GROUPS) == 65 == len(set(CHIRAL_GROUPS))
    systems = {g: crystal_system(g) for g in CHIRAL_GROUPS}
    assert systems["P1"] == "triclinic" and systems["P43212"] == "tetragonal"
    assert systems["P6122"] == "hexagonal" and systems["I213"] == "cubic"
    assert crystal_system("C 1 2 1") == "monoclinic" and crystal_system("p 21 21 21")
    for system, groups in _SYSTEM_GROUPS.items():
        assert all(crystal_system(g) == system for g in groups.split())


def check_promises(s: Strategy, used_mgy: float, detector: DetectorLimits) -> None:
    """What every strategy must keep, whatever the inputs."""
    budget = collection_budget_mgy(used_mgy)
    assert s.budget_mgy == pytest.approx(budget)
    assert 0.0 <= s.dose_mgy <= budget
    assert used_mgy + s.dose_mgy <= max(20.0, used_mgy) + 1e-9
    assert 0.0 <= s.transmission <= 1.0
    assert 0.05 - 1e-9 <= s.oscillation_deg <= 0.5 + 1e-9
    assert s.n_frames >= 1
    assert s.total_range_deg == pytest.approx(s.n_frames * s.oscillation_deg)
    assert s.exposure_s >= 1.0 / detector.max_frame_rate_hz - 1e-12
    assert detector.min_distance_mm <= s.detector_distance_mm <= detector.max_distance_mm
    assert s.collectable == (s.transmission > 0)


def test_dose_within_budget_in_every_case_of_a_random_sweep() -> None:
    """Flux 1e9..1e13 ph/s, beam 5..100 um, 6..20 keV, 1..5 A, mosaicity 0..2 deg, 0..25 MGy
    already absorbed, every chiral space group and unknown symmetry, with and without the
    crystal size."""
    rng = np.random.default_rng(20)
    groups: list[str | None] = [*CHIRAL_GROUPS, None]
    n_cases = 3000
    for i in range(n_cases):
        beam = BeamState(
            full_flux_ph_s=float(10 ** rng.uniform(9, 13)),
            beam_fwhm_um=(float(rng.uniform(5, 100)), float(rng.uniform(5, 100))),
            energy_kev=float(rng.uniform(6, 20)),
        )
        detector = EIGER_4M if i % 2 else SMALL
        used = float(rng.uniform(0, 25))
        crystal = (float(rng.uniform(5, 200)), float(rng.uniform(5, 200))) if i % 3 == 0 else None
        strategy = plan_strategy(
            resolution_a=float(rng.uniform(1, 5)),
            mosaicity_deg=float(rng.uniform(0, 2)),
            beam=beam,
            detector=detector,
            space_group=groups[i % len(groups)],
            used_dose_mgy=used,
            target_dose_mgy=float(rng.uniform(1, 30)),
            crystal_size_um=crystal,
        )
        check_promises(strategy, used, detector)


def test_dose_within_budget_at_the_extremes() -> None:
    for flux in (1e9, 1e13):
        for beam_um in (5.0, 100.0):
            for energy in (6.0, 20.0):
                for used in (0.0, 0.99, 1.0, 18.99, 19.0, 20.0, 25.0):
                    beam = BeamState(flux, (beam_um, beam_um), energy)
                    for mosaicity in (0.0, 2.0):
                        s = plan_strategy(1.0, mosaicity, beam, EIGER_4M, used_dose_mgy=used)
                        check_promises(s, used, EIGER_4M)


def test_a_typical_crystal_gets_a_typical_plan() -> None:
    s = plan_strategy(1.8, 0.3, DEFAULT_BEAM, EIGER_4M, space_group="P43212", used_dose_mgy=0.5)
    assert s.total_range_deg == pytest.approx(90.0)
    assert s.oscillation_deg == pytest.approx(0.15)
    assert s.n_frames == 600
    assert s.dose_mgy == pytest.approx(10.0)  # the target, well inside the 19 MGy budget
    assert s.budget_mgy == pytest.approx(19.0)
    # 1.8 A at the edge of a 4M at 12.7 keV (0.976 A): 2theta = 31.6 deg, 126 mm.
    assert s.detector_distance_mm == pytest.approx(
        77.55 / math.tan(2 * math.asin(0.976 / 3.6)), rel=0.01
    )
    assert s.transmission == pytest.approx(
        10.0 / (dose_rate_mgy_s(2e12, (20.0, 20.0), 12.7) * s.exposure_s * s.n_frames)
    )
    assert s.collectable and any("P43212" in r for r in s.rationale)


def test_range_follows_the_symmetry_and_oscillation_the_mosaicity() -> None:
    ranges = {
        g: plan_strategy(2.0, 0.2, DEFAULT_BEAM, EIGER_4M, space_group=g).total_range_deg
        for g in ("P1", "C2", "P212121", "P43212", "P3221", "P6122", "I213")
    }
    assert ranges == {
        "P1": 360.0,
        "C2": 180.0,
        "P212121": 100.0,
        "P43212": 90.0,
        "P3221": 90.0,
        "P6122": 80.0,
        "I213": 60.0,
    }
    assert plan_strategy(2.0, 0.2, DEFAULT_BEAM, EIGER_4M).total_range_deg == 180.0
    widths = [plan_strategy(2.0, m, DEFAULT_BEAM, EIGER_4M).oscillation_deg for m in (0, 0.4, 3)]
    assert widths == [0.05, 0.2, 0.5]


def test_weak_beam_raises_the_exposure_then_gives_what_it_can() -> None:
    weak = BeamState(full_flux_ph_s=1e9, beam_fwhm_um=(50.0, 50.0), energy_kev=12.7)
    s = plan_strategy(2.0, 0.2, weak, EIGER_4M, max_exposure_s=0.1)
    assert s.transmission == 1.0 and s.exposure_s == pytest.approx(0.1)
    assert s.dose_mgy < 10.0 and any("reaches only" in r for r in s.rationale)


def test_no_dose_left_means_not_collectable() -> None:
    s = plan_strategy(2.0, 0.2, DEFAULT_BEAM, EIGER_4M, used_dose_mgy=21.0)
    assert not s.collectable and s.transmission == 0.0 and s.dose_mgy == 0.0
    assert any("no dose left" in r for r in s.rationale)


def test_knowing_the_crystal_size_lowers_the_dose_rate_not_the_promise() -> None:
    small = plan_strategy(2.0, 0.2, DEFAULT_BEAM, EIGER_4M, crystal_size_um=(5.0, 5.0))
    large = plan_strategy(2.0, 0.2, DEFAULT_BEAM, EIGER_4M, crystal_size_um=(100.0, 100.0))
    assert small.dose_mgy == pytest.approx(10.0) and large.dose_mgy == pytest.approx(10.0)
    assert large.transmission > small.transmission  # the same dose needs more photons


def test_resolution_beyond_the_wavelength_limit_puts_the_detector_closest() -> None:
    beam = BeamState(full_flux_ph_s=2e12, beam_fwhm_um=(20.0, 20.0), energy_kev=6.0)
    s = plan_strategy(1.0, 0.2, beam, EIGER_4M)
    assert s.detector_distance_mm == EIGER_4M.min_distance_mm
    assert any("beyond the limit" in r for r in s.rationale)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution_a": 0.0}, "resolution must be > 0 Angstrom, got 0.0"),
        ({"resolution_a": float("nan")}, "resolution must be > 0"),
        ({"mosaicity_deg": -0.1}, "mosaicity must be >= 0 deg, got -0.1"),
        ({"mosaicity_deg": float("nan")}, "mosaicity must be >= 0"),
        ({"space_group": "P42"}, None),
        ({"space_group": "P2/m"}, "unknown space group 'P2/m'; expected one of the 65"),
        ({"used_dose_mgy": -1.0}, "dose already absorbed must be >= 0"),
        ({"target_dose_mgy": 0.0}, "target dose must be > 0 MGy"),
        ({"exposure_s": 0.0}, "exposures must be > 0 s"),
    ],
)
def test_bad_inputs_are_refused_with_the_value(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "resolution_a": 2.0,
        "mosaicity_deg": 0.2,
        "beam": DEFAULT_BEAM,
        "detector": EIGER_4M,
        **kwargs,
    }
    if message is None:
        plan_strategy(**args)  # type: ignore[arg-type]
        return
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        plan_strategy(**args)  # type: ignore[arg-type]


def test_bad_beam_or_detector_descriptions_are_refused() -> None:
    with pytest.raises(ValueError, match=r"beam size must be > 0 um, got \(0.0, 20.0\)"):
        BeamState(2e12, (0.0, 20.0), 12.7)
    with pytest.raises(ValueError, match="flux must be >= 0"):
        BeamState(-1.0, (20.0, 20.0), 12.7)
    with pytest.raises(ValueError, match="frame rate > 0 Hz"):
        DetectorLimits(max_frame_rate_hz=0.0, edge_radius_mm=50.0)
    with pytest.raises(ValueError, match="0 < min <= max"):
        DetectorLimits(100.0, 50.0, min_distance_mm=500.0, max_distance_mm=100.0)
    with pytest.raises(ValueError, match="outside the dose model's 5-30 keV"):
        plan_strategy(2.0, 0.2, BeamState(2e12, (20.0, 20.0), 40.0), EIGER_4M)
