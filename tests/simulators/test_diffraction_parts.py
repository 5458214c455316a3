"""The pieces under the frame physics: noise, illumination, lattice and intensity scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simulators.illumination import (
    BeamProfile,
    Body,
    beam_weighted_volume,
    crystal_body,
    mean_beam_weighted_volume,
)
from simulators.poisson import LEVEL_STEP, PoissonSampler
from simulators.reflections import (
    crystal_model,
    reciprocal_matrix,
    reflection_table,
    wilson_draws,
)
from simulators.world import Crystal

POSE = {
    "omega": 0.0,
    "kappa": 0.0,
    "phi": 0.0,
    "sampx": 0.0,
    "sampy": 0.0,
    "phiy": 0.0,
    "phiz": 0.0,
}


@pytest.mark.parametrize("mean", [0.004, 0.08, 0.9, 6.5, 40.0, 700.0])
def test_poisson_sampler_draws_poisson_counts(mean: float) -> None:
    rng = np.random.default_rng(4)
    draws = PoissonSampler(np.full(400_000, mean)).sample(rng)
    quantised = math.exp(round(math.log(mean) / LEVEL_STEP) * LEVEL_STEP)
    assert draws.dtype == np.uint32
    observed = np.bincount(draws)
    expected = stats.poisson.pmf(np.arange(observed.size), quantised) * draws.size
    enough = expected > 10
    chi2 = float(np.sum((observed[enough] - expected[enough]) ** 2 / expected[enough]))
    assert stats.chi2.sf(chi2, max(int(enough.sum()) - 1, 1)) > 1e-4


def test_poisson_sampler_keeps_the_map_shape_zeros_and_high_means() -> None:
    rng = np.random.default_rng(5)
    mean = np.zeros((50, 40))
    mean[10:20] = 3.0
    mean[30:] = 5000.0
    sampler = PoissonSampler(mean)
    draws = np.stack([sampler.sample(rng) for _ in range(20)])
    assert draws.shape == (20, 50, 40)
    assert not draws[:, :10].any()
    assert draws[:, 10:20].mean() == pytest.approx(3.0, rel=0.05)
    assert draws[:, 30:].mean() == pytest.approx(5000.0, rel=0.002)
    assert draws[:, 30:].std() == pytest.approx(math.sqrt(5000.0), rel=0.1)
    assert not np.array_equal(draws[0], draws[1])


def test_small_body_in_a_wide_beam_sees_the_peak_density() -> None:
    body = Body((0.0, 0.0, 0.0), (0.005, 0.005, 0.005), np.eye(3))
    beam = BeamProfile((0.2, 0.2))
    weighted = beam_weighted_volume(body, POSE, beam)
    assert weighted == pytest.approx(body.volume_mm3 * beam.peak_density_per_mm2, rel=0.02)


def test_large_body_in_a_narrow_beam_sees_its_thickness() -> None:
    """All the beam's photons cross the body: the integral is the path length through it."""
    sphere = Body((0.0, 0.0, 0.0), (0.1, 0.1, 0.1), np.eye(3))
    box = Body((0.0, 0.0, 0.0), (0.1, 0.1, 0.03), np.eye(3), shape="box")
    for beam in (BeamProfile((0.005, 0.005)), BeamProfile((0.005, 0.005), "tophat")):
        assert beam_weighted_volume(sphere, POSE, beam) == pytest.approx(0.2, rel=0.01)
        assert beam_weighted_volume(box, POSE, beam) == pytest.approx(0.06, rel=0.01)
        turned = {**POSE, "omega": 90.0}  # the box's long side now along the beam
        assert beam_weighted_volume(box, turned, beam) == pytest.approx(0.2, rel=0.01)


def test_body_out_of_the_beam_is_not_lit_and_motion_is_averaged() -> None:
    crystal = Crystal(position_mm=(0.2, 0.0, 0.0), size_um=(20.0, 20.0, 20.0))
    body = crystal_body(crystal)
    beam = BeamProfile((0.02, 0.02))
    assert beam_weighted_volume(body, POSE, beam) == 0.0
    centred = {**POSE, "phiy": -0.2}
    full = beam_weighted_volume(body, centred, beam)
    sweep = mean_beam_weighted_volume(body, {**centred, "phiy": -0.25}, centred, beam)
    assert 0 < sweep < full


def test_reciprocal_matrix_of_orthogonal_and_hexagonal_cells() -> None:
    b = reciprocal_matrix((50.0, 60.0, 70.0, 90.0, 90.0, 90.0))
    np.testing.assert_allclose(np.linalg.norm(b, axis=0), [1 / 50, 1 / 60, 1 / 70])
    hexagonal = reciprocal_matrix((93.0, 93.0, 130.0, 90.0, 90.0, 120.0))
    d_100 = 1.0 / np.linalg.norm(hexagonal @ [1, 0, 0])
    assert d_100 == pytest.approx(93.0 * math.sqrt(3) / 2)


def test_crystal_model_meets_its_resolution_limit_and_scales_with_volume() -> None:
    small = crystal_model(Crystal((0, 0, 0), (20.0, 20.0, 20.0), resolution_limit_a=2.5))
    large = crystal_model(Crystal((0, 0, 0), (100.0, 100.0, 100.0), resolution_limit_a=2.5))
    for model in (small, large):
        assert model.calibrated
        assert model.resolution_at_dose_a(1.0) == pytest.approx(2.5, rel=1e-3)
        assert model.resolution_at_dose_a(10.0) < 2.5 < model.resolution_at_dose_a(0.1)
    assert large.low_angle_photons == pytest.approx(125 * small.low_angle_photons)


def test_wilson_draws_are_exponential_friedel_equal_and_reproducible() -> None:
    rng = np.random.default_rng(0)
    hkl = rng.integers(-40, 40, size=(200_000, 3))
    draws = wilson_draws(7, hkl)
    assert draws.mean() == pytest.approx(1.0, rel=0.01)
    assert np.median(draws) == pytest.approx(math.log(2), rel=0.02)
    np.testing.assert_array_equal(draws, wilson_draws(7, -hkl))
    np.testing.assert_array_equal(draws[:10], wilson_draws(7, hkl[:10]))
    assert not np.allclose(draws[:10], wilson_draws(8, hkl[:10]))


def test_reflections_cross_the_ewald_sphere_where_the_table_says() -> None:
    crystal = Crystal((0, 0, 0), (50.0, 50.0, 50.0))
    wavelength = 0.98
    table = reflection_table(crystal, crystal_model(crystal), wavelength, 2.5)
    assert table.hkl.shape[0] > 10_000
    assert np.all(np.diff(table.cross_omega_deg) >= 0)
    pick = np.linspace(0, table.cross_omega_deg.size - 1, 50).astype(int)
    w = np.radians(table.cross_omega_deg[pick])
    r = table.r_sample[table.cross_reflection[pick]]
    r_z = np.sin(w) * r[:, 1] + np.cos(w) * r[:, 2]
    k = np.column_stack([r[:, 0], np.cos(w) * r[:, 1] - np.sin(w) * r[:, 2], r_z + 1 / wavelength])
    np.testing.assert_allclose(np.linalg.norm(k, axis=1), 1 / wavelength, rtol=1e-9)
