"""Compiled inner loops of the frame renderer (numba, GIL released: frames are rendered
while the file writer and the live analysis run in other threads).

Random numbers are counter based: a draw is a function of the frame's 64-bit seed (taken
from the renderer's generator) and of the pixel or spot it belongs to, through the
splitmix64 finaliser (the output function of the splitmix64 generator, which passes
BigCrush). Draws are therefore independent of how a frame is cut into chunks or threads.
Poisson draws are exact: inversion of the CDF (sequential search) below a mean of 10, the
transformed rejection of Hoermann (PTRS, as numpy's ``Generator.poisson``) above.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SPOT_STREAM = np.uint64(0xD1B54A32D192ED03)
_PIXEL_STREAM = np.uint64(0x8CB92BA72F3D8DD7)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53
INVERSION_BELOW = 10.0
"""Poisson means below this are drawn by inversion, others by PTRS."""
MIN_MEAN = 1e-9
"""Means below this are drawn as zero (probability of a count < 1e-9)."""
_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INVERSION_STEPS = 80
"""Sequential search of a Poisson CDF of mean below INVERSION_BELOW stops here (the tail
beyond 80 has a probability below 1e-60)."""
_RECIPROCALS = 1.0 / np.maximum(np.arange(_INVERSION_STEPS + 1, dtype=np.float64), 1.0)
_HALO_MEAN = 0.05
"""Spot pixels of a lower mean are drawn together (see :func:`add_spots`)."""
AMBIGUOUS = np.uint8(0xFF)
"""Lookup-table entry of a bucket that holds a step of the CDF, or whose count does not fit
in the table's bytes (see :func:`lut_fill`)."""


@numba.njit(cache=True, inline="always")
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _unit(z: np.uint64) -> float:
    """A uniform in [0, 1) from 53 bits of a mixed word."""
    return float(z >> np.uint64(11)) * _TO_UNIT


@numba.njit(cache=True, inline="always")
def _next(state: np.uint64) -> tuple[float, np.uint64]:
    """The next uniform of a splitmix64 stream and the stream's new state."""
    state = state + _GOLDEN
    return _unit(_mix(state)), state


@numba.njit(cache=True)
def _ptrs(lam: float, state: np.uint64) -> tuple[int, np.uint64]:
    """Poisson draw for lam >= 10: Hoermann's transformed rejection with squeeze (PTRS)."""
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u, state = _next(state)
        u -= 0.5
        v, state = _next(state)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return int(k), state
        if k < 0 or (us < 0.013 and v > us):
            continue
        if v <= 0.0:
            continue
        if (math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)) <= (
            -lam + k * loglam - math.lgamma(k + 1.0)
        ):
            return int(k), state


@numba.njit(cache=True, inline="always")
def _invert(lam: float, p0: float, u: float) -> int:
    """Smallest k with u < CDF(k) for a Poisson of mean ``lam`` < INVERSION_BELOW
    (p0 = exp(-lam))."""
    k = 0
    p = p0
    cdf = p0
    while u >= cdf and k < _INVERSION_STEPS:
        k += 1
        p *= lam * _RECIPROCALS[k]
        cdf += p
    return k


@numba.njit(cache=True, inline="always")
def _poisson(lam: float, state: np.uint64) -> tuple[int, np.uint64]:
    if lam < MIN_MEAN:
        return 0, state
    if lam < INVERSION_BELOW:
        u, state = _next(state)
        if u < 1.0 - lam:  # below exp(-lam) <= CDF(0): no count, without the exponential
            return 0, state
        return _invert(lam, math.exp(-lam), u), state
    return _ptrs(lam, state)


@numba.njit(cache=True, nogil=True)
def lookup_table(cdf: np.ndarray, bucket_bits: int) -> np.ndarray:
    """Counts per (row, bucket) of the inverse CDF of each row of ``cdf`` (flat, row-major):
    the count every uniform of the bucket maps to, or ``AMBIGUOUS`` when a step of the CDF
    falls inside the bucket or the count is ``AMBIGUOUS`` or more. The inverse of u is the
    number of CDF values <= u."""
    n_rows, width = cdf.shape
    buckets = 1 << bucket_bits
    lut = np.empty(n_rows * buckets, dtype=np.uint8)
    for row in range(n_rows):
        below = 0  # CDF values <= the bucket's lower edge
        for b in range(buckets):
            low = b / buckets
            high = (b + 1) / buckets
            while below < width and cdf[row, below] <= low:
                below += 1
            under = below  # CDF values < the upper edge
            while under < width and cdf[row, under] < high:
                under += 1
            unique = under == below and below < AMBIGUOUS
            lut[row * buckets + b] = below if unique else AMBIGUOUS
    return lut


