"""Characterisation against simulated reference wedges: the resolution estimate meets the
simulator's own limit at the dose used, the mosaicity ranks crystals and meets the simulated
spread, and the flags tell ice, empty loops and weak crystals apart.

The protocol (shared by every case): a 20 um beam, two wedges of five 0.1 deg frames of
0.05 s at omega 0 and 90 on the small detector, the detector placed so the simulated limit
falls near the edge (as a workflow would after the mesh scan)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from bes.analysis.characterisation import (
    QUALITY_FLAGS,
    Characterisation,
    CharacterisationParams,
    ReferenceWedge,
    characterise,
)
from bes.analysis.diffraction_geometry import DiffractionGeometry
from bes.analysis.spotfinder import SpotFinder
from bes.analysis.strategy import BeamState, DetectorLimits, plan_strategy
from bes.hal import HC_KEV_A, Location
from simulators.detector_models import detector_models
from simulators.diffraction import STILL_WIDTH_DEG, Exposure, FrameGeometry, FrameRenderer
from simulators.geometry import centred_pose
from simulators.illumination import BeamProfile, crystal_body, mean_beam_weighted_volume
from simulators.reflections import (
    REFERENCE_EXPOSURE_S,
    REFERENCE_OSCILLATION_DEG,
    crystal_model,
    reference_photon_density_per_mm2_s,
)
from simulators.world import Crystal, Loop, Pin
from simulators.world_builder import PROTEINS, random_rotation

AT_MM = (0.05, 0.02, -0.01)
ENERGY_KEV = 12.7
BEAM_UM = 20.0
FULL_FLUX = 2e12
OSCILLATION_DEG = 0.1
EXPOSURE_S = 0.05
FRAMES_PER_WEDGE = 5
WEDGE_OMEGAS = (0.0, 90.0)
SMALL = detector_models()["small"]


@dataclass
class Case:
    crystal: Crystal | None
    transmission: float
    truth_a: float
    """The simulator's limit at the dose of the reference frames (fully recorded, I/sigma 1),
    from the lit fractions the renderer reports for them."""
    result: Characterisation
    lit_fractions: tuple[float, ...]
    first_dose_ratio: float
    """The dose ratio of the first frame as this test computes it (to place the detector)."""


def pose(omega: float) -> dict[str, float]:
    p = {"omega": omega, "kappa": 0.0, "phi": 0.0, "phiz": 0.0, "sampx": 0.0, "sampy": 0.0}
    p.update(centred_pose(AT_MM))
    return p


def dose_ratio(crystal: Crystal, flux: float) -> float:
    """Dose per degree of the reference frames / the simulator's reference dose per degree."""
    start, end = pose(0.0), pose(OSCILLATION_DEG)
    body = crystal_body(crystal)
    beam = BeamProfile((BEAM_UM * 1e-3, BEAM_UM * 1e-3))
    weighted = mean_beam_weighted_volume(body, start, end, beam)
    lit = flux * weighted / body.volume_mm3 / reference_photon_density_per_mm2_s()
    per_degree = REFERENCE_OSCILLATION_DEG / max(OSCILLATION_DEG, STILL_WIDTH_DEG)
    return lit * EXPOSURE_S / REFERENCE_EXPOSURE_S * per_degree


def frame_geometry(edge_resolution_a: float) -> FrameGeometry:
    wavelength = HC_KEV_A / ENERGY_KEV
    distance = SMALL.default_distance_mm(wavelength, edge_resolution_a)
    return FrameGeometry(
        shape=SMALL.shape,
        pixel_size_mm=SMALL.pixel_size_mm,
        distance_mm=distance,
        beam_centre_px=SMALL.beam_centre_px(),
        wavelength_a=wavelength,
        mask=SMALL.mask(),
        spot_sigma_px=SMALL.spot_sigma_px,
        count_cutoff=int(SMALL.max_count_rate_cps * EXPOSURE_S),
        layout="small/full",
    )


def characterise_pin(
    renderer: FrameRenderer,
    crystal: Crystal | None,
    transmission: float,
    edge_resolution_a: float,
    ice: float = 0.0,
) -> tuple[Characterisation, tuple[float, ...]]:
    geometry = frame_geometry(edge_resolution_a)
    analysis_geometry = DiffractionGeometry(
        geometry.shape,
        geometry.pixel_size_mm,
        geometry.distance_mm,
        geometry.beam_centre_px,
        geometry.wavelength_a,
    )
    finder = SpotFinder(analysis_geometry, mask=~geometry.mask, saturation=geometry.count_cutoff)
    loop = Loop(centre_mm=AT_MM, size_um=(300.0, 250.0), ice=ice)
    pin = Pin(Location(1, 1), loop=loop, crystals=[crystal] if crystal else [], name="test")
    wedges, lit = [], []
    for omega in WEDGE_OMEGAS:
        spots = []
        for i in range(FRAMES_PER_WEDGE):
            start = pose(omega + i * OSCILLATION_DEG)
            end = pose(omega + (i + 1) * OSCILLATION_DEG)
            exposure = Exposure(
                start, end, EXPOSURE_S, FULL_FLUX * transmission, (BEAM_UM, BEAM_UM)
            )
            frame = renderer.render(geometry, exposure, pin)
            lit.extend(frame.lit_fraction)
            spots.append(finder.find(frame.counts, keep_spots=True))
        wedges.append(ReferenceWedge(omega, OSCILLATION_DEG, tuple(spots)))
    return characterise(wedges, analysis_geometry), tuple(lit)


