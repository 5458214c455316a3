"""Compiled analysis loops against the numpy they replace."""

from __future__ import annotations

import math

import numpy as np

from bes.analysis import mosaicity, spot_kernels


def test_rocking_chi2_is_the_numpy_chi2_for_every_trial_spread() -> None:
    rng = np.random.default_rng(2)
    p = mosaicity.MosaicityParams()
    n_chains, n_frames = 300, 5
    lorentz = rng.uniform(1.0, p.max_lorentz, n_chains)
    observed = np.abs(rng.normal(100.0, 60.0, (n_chains, n_frames)))
    observed[rng.random((n_chains, n_frames)) < 0.3] = 0.0
    error = rng.uniform(3.0, 30.0, (n_chains, n_frames))
    edges = np.arange(n_frames + 1) * 0.1
    low, high = (math.log(v / mosaicity.FWHM_PER_SIGMA) for v in p.range_deg)
    trial = np.exp(np.linspace(low, high, p.steps))
    expected = [mosaicity._chi2(lorentz, observed, error, edges, float(s), p) for s in trial]
    got = spot_kernels.rocking_chi2(
        lorentz,
        observed,
        error,
        edges,
        trial,
        np.linspace(0.0, 1.0, p.centre_steps),
        p.beam_rocking_sigma_deg,
        p.max_rocking_sigma_deg,
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_group_medians_are_numpys() -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(size=500)
    sizes = [0, 1, 2, 7, 10, 33]
    index = rng.integers(0, values.size, sum(sizes))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    medians = spot_kernels.group_medians(values, index, starts)
    for g, size in enumerate(sizes):
        if size == 0:
            assert np.isnan(medians[g])
        else:
            assert medians[g] == np.median(values[index[starts[g] : starts[g + 1]]])