@numba.njit(cache=True, nogil=True)
def split_levels(
    lam: np.ndarray, lowest: float, highest: float, step: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each mean's level on the log grid of ``step`` (the largest grid value not above it;
    means outside [lowest, highest] get none). Returns every pixel's row (0: no level; rows
    number the levels in use from 1), the levels' means (row 1 first) and every pixel's
    rest (mean - level; 0 above ``highest``, the whole mean below ``lowest``)."""
    n = lam.size
    level = np.zeros(n, dtype=np.int64)
    has = np.zeros(n, dtype=np.bool_)
    lo = 1 << 62
    hi = -(1 << 62)
    for i in range(n):
        m = lam[i]
        if lowest <= m <= highest:
            k = math.floor(math.log(m) / step)
            while math.exp(k * step) > m:
                k -= 1
            level[i] = k
            has[i] = True
            lo = min(lo, k)
            hi = max(hi, k)
    rows = np.zeros(n, dtype=np.int64)
    rest = np.empty(n)
    if hi < lo:
        for i in range(n):
            rest[i] = lam[i] if lam[i] < lowest else 0.0
        return rows, np.zeros(0), rest
    row_of = np.zeros(hi - lo + 1, dtype=np.int64)
    for i in range(n):
        if has[i]:
            row_of[level[i] - lo] = 1
    n_rows = 0
    for j in range(row_of.size):
        if row_of[j]:
            n_rows += 1
            row_of[j] = n_rows
    means = np.empty(n_rows)
    for j in range(row_of.size):
        if row_of[j]:
            means[row_of[j] - 1] = math.exp((lo + j) * step)
    for i in range(n):
        m = lam[i]
        if has[i]:
            rows[i] = row_of[level[i] - lo]
            rest[i] = m - means[rows[i] - 1]
        else:
            rest[i] = m if m < lowest else 0.0
    return rows, means, rest


@numba.njit(cache=True)
def _resolve(cdf: np.ndarray, row: int, bucket: int, i: int, seed: np.uint64) -> int:
    """The count of pixel ``i`` whose bucket holds a CDF step: a fresh uniform places the
    draw inside the bucket and the row's CDF is searched."""
    fine = bucket + _unit(_mix((seed ^ _PIXEL_STREAM) + np.uint64(i + 1) * _GOLDEN))
    fine *= 1.0 / 4096.0
    width = cdf.shape[1]
    r = np.int64(row)
    k = 0
    while k < width - 1 and fine >= cdf[r, k]:
        k += 1
    return k