def random_crystal(rng: np.random.Generator, mosaicity_deg: float | None = None) -> Crystal:
    """A crystal as the world builder draws them (not weak), 15-80 um."""
    protein = list(PROTEINS.values())[int(rng.integers(len(PROTEINS)))]
    size = float(np.exp(rng.uniform(np.log(15.0), np.log(80.0))))
    mosaicity = float(np.exp(rng.uniform(np.log(0.05), np.log(0.8))))
    return Crystal(
        position_mm=AT_MM,
        size_um=(size, size * rng.uniform(0.5, 1.0), size * rng.uniform(0.3, 0.8)),
        orientation=random_rotation(rng),
        shape="box" if rng.random() < 0.5 else "ellipsoid",
        strength=float(np.exp(rng.normal(0.3, 0.4))),
        resolution_limit_a=float(rng.uniform(1.4, 3.2)),
        mosaicity_deg=mosaicity if mosaicity_deg is None else mosaicity_deg,
        cell=protein.cell,
        space_group=protein.space_group,
    )


def run_case(renderer: FrameRenderer, crystal: Crystal, transmission: float) -> Case:
    model = crystal_model(crystal)
    first = dose_ratio(crystal, FULL_FLUX * transmission)
    result, lit = characterise_pin(
        renderer, crystal, transmission, 0.85 * model.resolution_at_dose_a(first)
    )
    per_degree = REFERENCE_OSCILLATION_DEG / max(OSCILLATION_DEG, STILL_WIDTH_DEG)
    ratio = float(np.mean(lit)) * EXPOSURE_S / REFERENCE_EXPOSURE_S * per_degree
    return Case(crystal, transmission, model.resolution_at_dose_a(ratio), result, lit, first)


@pytest.fixture(scope="module")
def renderer() -> FrameRenderer:
    return FrameRenderer(seed=4, threads=1)


@pytest.fixture(scope="module")
def random_cases(renderer: FrameRenderer) -> list[Case]:
    rng = np.random.default_rng(8)
    return [
        run_case(renderer, random_crystal(rng), float(np.exp(rng.uniform(np.log(0.1), 0.0))))
        for _ in range(12)
    ]


def test_the_dose_the_test_computes_is_the_one_the_renderer_used(random_cases: list[Case]) -> None:
    for case in random_cases:
        per_degree = REFERENCE_OSCILLATION_DEG / OSCILLATION_DEG
        first = case.lit_fractions[0] * EXPOSURE_S / REFERENCE_EXPOSURE_S * per_degree
        assert first == pytest.approx(case.first_dose_ratio, rel=0.01)


def test_resolution_within_10_percent_of_the_simulated_limit(random_cases: list[Case]) -> None:
    confident = [
        c
        for c in random_cases
        if c.result.resolution_a is not None and "resolution_uncertain" not in c.result.flags
    ]
    ratios = np.array([c.result.resolution_a / c.truth_a for c in confident])  # type: ignore[operator]
    print(
        f"\nresolution / simulated limit over {len(ratios)} crystals: "
        f"median {np.median(ratios):.3f}, range {ratios.min():.3f}..{ratios.max():.3f}, "
        f"{np.mean(np.abs(ratios - 1) <= 0.1):.0%} within 10 %"
    )
    assert len(confident) >= 8
    assert np.mean(np.abs(ratios - 1) <= 0.10) >= 0.9
    assert np.all(np.abs(ratios - 1) <= 0.2)


def test_mosaicity_within_a_factor_1_5_of_the_simulated_spread(random_cases: list[Case]) -> None:
    measured = [c for c in random_cases if c.result.mosaicity_deg is not None]
    assert len(measured) >= 10
    ratios = np.array([c.result.mosaicity_deg / c.crystal.mosaicity_deg for c in measured])  # type: ignore[operator, union-attr]
    print(
        f"\nmosaicity / simulated over {len(ratios)} crystals: median {np.median(ratios):.2f}, "
        f"range {ratios.min():.2f}..{ratios.max():.2f}"
    )
    assert np.all((ratios > 1 / 1.5) & (ratios < 1.5))


