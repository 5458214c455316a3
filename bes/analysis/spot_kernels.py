"""Compiled inner loops of the spot finder (numba, GIL released so frames run in threads).

Background is the mean of each polar cell (a shell of radius around the beam centre cut
into azimuthal sectors) over unmasked pixels, taken twice: the second pass leaves out
pixels far above the first mean (spots). Polar cells follow the radially symmetric
background (air and solvent scatter, ice rings) that square tiles would smear. A pixel is strong
when a Poisson count of its cell's mean would reach it with probability < ``p_false``
(and it has at least ``min_count``).
Strong pixels are joined into 8-connected spots in the same scan (union-find over
two row buffers), so no full-size label image is ever made.
"""

from __future__ import annotations

from math import erfc as math_erfc
from math import hypot as math_hypot

import numba
import numpy as np

_SQRT_HALF = 0.7071067811865476


@numba.njit(cache=True, nogil=True)
def cell_background(frame, cells, n_cells, clip_sigma, gain):
    """Background mean of each polar cell (two passes, spots left out) and its pixel count.

    ``cells`` gives every pixel's cell (-1: masked). Every second row is sampled: cells
    keep tens of pixels and the scan costs half as much."""
    rows, cols = frame.shape
    total = np.zeros(n_cells)
    count = np.zeros(n_cells)
    for r in range(0, rows, 2):
        for c in range(cols):
            k = cells[r, c]
            if k >= 0:
                total[k] += frame[r, c]
                count[k] += 1
    limit = np.empty(n_cells)
    first = np.zeros(n_cells)
    for k in range(n_cells):
        if count[k] > 0:
            first[k] = total[k] / count[k]
        limit[k] = first[k] + clip_sigma * np.sqrt(gain * first[k]) + 1.0
    kept_total = np.zeros(n_cells)
    kept = np.zeros(n_cells)
    for r in range(0, rows, 2):
        for c in range(cols):
            k = cells[r, c]
            if k >= 0:
                v = frame[r, c]
                if v <= limit[k]:
                    kept_total[k] += v
                    kept[k] += 1
    mean = first.copy()
    for k in range(n_cells):
        if kept[k] > 0:
            mean[k] = kept_total[k] / kept[k]
    return mean, count


@numba.njit(cache=True, nogil=True)
def poisson_threshold(mean, gain, p_false, min_count):
    """Smallest count k with P(X >= k) < p_false for X ~ Poisson(mean / gain), in counts;
    a Gaussian tail (~2.6 sigma for p_false = 0.005) above a mean of 50 photons."""
    lam = mean / gain
    if lam > 50.0:
        z = np.sqrt(2.0) * _erfcinv(2.0 * p_false)
        return max(gain * (lam + z * np.sqrt(lam)), min_count - 0.5)
    pmf = np.exp(-lam)
    cdf = pmf
    k = 0
    while 1.0 - cdf >= p_false:
        k += 1
        pmf *= lam / k
        cdf += pmf
    # strong when value >= k + 1 photons, i.e. value > k (+0.5 keeps integer counts clear)
    return max(gain * (k + 0.5), min_count - 0.5)


@numba.njit(cache=True, nogil=True)
def _erfcinv(y):
    """Inverse complementary error function by Newton steps (enough for a threshold)."""
    x = 2.0
    for _ in range(60):
        err = math_erfc(x) - y
        x += err / (2.0 / np.sqrt(np.pi) * np.exp(-x * x))
    return x


@numba.njit(cache=True, nogil=True)
def _find_root(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True)
def _union(parent, a, b):
    ra = _find_root(parent, a)
    rb = _find_root(parent, b)
    if ra != rb:
        if ra < rb:
            parent[rb] = ra
        else:
            parent[ra] = rb


