"""Compiled inner loops of the spot finder (numba, GIL released so frames run in threads).

Background is the mean of each ``block x block`` tile over unmasked pixels, taken twice:
the second pass leaves out pixels far above the first mean (spots). A pixel is strong
when a Poisson count of its tile's mean would reach it with probability < ``p_false``
(and it has at least ``min_count``).
Strong pixels are joined into 8-connected spots in the same scan (union-find over
two row buffers), so no full-size label image is ever made.
"""

from __future__ import annotations

from math import erfc as math_erfc

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def block_background(frame, mask, block, clip_sigma, gain):
    """Per-tile background mean (two passes, spots left out) and unmasked pixel count.

    Every second row is sampled: a 16 x 16 tile still gives 128 pixels, and the scan
    costs half as much."""
    rows, cols = frame.shape
    nby = (rows + block - 1) // block
    nbx = (cols + block - 1) // block
    total = np.zeros((nby, nbx))
    count = np.zeros((nby, nbx))
    for br in range(nby):
        r1 = min(rows, (br + 1) * block)
        for r in range(br * block, r1, 2):
            for bc in range(nbx):
                c1 = min(cols, (bc + 1) * block)
                s = 0.0
                n = 0
                for c in range(bc * block, c1):
                    m = mask[r, c]
                    s += frame[r, c] * m
                    n += m
                total[br, bc] += s
                count[br, bc] += n
    limit = np.zeros((nby, nbx))
    first = np.zeros((nby, nbx))
    for br in range(nby):
        for bc in range(nbx):
            if count[br, bc] > 0:
                first[br, bc] = total[br, bc] / count[br, bc]
            limit[br, bc] = first[br, bc] + clip_sigma * np.sqrt(gain * first[br, bc]) + 1.0
    kept_total = np.zeros((nby, nbx))
    kept = np.zeros((nby, nbx))
    for br in range(nby):
        r1 = min(rows, (br + 1) * block)
        for r in range(br * block, r1, 2):
            for bc in range(nbx):
                c1 = min(cols, (bc + 1) * block)
                lim = limit[br, bc]
                s = 0.0
                n = 0
                for c in range(bc * block, c1):
                    v = frame[r, c]
                    keep = mask[r, c] and v <= lim
                    s += v * keep
                    n += keep
                kept_total[br, bc] += s
                kept[br, bc] += n
    mean = first.copy()
    for br in range(nby):
        for bc in range(nbx):
            if kept[br, bc] > 0:
                mean[br, bc] = kept_total[br, bc] / kept[br, bc]
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
def connected_spots(
    frame, mask, background, block, p_false, min_count, gain, saturation, max_strong
):
    """Strong pixels joined into spots. Returns per-spot arrays
    (n_pixels, sum_counts, sum_background, x_centroid, y_centroid, peak, saturated)
    and the number of strong pixels (capped at ``max_strong``: then ``overflow`` is True)."""
    rows, cols = frame.shape
    nby, nbx = background.shape
    threshold = np.empty((nby, nbx), np.int64)  # strong when count > threshold
    for br in range(nby):
        for bc in range(nbx):
            t = poisson_threshold(background[br, bc], gain, p_false, min_count)
            threshold[br, bc] = np.int64(np.floor(t))
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
        br = r // block
        for bc in range(nbx):
            t = threshold[br, bc]
            c1 = min(cols, (bc + 1) * block)
            for c in range(bc * block, c1):
                v = frame[r, c]
                if v <= t or not mask[r, c]:
                    continue
                if n >= max_strong:
                    overflow = True
                    break
                px_r[n] = r
                px_c[n] = c
                px_v[n] = v
                px_b[n] = background[br, bc]
                parent[n] = n
                k = c + 1  # row buffers are shifted by one so c - 1 and c + 1 stay in range
                if cur_row[k - 1] >= 0:
                    _union(parent, n, cur_row[k - 1])
                for dk in (-1, 0, 1):
                    j = prev_row[k + dk]
                    if j >= 0:
                        _union(parent, n, j)
                cur_row[k] = n
                cur_set[n_cur] = k
                n_cur += 1
                n += 1
            if overflow:
                break
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