def test_mosaicity_ranks_crystals(renderer: FrameRenderer) -> None:
    estimates = []
    for mosaicity in (0.08, 0.25, 0.7):
        rng = np.random.default_rng(3)  # the same crystal, but for its mosaic spread
        crystal = random_crystal(rng, mosaicity_deg=mosaicity)
        result, _ = characterise_pin(renderer, crystal, 0.3, 2.0)
        assert result.mosaicity_deg is not None
        estimates.append(result.mosaicity_deg)
    assert estimates[0] < estimates[1] < estimates[2]


def test_spot_statistics_describe_the_frames(random_cases: list[Case]) -> None:
    for case in random_cases:
        r = case.result
        assert r.n_frames == len(WEDGE_OMEGAS) * FRAMES_PER_WEDGE
        assert len(r.spots_per_frame) == r.n_frames
        assert r.n_spots_per_frame == pytest.approx(np.mean(r.spots_per_frame))
        assert 0.0 <= r.fraction_saturated <= 1.0
        assert set(r.flags) <= set(QUALITY_FLAGS)
        if r.n_spots_per_frame > 10:
            assert r.mean_isigma > 3.0 and r.diffracts and r.wilson_b_a2
            assert r.spot_resolution_a is not None and r.resolution_a is not None
            assert r.resolution_a < r.spot_resolution_a  # extrapolated beyond the last spots


def test_empty_loop_is_no_diffraction(renderer: FrameRenderer) -> None:
    result, _ = characterise_pin(renderer, None, 1.0, 2.0)
    assert "no_diffraction" in result.flags and not result.diffracts
    assert result.resolution_a is None and result.mosaicity_deg is None


def test_ice_rings_are_reported(renderer: FrameRenderer) -> None:
    crystal = random_crystal(np.random.default_rng(5))
    result, _ = characterise_pin(renderer, crystal, 0.3, 2.0, ice=1.0)
    assert "ice_rings" in result.flags
    assert 3.669 in result.ice_rings_a or 3.897 in result.ice_rings_a


def test_a_weak_crystal_gets_no_resolution_estimate(renderer: FrameRenderer) -> None:
    crystal = random_crystal(np.random.default_rng(6))
    crystal.strength = 0.02
    crystal.resolution_limit_a = 3.8
    result, _ = characterise_pin(renderer, crystal, 0.1, 3.0)
    assert result.resolution_a is None
    assert {"weak"} & set(result.flags) or "no_diffraction" in result.flags


def test_characterisation_feeds_a_strategy_within_budget(random_cases: list[Case]) -> None:
    detector = DetectorLimits(
        max_frame_rate_hz=1000.0, edge_radius_mm=51.2, min_distance_mm=50, max_distance_mm=800
    )
    beam = BeamState(FULL_FLUX, (BEAM_UM, BEAM_UM), ENERGY_KEV)
    for case in random_cases:
        r = case.result
        if r.resolution_a is None or case.crystal is None:
            continue
        strategy = plan_strategy(
            r.resolution_a,
            r.mosaicity_deg or 0.5,
            beam,
            detector,
            space_group=case.crystal.space_group,
            used_dose_mgy=0.9,
        )
        assert strategy.dose_mgy <= strategy.budget_mgy == pytest.approx(19.0)
        assert strategy.oscillation_deg == pytest.approx(
            min(0.5, max(0.05, round((r.mosaicity_deg or 0.5) / 2 / 0.05) * 0.05))
        )


def test_bad_inputs_are_refused() -> None:
    geometry = DiffractionGeometry((64, 64), 0.2, 100.0, (32.0, 32.0), 1.0)
    finder = SpotFinder(geometry)
    without = finder.find(np.zeros((64, 64), dtype=np.uint32))
    with pytest.raises(ValueError, match="keep_spots=True"):
        ReferenceWedge(0.0, 0.1, (without,))
    with_spots = finder.find(np.zeros((64, 64), dtype=np.uint32), keep_spots=True)
    with pytest.raises(ValueError, match="oscillation must be > 0 deg"):
        ReferenceWedge(0.0, 0.0, (with_spots,))
    with pytest.raises(ValueError, match="has no frames"):
        ReferenceWedge(90.0, 0.1, ())
    with pytest.raises(ValueError, match="no reference wedges"):
        characterise([], geometry)
    with pytest.raises(ValueError, match="shell_spots >= 3"):
        CharacterisationParams(shell_spots=1)
    empty = characterise([ReferenceWedge(0.0, 0.1, (with_spots,) * 3)], geometry)
    assert "no_diffraction" in empty.flags and math.isclose(empty.n_spots_per_frame, 0.0)
