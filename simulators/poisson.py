"""Poisson noise for a fixed map of means, drawn afresh for every frame of a scan.

Exact Poisson draws of each pixel's mean (as float32), compiled
(``simulators.render_kernels``). A pixel's mean ``m`` is split into a level ``q`` (the
largest step of a 1 % log grid not above ``m``) and the rest ``m - q`` (under 1 % of it),
and the pixel gets the sum of a Poisson(q) and a Poisson(m - q) draw, which is a Poisson(m)
draw:

- Poisson(q): one 12-bit uniform per pixel and a lookup table per level that maps the
  uniform's bucket to the count (inverse CDF); the few buckets that straddle a CDF step
  take a fresh uniform and search the level's CDF, so the inversion is exact.
- Poisson(m - q) for all pixels at once: the total is drawn, N ~ Poisson(sum of the
  rests), and each of the N counts goes to a pixel drawn with probability rest / sum
  (Walker's alias table, built once per map). Independent Poisson pixels and "Poisson
  total, multinomial split" are the same distribution; N is ~0.5 % of the frame's counts.

Means below ``LOWEST_LEVEL`` are all "rest" (sparse maps cost only their counts); means
above ``HIGHEST_LEVEL`` (none on a background) are drawn one by one with PTRS. Draws
depend on the generator the sampler is given, never on the executor.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor

import numpy as np
from scipy import stats

from simulators.render_kernels import (
    alias_table,
    lookup_table,
    lut_fill,
    poisson_draw,
    ptrs_at,
    scatter_photons,
    split_levels,
)

LEVEL_STEP = math.log(1.01)
LOWEST_LEVEL = 0.01
HIGHEST_LEVEL = 300.0
BUCKET_BITS = 12
_BUCKETS = 1 << BUCKET_BITS
CHUNK_PIXELS = 5 << 18
"""Pixels drawn per task when an executor is given (a multiple of 5, see lut_fill)."""


class PoissonSampler:
    """Poisson draws of a fixed mean map (any shape); build once per scan, sample per frame."""

    def __init__(self, mean: np.ndarray) -> None:
        self.shape = np.shape(mean)
        lam32 = np.asarray(mean, dtype=np.float32).ravel()
        if lam32.size and not np.all(np.isfinite(lam32)):
            raise ValueError("Poisson means must be finite")
        lam = np.maximum(lam32.astype(np.float64), 0.0)
        self.size = lam.size
        self.max_mean = float(lam.max()) if lam.size else 0.0
        self.total_mean = float(lam.sum())

        rows, level_mean, rest = split_levels(lam, LOWEST_LEVEL, HIGHEST_LEVEL, LEVEL_STEP)
        high = lam > HIGHEST_LEVEL
        self._high_index = np.flatnonzero(high)
        self._high_mean = lam[high]
        if level_mean.size >= 2**16:
            raise ValueError("too many levels for the lookup table")
        self._rows = rows.astype(np.uint16)
        self._cdf, self._lut = _tables(level_mean)
        self.rest_mean = float(rest.sum())
        self._alias = alias_table(rest) if self.rest_mean > 0 else None

    def sample(self, rng: np.random.Generator, executor: Executor | None = None) -> np.ndarray:
        """One draw of every pixel, as uint32 in the mean map's shape (threads of
        ``executor`` share large maps; the result does not depend on it)."""
        return self.sample_seeded(int(rng.integers(0, 2**63)), executor)

    def sample_seeded(self, seed: int, executor: Executor | None = None) -> np.ndarray:
        """:meth:`sample` from a 64-bit seed instead of a generator (the same seed gives the
        same frame; seeds should look random, e.g. :func:`frame_seed`)."""
        n = self.size
        out = np.empty(n, dtype=np.uint32)
        word = np.uint64(seed % 2**64)
        starts = range(0, n, CHUNK_PIXELS)
        if executor is None or len(starts) <= 1:
            lut_fill(self._rows, self._lut, self._cdf, word, 0, n, out)
        else:

            def fill(start: int) -> None:
                stop = min(start + CHUNK_PIXELS, n)
                lut_fill(self._rows, self._lut, self._cdf, word, start, stop, out)

            list(executor.map(fill, starts))
        if self._alias is not None:
            count = poisson_draw(self.rest_mean, word ^ np.uint64(0x3C6EF372FE94F82B))
            scatter_photons(count, self._alias, word ^ np.uint64(0x5851F42D), out)
        if self._high_index.size:
            ptrs_at(out, self._high_index, self._high_mean, word ^ np.uint64(0x2545F491))
        return out.reshape(self.shape)


_MASK64 = (1 << 64) - 1


def frame_seed(base: int, index: int) -> int:
    """Seed of frame ``index`` of a series whose seeds come from ``base``: output ``index``
    of the splitmix64 generator started at ``base`` (well mixed: nearby frames do not share
    pixel streams)."""
    z = (base + (index + 1) * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _tables(level_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CDF rows (row 0: a mean of 0) and the flat lookup table of counts per (row, bucket),
    ``AMBIGUOUS`` where a bucket holds a step of the row's CDF."""
    lam = np.concatenate([[0.0], level_mean])
    k_max = int(stats.poisson.ppf(1.0 - 1e-15, lam.max())) + 2 if lam.max() > 0 else 2
    cdf = stats.poisson.cdf(np.arange(k_max)[None, :], lam[:, None])
    cdf[:, -1] = 1.0
    cdf = np.ascontiguousarray(cdf)
    return cdf, lookup_table(cdf, BUCKET_BITS)
