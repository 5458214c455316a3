"""The pieces under the frame physics: noise, illumination, lattice and intensity scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr

from simulators import render_kernels
from simulators.illumination import (
    BeamProfile,
    Body,
    beam_weighted_volume,
    crystal_body,
    mean_beam_weighted_volume,
)
from simulators.poisson import PoissonSampler
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


@pytest.mark.parametrize("mean", [0.004, 0.08, 0.9, 6.5, 40.0, 700.0, 5000.0])
def test_poisson_sampler_draws_poisson_counts(mean: float) -> None:
    rng = np.random.default_rng(4)
    draws = PoissonSampler(np.full(400_000, mean)).sample(rng)
    assert draws.dtype == np.uint32
    observed = np.bincount(draws)
    exact = float(np.float32(mean))  # the sampler draws exact Poisson of the float32 mean
    expected = stats.poisson.pmf(np.arange(observed.size), exact) * draws.size
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


def test_poisson_sampler_draws_each_pixel_of_a_varied_map_with_its_own_mean() -> None:
    """Levels, rests spread by the alias table and means beyond the tables: every pixel's
    draws average to its mean with Poisson variance, whatever its part of the map."""
    rng = np.random.default_rng(6)
    mean = rng.gamma(2.0, 1.0, 20_000) * np.repeat([0.001, 0.2, 3.0, 40.0], 5_000)
    mean[:10] = 0.0
    mean[-10:] = 900.0  # above the tables: drawn one by one
    sampler = PoissonSampler(mean)
    n = 400
    draws = np.stack([sampler.sample(rng) for _ in range(n)]).astype(float)
    assert not draws[:, :10].any()
    lam = mean.astype(np.float32).astype(float)
    z = (draws.mean(axis=0) - lam) / np.sqrt(np.maximum(lam, 1e-12) / n)
    assert abs(z[10:].mean()) < 0.05 and z[10:].std() == pytest.approx(1.0, abs=0.03)
    ratio = draws[:, 5_000:].var(axis=0).sum() / lam[5_000:].sum()
    assert ratio == pytest.approx(1.0, abs=0.02)
    # the same seed gives the same frame; another seed another one
    np.testing.assert_array_equal(sampler.sample_seeded(7), sampler.sample_seeded(7))
    assert not np.array_equal(sampler.sample_seeded(7), sampler.sample_seeded(8))


def test_lookup_fill_resolves_every_ambiguous_bucket_exactly() -> None:
    """A table of nothing but ambiguous buckets (more than the kernel can list) still draws
    exact Poisson counts from the CDF."""
    lam = 2.0
    k = np.arange(40)
    cdf = np.ascontiguousarray(stats.poisson.cdf(k, lam)[None, :])
    cdf[0, -1] = 1.0
    lut = np.full(4096, render_kernels.AMBIGUOUS, dtype=np.uint8)
    rows = np.zeros(200_003, dtype=np.uint16)
    out = np.empty(rows.size, dtype=np.uint32)
    render_kernels.lut_fill(rows, lut, cdf, np.uint64(99), 0, rows.size, out)
    observed = np.bincount(out)
    expected = stats.poisson.pmf(np.arange(observed.size), lam) * out.size
    enough = expected > 10
    chi2 = float(np.sum((observed[enough] - expected[enough]) ** 2 / expected[enough]))
    assert stats.chi2.sf(chi2, int(enough.sum()) - 1) > 1e-4


@pytest.mark.parametrize("photons", [3.0, 400.0])
def test_spots_drawn_photon_by_photon_or_pixel_by_pixel_have_the_same_profile(
    photons: float,
) -> None:
    """Faint spots are drawn photon by photon, bright ones pixel by pixel (with a faint halo
    drawn at once): both give the pixel-integrated Gaussian, truncated at 3.5 sigma."""
    n = 4000
    x = np.full(n, 20.3)
    y = np.full(n, 30.7)
    sigma = np.full(n, 1.1)
    counts = np.zeros((60, 50), dtype=np.uint32)
    mask = np.zeros(counts.shape, dtype=bool)
    render_kernels.add_spots(counts, mask, x, y, np.full(n, photons), sigma, 12, np.uint64(5))
    half = int(np.ceil(3.5 * 1.1))
    cols = np.arange(20 - half, 20 + half + 1)
    rows = np.arange(30 - half, 30 + half + 1)
    wx = ndtr((cols + 1 - 20.3) / 1.1) - ndtr((cols - 20.3) / 1.1)
    wy = ndtr((rows + 1 - 30.7) / 1.1) - ndtr((rows - 30.7) / 1.1)
    expected = n * photons * wy[:, None] * wx[None, :]
    observed = counts[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(float)
    assert counts.sum() == observed.sum()  # nothing outside the footprint
    big = expected > 50
    z = (observed[big] - expected[big]) / np.sqrt(expected[big])
    assert np.all(np.abs(z) < 5)
    assert observed.sum() == pytest.approx(expected.sum(), rel=5 / np.sqrt(expected.sum()))