@numba.njit(cache=True, nogil=True)
def lut_fill(
    rows: np.ndarray,
    lut: np.ndarray,
    cdf: np.ndarray,
    seed: np.uint64,
    start: int,
    stop: int,
    out: np.ndarray,
) -> None:
    """``out[i]`` = a Poisson draw of the mean of row ``rows[i]`` of the tables, for
    ``start <= i < stop`` (``start`` a multiple of 5). Each pixel draws a 12-bit bucket of
    [0, 1) (five pixels share one 64-bit word); ``lut[rows[i] * 4096 + bucket]`` is the count
    when the bucket lies within one step of the row's CDF, else ``AMBIGUOUS``: then a fresh
    uniform places the draw inside the bucket and the row's CDF (``cdf[row]``) is searched.
    The draw is an exact inversion of the CDF."""
    full_groups = stop // 5
    pending = np.empty(max(64, (stop - start) // 16), dtype=np.int64)
    capacity = pending.size
    n_pending = 0
    for group in range(start // 5, full_groups):
        z = _mix(seed + np.uint64(group + 1) * _GOLDEN)
        i = group * 5
        for t in range(5):
            bucket = np.int64(z & np.uint64(4095))
            z >>= np.uint64(12)
            value = lut[(np.int64(rows[i + t]) << 12) | bucket]
            out[i + t] = value
            if value == AMBIGUOUS:
                pending[min(n_pending, capacity - 1)] = ((i + t) << 12) | bucket
                n_pending += 1
    for i in range(max(full_groups * 5, start), stop):  # the last, partial group
        shift = np.uint64(12 * (i - full_groups * 5))
        z = _mix(seed + np.uint64(full_groups + 1) * _GOLDEN)
        bucket = np.int64((z >> shift) & np.uint64(4095))
        value = lut[(np.int64(rows[i]) << 12) | bucket]
        out[i] = value if value != AMBIGUOUS else _resolve(cdf, rows[i], bucket, i, seed)
    if n_pending <= capacity:
        for j in range(n_pending):
            i = pending[j] >> 12
            out[i] = _resolve(cdf, rows[i], pending[j] & 4095, i, seed)
        return
    for i in range(start, full_groups * 5):  # too many to list: find them again
        z = _mix(seed + np.uint64(i // 5 + 1) * _GOLDEN)
        bucket = np.int64((z >> np.uint64(12 * (i % 5))) & np.uint64(4095))
        if lut[(np.int64(rows[i]) << 12) | bucket] == AMBIGUOUS:
            out[i] = _resolve(cdf, rows[i], bucket, i, seed)


@numba.njit(cache=True, nogil=True)
def ptrs_at(flat: np.ndarray, index: np.ndarray, mean: np.ndarray, seed: np.uint64) -> None:
    """``flat[index[j]] += Poisson(mean[j])`` for large means (PTRS)."""
    for j in range(index.size):
        k, _ = _poisson(mean[j], _mix(seed + np.uint64(j + 1) * _GOLDEN))
        flat[index[j]] += k


@numba.njit(cache=True, nogil=True)
def poisson_draw(lam: float, seed: np.uint64) -> int:
    """One Poisson draw of mean ``lam`` from the stream of ``seed``."""
    k, _ = _poisson(lam, _mix(seed))
    return k


@numba.njit(cache=True, nogil=True)
def alias_table(weight: np.ndarray) -> np.ndarray:
    """Walker's alias table (Vose's construction) of the distribution proportional to
    ``weight`` (>= 0, not all 0), one uint64 per bin: the high 32 bits are the threshold t
    (bin j is kept when a 32-bit uniform is below t, i.e. with probability t / 2**32), the
    low 32 bits the bin that replaces it otherwise (itself for a bin kept always)."""
    n = weight.size
    total = 0.0
    for j in range(n):
        total += weight[j]
    scaled = np.empty(n)
    for j in range(n):
        scaled[j] = weight[j] * n / total
    keep = np.ones(n)
    alias = np.arange(n)
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    n_small = 0
    n_large = 0
    for j in range(n):
        if scaled[j] < 1.0:
            small[n_small] = j
            n_small += 1
        else:
            large[n_large] = j
            n_large += 1
    while n_small > 0 and n_large > 0:
        n_small -= 1
        s = small[n_small]
        g = large[n_large - 1]
        keep[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            n_large -= 1
            small[n_small] = g
            n_small += 1
    # what is left is 1 up to rounding: kept always
    table = np.empty(n, dtype=np.uint64)
    for j in range(n):
        threshold = min(int(keep[j] * 4294967296.0), 4294967295)
        other = alias[j]
        if keep[j] >= 1.0:
            other = j
        table[j] = (np.uint64(threshold) << np.uint64(32)) | np.uint64(other)
    return table


@numba.njit(cache=True, inline="always")
def _alias_draw(table: np.ndarray, state: np.uint64) -> tuple[int, np.uint64]:
    """One bin drawn from the alias ``table`` (see :func:`alias_table`), and the stream's
    new state."""
    n = table.size
    u, state = _next(state)
    j = np.int64(min(int(u * n), n - 1))
    state = state + _GOLDEN
    v = _mix(state) >> np.uint64(32)
    entry = table[j]
    if v >= entry >> np.uint64(32):
        j = np.int64(entry & np.uint64(0xFFFFFFFF))
    return j, state


@numba.njit(cache=True, nogil=True)
def scatter_photons(n_photons: int, table: np.ndarray, seed: np.uint64, out: np.ndarray) -> None:
    """Add ``n_photons`` counts to ``out`` (flat), each in a bin drawn from the alias
    ``table`` (see :func:`alias_table`)."""
    state = seed
    for _ in range(n_photons):
        j, state = _alias_draw(table, state)
        out[j] += 1


@numba.njit(cache=True, nogil=True)
def add_at(flat: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """``flat[index[j]] += values[j]`` (indices distinct)."""
    for j in range(index.size):
        flat[index[j]] += values[j]


@numba.njit(cache=True, nogil=True)
def scatter_photons_at(
    n_photons: int, table: np.ndarray, index: np.ndarray, seed: np.uint64, flat: np.ndarray
) -> None:
    """:func:`scatter_photons` into the pixels ``index`` of ``flat`` (bin j is pixel
    ``index[j]``)."""
    state = seed
    for _ in range(n_photons):
        j, state = _alias_draw(table, state)
        flat[index[j]] += 1


@numba.njit(cache=True, inline="always")
def _record(touched: np.ndarray, n: int, index: int) -> int:
    """Append a flat index to ``touched``; past its end only the count grows (overflow)."""
    if n < touched.size:
        touched[n] = index
    return n + 1


@numba.njit(cache=True, nogil=True)
def add_spots(
    counts: np.ndarray,
    mask: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    photons: np.ndarray,
    sigma: np.ndarray,
    max_half: int,
    seed: np.uint64,
) -> tuple[np.ndarray, int]:
    """Add Poisson draws of pixel-integrated 2D Gaussians (centre ``x`` column, ``y`` row,
    ``photons`` expected in all, width ``sigma`` px) to ``counts``: each pixel within 3.5
    sigma of the spot's centre pixel (at most ``max_half`` px) gets Poisson(photons x the
    Gaussian's integral over the pixel); masked pixels get nothing. A spot with few photons
    for its footprint is drawn photon by photon instead (Poisson(photons) photons, each at a
    Gaussian offset from the centre, kept inside the footprint): the same distribution, at
    the cost of its photons rather than of its pixels. Returns the flat indices of the
    pixels that got counts (an array sized for every footprint) and how many there were
    (more than the array holds: not all recorded)."""
    n_spots = x.size
    half = np.empty(n_spots, dtype=np.int64)
    capacity = 0
    for s in range(n_spots):
        half[s] = min(math.ceil(3.5 * sigma[s]), max_half)
        capacity += (2 * half[s] + 1) ** 2
    touched = np.empty(capacity, dtype=np.int64)
    rows, cols = counts.shape
    wx = np.empty(2 * max_half + 1)
    wy = np.empty(2 * max_half + 1)
    n = 0
    for s in range(x.size):
        sig = sigma[s]
        h = half[s]
        width = 2 * h + 1
        c0 = math.floor(x[s]) - h
        r0 = math.floor(y[s]) - h
        total = photons[s]
        state = _mix(seed ^ _mix(np.uint64(s + 1) * _SPOT_STREAM))
        if 3.0 * total < width * width:
            k, state = _poisson(total, state)
            for _ in range(k):
                u, state = _next(state)
                v, state = _next(state)
                radius = sig * math.sqrt(-2.0 * math.log(1.0 - u))
                angle = 2.0 * math.pi * v
                c = math.floor(x[s] + radius * math.cos(angle))
                r = math.floor(y[s] + radius * math.sin(angle))
                if c < c0 or c >= c0 + width or r < r0 or r >= r0 + width:
                    continue
                if c < 0 or c >= cols or r < 0 or r >= rows or mask[r, c]:
                    continue
                counts[r, c] += 1
                n = _record(touched, n, r * cols + c)
            continue
        inv = _SQRT_HALF / sig
        low_x = math.erf((c0 - x[s]) * inv)
        low_y = math.erf((r0 - y[s]) * inv)
        for j in range(width):
            high_x = math.erf((c0 + j + 1 - x[s]) * inv)
            high_y = math.erf((r0 + j + 1 - y[s]) * inv)
            wx[j] = 0.5 * (high_x - low_x)
            wy[j] = 0.5 * (high_y - low_y)
            low_x = high_x
            low_y = high_y
        # Pixels of mean >= _HALO_MEAN get their own draw; the faint rest of the footprint
        # gets Poisson(sum of their means) counts, each in one of them with probability
        # mean / sum (the same distribution, without a draw per faint pixel).
        halo = 0.0
        for a in range(width):
            r = r0 + a
            if r < 0 or r >= rows:
                continue
            row_mean = total * wy[a]
            if row_mean <= 0.0:
                continue
            for b in range(width):
                c = c0 + b
                if c < 0 or c >= cols or mask[r, c]:
                    continue
                mean = row_mean * wx[b]
                if mean < _HALO_MEAN:
                    halo += mean
                    continue
                k, state = _poisson(mean, state)
                if k > 0:
                    counts[r, c] += k
                    n = _record(touched, n, r * cols + c)
        if halo <= 0.0:
            continue
        k, state = _poisson(halo, state)
        for _ in range(k):
            u, state = _next(state)
            target = u * halo
            last_r = -1
            last_c = -1
            for a in range(width):
                r = r0 + a
                if r < 0 or r >= rows:
                    continue
                for b in range(width):
                    c = c0 + b
                    if c < 0 or c >= cols or mask[r, c]:
                        continue
                    mean = total * wy[a] * wx[b]
                    if mean >= _HALO_MEAN or mean <= 0.0:
                        continue
                    last_r, last_c = r, c
                    target -= mean
                    if target < 0.0:
                        break
                if target < 0.0:
                    break
            if last_r >= 0:  # (rounding may leave target a hair above 0: the last pixel)
                counts[last_r, last_c] += 1
                n = _record(touched, n, last_r * cols + last_c)
    return touched, n


@numba.njit(cache=True, nogil=True)
def clip_at(flat: np.ndarray, index: np.ndarray, cutoff: np.uint32) -> int:
    """Clip ``flat[index]`` at ``cutoff``; returns how many distinct pixels reached it."""
    over = np.empty(index.size, dtype=np.int64)
    n = 0
    for j in range(index.size):
        i = index[j]
        if flat[i] >= cutoff:
            flat[i] = cutoff
            over[n] = i
            n += 1
    if n == 0:
        return 0
    return np.unique(over[:n]).size


@numba.njit(cache=True, nogil=True)
def select_crossings(
    bin_starts: np.ndarray,
    class_margin: np.ndarray,
    omega: np.ndarray,
    sigma: np.ndarray,
    reflection: np.ndarray,
    full_photons: np.ndarray,
    log_photons: np.ndarray,
    low: float,
    high: float,
    scale: float,
    min_photons: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Passes through the Ewald sphere recorded on a frame whose omega window is [low, high]
    (``log_photons``: the log of ``full_photons``).

    Passes come in classes of rocking width, each cut into omega bins over a turn
    (``bin_starts``, see :func:`classify_crossings`); the passes of class c in the bins
    within ``class_margin[c]`` of the window (on any turn) are candidates. A candidate is
    kept when the photons it gives, ``full_photons`` x ``scale`` x the share of its Gaussian
    rocking curve (``sigma``) inside the window, reach ``min_photons``. Returns the kept
    passes' reflection index, photons and crossing omega moved to the turn nearest the
    window."""
    n_classes, width = bin_starts.shape
    n_bins = width - 1
    bin_width = 360.0 / n_bins
    first_bin = np.empty(n_classes, dtype=np.int64)
    n_bins_in = np.empty(n_classes, dtype=np.int64)
    n_max = 0
    for c in range(n_classes):
        b0 = math.floor((low - class_margin[c]) / bin_width)
        b1 = math.floor((high + class_margin[c]) / bin_width)
        first_bin[c] = b0
        n_bins_in[c] = min(b1 - b0 + 1, n_bins)
        if n_bins_in[c] == n_bins:
            n_max += bin_starts[c, n_bins] - bin_starts[c, 0]
        else:
            for b in range(b0, b0 + n_bins_in[c]):
                bb = b % n_bins
                n_max += bin_starts[c, bb + 1] - bin_starts[c, bb]
    ref_out = np.empty(n_max, dtype=np.int64)
    photons_out = np.empty(n_max)
    omega_out = np.empty(n_max)
    centre = 0.5 * (low + high)
    # A pass a distance d outside the window has a share below exp(-d^2 / 2 sigma^2) / 2 of
    # its rocking curve in it: when even that gives fewer than min_photons, skip the erfs.
    log_ratio = math.log(scale / (2.0 * min_photons)) if scale > 0 else -math.inf
    n = 0
    for c in range(n_classes):
        for b in range(first_bin[c], first_bin[c] + n_bins_in[c]):
            bb = b % n_bins
            for i in range(bin_starts[c, bb], bin_starts[c, bb + 1]):
                full = full_photons[i] * scale
                if full < min_photons:
                    continue
                w = omega[i]
                w += 360.0 * round((centre - w) / 360.0)
                d = low - w if w < low else (w - high if w > high else 0.0)
                if d > 0.0:
                    t = d / sigma[i]
                    if 0.5 * t * t > log_photons[i] + log_ratio:
                        continue
                inv = _SQRT_HALF / sigma[i]
                fraction = 0.5 * (math.erf((high - w) * inv) - math.erf((low - w) * inv))
                value = full * fraction
                if value >= min_photons:
                    ref_out[n] = reflection[i]
                    photons_out[n] = value
                    omega_out[n] = w
                    n += 1
    return ref_out[:n], photons_out[:n], omega_out[:n]


@numba.njit(cache=True, nogil=True)
def spot_positions(
    reflection: np.ndarray,
    omega_deg: np.ndarray,
    photons: np.ndarray,
    r_sample: np.ndarray,
    s2: np.ndarray,
    omega_start_deg: float,
    omega_end_deg: float,
    origin: np.ndarray,
    wavelength_a: float,
    distance_mm: float,
    pixel_size_mm: float,
    beam_x_px: float,
    beam_y_px: float,
    rows: int,
    cols: int,
    spot_sigma_px: float,
    mosaic_sigma_rad: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where the diffracted rays of the recorded passes meet the detector: the reciprocal
    vector (sample frame) turned to the crossing's omega, clipped to the frame's range
    (a pass outside it is drawn at the nearest edge), k = r + s0 from the crystal's
    ``origin`` (lab) to the detector plane. Passes going backwards or missing the frame
    (with a 3 px margin) are dropped. Returns x (column), y (row), photons, spot width (px:
    the detector's spot, widened by the mosaic fan ~ mosaic x 2 sin theta) and d."""
    n = reflection.size
    x_out = np.empty(n)
    y_out = np.empty(n)
    photons_out = np.empty(n)
    sigma_out = np.empty(n)
    d_out = np.empty(n)
    inv_lambda = 1.0 / wavelength_a
    m = 0
    for j in range(n):
        w = math.radians(min(max(omega_deg[j], omega_start_deg), omega_end_deg))
        cos_w = math.cos(w)
        sin_w = math.sin(w)
        ref = reflection[j]
        r0 = r_sample[ref, 0]
        r1 = r_sample[ref, 1]
        r2 = r_sample[ref, 2]
        k0 = r0
        k1 = cos_w * r1 - sin_w * r2
        k2 = sin_w * r1 + cos_w * r2 + inv_lambda
        if not k2 > 1e-9:
            continue
        path = (distance_mm - origin[2]) / k2
        x = beam_x_px + (origin[0] + k0 * path) / pixel_size_mm
        y = beam_y_px - (origin[1] + k1 * path) / pixel_size_mm
        if not (x > -3.0 and x < cols + 3.0 and y > -3.0 and y < rows + 3.0):
            continue
        s = math.sqrt(s2[ref])
        sin_theta = wavelength_a * s / 2.0
        spread = distance_mm / pixel_size_mm * mosaic_sigma_rad * 2.0 * sin_theta
        x_out[m] = x
        y_out[m] = y
        photons_out[m] = photons[j]
        sigma_out[m] = math.hypot(spot_sigma_px, spread)
        d_out[m] = 1.0 / s
        m += 1
    return x_out[:m], y_out[:m], photons_out[:m], sigma_out[:m], d_out[:m]


@numba.njit(cache=True, nogil=True)
def beam_weighted_volume(
    centre: np.ndarray,
    axes: np.ndarray,
    half: np.ndarray,
    box: bool,
    bounding_radius: float,
    fwhm_x: float,
    fwhm_y: float,
    gaussian: bool,
    phiy: float,
    phiz: float,
    sampx: float,
    sampy: float,
    omega_deg: float,
    min_samples: int,
) -> float:
    """Integral of the beam's areal density (unit integral) over a body (ellipsoid or box
    with ``half`` axes along the columns of ``axes``, centred at ``centre``, sample frame) at
    one pose: a grid of beam rays (lab +z) over where beam and body overlap, each weighted
    by the beam density and by its chord through the body (see simulators.illumination)."""
    omega = math.radians(omega_deg)
    cos_w = math.cos(omega)
    sin_w = math.sin(omega)
    # the body's centre in the lab
    cx = centre[0] + phiy
    cy = cos_w * (centre[1] + sampx) - sin_w * (centre[2] + sampy) + phiz
    if gaussian:
        beam_x, beam_y = 2.0 * fwhm_x, 2.0 * fwhm_y
        peak = 4.0 * math.log(2.0) / (math.pi * fwhm_x * fwhm_y)
        per_fwhm = 8.0
    else:
        beam_x, beam_y = 0.5 * fwhm_x, 0.5 * fwhm_y
        peak = 4.0 / (math.pi * fwhm_x * fwhm_y)
        per_fwhm = 32.0
    x_lo = max(-beam_x, cx - bounding_radius)
    x_hi = min(beam_x, cx + bounding_radius)
    y_lo = max(-beam_y, cy - bounding_radius)
    y_hi = min(beam_y, cy + bounding_radius)
    if x_lo >= x_hi or y_lo >= y_hi:
        return 0.0
    # Fine enough for the beam's features (a top-hat's sharp edge needs more) and for the
    # body's thinnest dimension.
    step = min(min(fwhm_x, fwhm_y) / per_fwhm, min(half[0], min(half[1], half[2])) / 2.0)
    nx = min(max(math.ceil((x_hi - x_lo) / step), min_samples), 128)
    ny = min(max(math.ceil((y_hi - y_lo) / step), min_samples), 128)
    hx = (x_hi - x_lo) / nx
    hy = (y_hi - y_lo) / ny
    # the ray direction (lab +z) in the sample frame, then in the body's frame
    e = np.empty(3)
    inv_e = np.empty(3)
    for j in range(3):
        e[j] = sin_w * axes[1, j] + cos_w * axes[2, j]
        inv_e[j] = 1.0 / e[j] if abs(e[j]) >= 1e-12 else 0.0
    four_ln2 = 4.0 * math.log(2.0)
    # a Gaussian's density is a product of a column and a row factor
    wx = np.empty(nx)
    for ix in range(nx):
        xl = x_lo + hx * (ix + 0.5)
        wx[ix] = math.exp(-four_ln2 * (xl / fwhm_x) ** 2)
    total = 0.0
    for iy in range(ny):
        yl = y_lo + hy * (iy + 0.5)
        wy = peak * math.exp(-four_ln2 * (yl / fwhm_y) ** 2)
        # lab (x, yl, 0) -> sample frame -> relative to the body's centre: s0 depends on x
        s1 = cos_w * (yl - phiz) - sampx - centre[1]
        s2 = -sin_w * (yl - phiz) - sampy - centre[2]
        for ix in range(nx):
            xl = x_lo + hx * (ix + 0.5)
            if gaussian:
                weight = wy * wx[ix]
            else:
                u = (xl / fwhm_x) ** 2 + (yl / fwhm_y) ** 2
                weight = peak if u <= 0.25 else 0.0
            if weight == 0.0:
                continue
            s0 = xl - phiy - centre[0]
            if box:
                t_low = -math.inf
                t_high = math.inf
                for j in range(3):
                    o = s0 * axes[0, j] + s1 * axes[1, j] + s2 * axes[2, j]
                    if abs(e[j]) < 1e-12:
                        if abs(o) > half[j]:
                            t_high = -math.inf
                        continue
                    t1 = (-half[j] - o) * inv_e[j]
                    t2 = (half[j] - o) * inv_e[j]
                    t_low = max(t_low, min(t1, t2))
                    t_high = min(t_high, max(t1, t2))
                chord = max(t_high - t_low, 0.0)
            else:
                qa = 0.0
                qb = 0.0
                qc = -1.0
                for j in range(3):
                    o = (s0 * axes[0, j] + s1 * axes[1, j] + s2 * axes[2, j]) / half[j]
                    d = e[j] / half[j]
                    qa += d * d
                    qb += 2.0 * o * d
                    qc += o * o
                disc = qb * qb - 4.0 * qa * qc
                chord = math.sqrt(disc) / qa if disc > 0.0 else 0.0
            total += weight * chord
    return total * hx * hy


# --- reflection tables ---------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _s2(b_matrix: np.ndarray, h: int, k: int, ll: int) -> float:
    """|B hkl|^2 (1/d^2)."""
    x = b_matrix[0, 0] * h + b_matrix[0, 1] * k + b_matrix[0, 2] * ll
    y = b_matrix[1, 0] * h + b_matrix[1, 1] * k + b_matrix[1, 2] * ll
    z = b_matrix[2, 0] * h + b_matrix[2, 1] * k + b_matrix[2, 2] * ll
    return x * x + y * y + z * z


@numba.njit(cache=True, nogil=True)
def lattice(
    b_matrix: np.ndarray,
    ub_matrix: np.ndarray,
    limits: np.ndarray,
    s_max: float,
    seed_word: np.uint64,
    low_angle_photons: float,
    b_factor: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every hkl within the box ``limits`` with 0 < |B hkl| <= s_max (h, then k, then l
    ascending), its reciprocal vector U B hkl in the sample frame, 1/d^2 and photons: the
    model's mean A exp(-B s^2 / 2) x an exponential(1) Wilson draw hashed from the crystal's
    seed and the Friedel-merged hkl (``simulators.reflections.wilson_draws``)."""
    s2_max = s_max * s_max
    n = 0
    for h in range(-limits[0], limits[0] + 1):
        for k in range(-limits[1], limits[1] + 1):
            for ll in range(-limits[2], limits[2] + 1):
                s2 = _s2(b_matrix, h, k, ll)
                if 0.0 < s2 <= s2_max:
                    n += 1
    hkl = np.empty((n, 3), dtype=np.int32)
    r = np.empty((n, 3))
    s2_out = np.empty(n)
    photons = np.empty(n)
    i = 0
    for h in range(-limits[0], limits[0] + 1):
        for k in range(-limits[1], limits[1] + 1):
            for ll in range(-limits[2], limits[2] + 1):
                s2 = _s2(b_matrix, h, k, ll)
                if not 0.0 < s2 <= s2_max:
                    continue
                hkl[i, 0] = h
                hkl[i, 1] = k
                hkl[i, 2] = ll
                for j in range(3):
                    r[i, j] = ub_matrix[j, 0] * h + ub_matrix[j, 1] * k + ub_matrix[j, 2] * ll
                s2r = r[i, 0] * r[i, 0] + r[i, 1] * r[i, 1] + r[i, 2] * r[i, 2]
                s2_out[i] = s2r
                # Friedel mates share a draw: the first non-zero index made positive
                sign = 1
                if h < 0 or (h == 0 and (k < 0 or (k == 0 and ll < 0))):
                    sign = -1
                key = (
                    (np.uint64(sign * h + 1024) << np.uint64(22))
                    | (np.uint64(sign * k + 1024) << np.uint64(11))
                    | np.uint64(sign * ll + 1024)
                )
                word = _mix((key ^ seed_word) + _GOLDEN)
                u = (float(word >> np.uint64(11)) + 0.5) * _TO_UNIT
                photons[i] = low_angle_photons * math.exp(-0.5 * b_factor * s2r) * -math.log(u)
                i += 1
    return hkl, r, s2_out, photons


@numba.njit(cache=True, nogil=True)
def ewald_crossings(
    r: np.ndarray,
    s2: np.ndarray,
    wavelength_a: float,
    mosaic_sigma_deg: float,
    beam_sigma_deg: float,
    max_sigma_deg: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two omegas in [0, 360) where each reflection lies on the Ewald sphere under
    rotation about lab x (r_z(w) = r_y0 sin w + r_z0 cos w = -lambda s^2 / 2), with the rocking
    width of each pass (mosaic sigma x the Lorentz factor |r| cos(theta) / |r_y|, beam
    divergence added in quadrature, capped) and the reflection's index. Reflections that
    never cross (near the rotation axis) have none."""
    n = s2.size
    count = 0
    for i in range(n):
        rho = math.hypot(r[i, 1], r[i, 2])
        if rho > 0.0 and abs(wavelength_a * s2[i] / (2.0 * rho)) < 1.0:
            count += 1
    omega = np.empty(2 * count)
    sigma = np.empty(2 * count)
    reflection = np.empty(2 * count, dtype=np.int64)
    j = 0
    for i in range(n):
        rho = math.hypot(r[i, 1], r[i, 2])
        if not rho > 0.0:
            continue
        q = -wavelength_a * s2[i] / (2.0 * rho)
        if not abs(q) < 1.0:
            continue
        alpha = math.atan2(r[i, 1], r[i, 2])
        delta = math.acos(q)
        half_r = wavelength_a * s2[i] / 2.0
        ry_abs = math.sqrt(max(rho * rho - half_r * half_r, 1e-30))
        s = math.sqrt(s2[i])
        sin_theta = wavelength_a * s / 2.0
        lorentz = s * math.sqrt(1.0 - sin_theta * sin_theta) / ry_abs
        width = min(math.hypot(mosaic_sigma_deg * lorentz, beam_sigma_deg), max_sigma_deg)
        for w in (alpha + delta, alpha - delta):
            omega[j] = math.degrees(w) % 360.0
            sigma[j] = width
            reflection[j] = i
            j += 1
    return omega, sigma, reflection


@numba.njit(cache=True, nogil=True)
def classify_crossings(
    omega: np.ndarray,
    sigma: np.ndarray,
    reflection: np.ndarray,
    photons: np.ndarray,
    class_factor: float,
    n_bins: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Passes grouped by rocking width (class c: sigma within class_factor^c and
    class_factor^(c+1) of the narrowest) and, in each class, by omega bin (``n_bins`` over a
    turn), by a counting sort. Returns the bins' starts (classes x (n_bins + 1), absolute
    indices), each class's widest sigma, and omega, sigma, reflection and photons of the
    passes in that order."""
    n = omega.size
    lowest = math.inf
    for i in range(n):
        lowest = min(lowest, sigma[i])
    log_factor = math.log(class_factor)
    width_class = np.empty(n, dtype=np.int64)
    n_classes = 1
    for i in range(n):
        c = math.floor(math.log(sigma[i] / lowest) / log_factor + 1e-9)
        width_class[i] = c
        n_classes = max(n_classes, c + 1)
    bin_width = 360.0 / n_bins
    key = np.empty(n, dtype=np.int64)
    counts = np.zeros(n_classes * n_bins + 1, dtype=np.int64)
    max_sigma = np.zeros(n_classes)
    for i in range(n):
        b = min(int(omega[i] / bin_width), n_bins - 1)
        key[i] = width_class[i] * n_bins + b
        counts[key[i] + 1] += 1
        max_sigma[width_class[i]] = max(max_sigma[width_class[i]], sigma[i])
    for k in range(1, counts.size):
        counts[k] += counts[k - 1]
    starts = np.empty((n_classes, n_bins + 1), dtype=np.int64)
    for c in range(n_classes):
        for b in range(n_bins):
            starts[c, b] = counts[c * n_bins + b]
        starts[c, n_bins] = counts[(c + 1) * n_bins]
    fill = counts[:-1].copy()
    omega_out = np.empty(n)
    sigma_out = np.empty(n)
    reflection_out = np.empty(n, dtype=np.int64)
    photons_out = np.empty(n)
    for i in range(n):
        at = fill[key[i]]
        fill[key[i]] += 1
        omega_out[at] = omega[i]
        sigma_out[at] = sigma[i]
        reflection_out[at] = reflection[i]
        photons_out[at] = photons[reflection[i]]
    return starts, max_sigma, omega_out, sigma_out, reflection_out, photons_out