@numba.njit(cache=True, nogil=True)
def connected_spots(frame, cells, background, p_false, min_count, gain, saturation, max_strong):
    """Strong pixels joined into spots. Returns per-spot arrays
    (n_pixels, sum_counts, sum_background, x_centroid, y_centroid, peak, saturated)
    and the number of strong pixels (capped at ``max_strong``: then ``overflow`` is True)."""
    rows, cols = frame.shape
    n_cells = background.shape[0]
    threshold = np.empty(n_cells, np.int64)  # strong when count > threshold
    for k in range(n_cells):
        threshold[k] = np.int64(
            np.floor(poisson_threshold(background[k], gain, p_false, min_count))
        )
    px_r = np.empty(max_strong, np.int32)
    px_c = np.empty(max_strong, np.int32)
    px_v = np.empty(max_strong, np.float64)
    px_b = np.empty(max_strong, np.float64)
    parent = np.empty(max_strong, np.int64)
    prev_row = np.full(cols + 2, -1, np.int64)
    cur_row = np.full(cols + 2, -1, np.int64)
    prev_set = np.empty(cols, np.int64)
    cur_set = np.empty(cols, np.int64)
    n_prev = 0
    n_cur = 0
    n = 0
    overflow = False
    for r in range(rows):
        for c in range(cols):
            k = cells[r, c]
            if k < 0:
                continue
            v = frame[r, c]
            if v <= threshold[k]:
                continue
            if n >= max_strong:
                overflow = True
                break
            px_r[n] = r
            px_c[n] = c
            px_v[n] = v
            px_b[n] = background[k]
            parent[n] = n
            j = c + 1  # row buffers are shifted by one so c - 1 and c + 1 stay in range
            if cur_row[j - 1] >= 0:
                _union(parent, n, cur_row[j - 1])
            for dj in (-1, 0, 1):
                q = prev_row[j + dj]
                if q >= 0:
                    _union(parent, n, q)
            cur_row[j] = n
            cur_set[n_cur] = j
            n_cur += 1
            n += 1
        if overflow:
            break
        for i in range(n_prev):
            prev_row[prev_set[i]] = -1
        prev_row, cur_row = cur_row, prev_row
        prev_set, cur_set = cur_set, prev_set
        n_prev = n_cur
        n_cur = 0
    label = np.full(n, -1, np.int64)
    n_spots = 0
    for i in range(n):
        root = _find_root(parent, i)
        if label[root] < 0:
            label[root] = n_spots
            n_spots += 1
        label[i] = label[root]
    npix = np.zeros(n_spots, np.int64)
    total = np.zeros(n_spots)
    bg = np.zeros(n_spots)
    wx = np.zeros(n_spots)
    wy = np.zeros(n_spots)
    wsum = np.zeros(n_spots)
    peak = np.zeros(n_spots)
    saturated = np.zeros(n_spots, np.bool_)
    for i in range(n):
        s = label[i]
        npix[s] += 1
        total[s] += px_v[i]
        bg[s] += px_b[i]
        w = max(px_v[i] - px_b[i], 0.0)
        wx[s] += w * (px_c[i] + 0.5)
        wy[s] += w * (px_r[i] + 0.5)
        wsum[s] += w
        if px_v[i] > peak[s]:
            peak[s] = px_v[i]
        if px_v[i] >= saturation:
            saturated[s] = True
    for s in range(n_spots):
        if wsum[s] > 0:
            wx[s] /= wsum[s]
            wy[s] /= wsum[s]
    return npix, total, bg, wx, wy, peak, saturated, n, overflow


@numba.njit(cache=True, nogil=True)
def group_medians(values, index, starts):
    """Median of ``values[index[starts[g]:starts[g + 1]]]`` for every group g (NaN for an
    empty group; the mean of the two middle values for an even count, as numpy's)."""
    n_groups = starts.size - 1
    out = np.full(n_groups, np.nan)
    for g in range(n_groups):
        n = starts[g + 1] - starts[g]
        if n == 0:
            continue
        part = np.empty(n)
        for j in range(n):
            part[j] = values[index[starts[g] + j]]
        part.sort()
        half = n // 2
        out[g] = part[half] if n % 2 == 1 else (part[half - 1] + part[half]) / 2.0
    return out


@numba.njit(cache=True, nogil=True)
def rocking_chi2(lorentz, observed, error, edges, trial_sigma, fraction, beam_sigma, max_sigma):
    """For every trial mosaic spread (sigma): the total over chains of the best chi-square
    of one Gaussian rocking curve per chain (bes.analysis.mosaicity, whose ``_chi2`` does
    the same for one spread with numpy): the chain's width is hypot(Lorentz x spread, beam
    sigma) (capped), its centre is tried on ``fraction`` of the way from 3 sigma before the
    wedge to 3 sigma after it, its scale is fitted by least squares (>= 0)."""
    n_chains, n_frames = observed.shape
    n_centres = fraction.size
    span = edges[n_frames]
    out = np.zeros(trial_sigma.size)
    cdf = np.empty(n_frames + 1)
    weight = np.empty((n_chains, n_frames))
    for c in range(n_chains):
        for f in range(n_frames):
            weight[c, f] = 1.0 / (error[c, f] * error[c, f])
    for t in range(trial_sigma.size):
        total = 0.0
        for c in range(n_chains):
            sigma = min(math_hypot(lorentz[c] * trial_sigma[t], beam_sigma), max_sigma)
            best = np.inf
            for j in range(n_centres):
                centre = -3.0 * sigma + fraction[j] * (span + 6.0 * sigma)
                for e in range(n_frames + 1):
                    # ndtr(z) = erfc(-z / sqrt(2)) / 2
                    cdf[e] = 0.5 * math_erfc(-((edges[e] - centre) / sigma) * _SQRT_HALF)
                cross = 0.0
                norm = 0.0
                for f in range(n_frames):
                    profile = cdf[f + 1] - cdf[f]
                    cross += profile * observed[c, f] * weight[c, f]
                    norm += profile * profile * weight[c, f]
                scale = max(cross / max(norm, 1e-30), 0.0)
                residual = 0.0
                for f in range(n_frames):
                    d = observed[c, f] - scale * (cdf[f + 1] - cdf[f])
                    residual += d * d * weight[c, f]
                best = min(best, residual)
            total += best
        out[t] = total
    return out
