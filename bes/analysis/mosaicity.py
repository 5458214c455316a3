"""Mosaic spread from the rocking curves of reflections seen on consecutive frames.

A reflection crosses the Ewald sphere with a Gaussian rocking curve of width
``sigma_omega = hypot(Lorentz x sigma_mosaic, sigma_beam)``; its spots on consecutive
frames of a wedge sit at the same detector position with intensities
``A x (Phi((end_k - omega_0) / sigma) - Phi((start_k - omega_0) / sigma))``. Spots are linked
frame to frame (mutual nearest neighbours within ``link_tolerance_px``) into chains; the
Lorentz factor of a spot at detector azimuth phi from the rotation axis is ``1 / |sin phi|``.
One mosaic spread is fitted to all chains: for each trial spread, every chain's centre
``omega_0`` (on a grid, possibly outside the wedge) and scale ``A`` (least squares) are fitted,
undetected neighbouring frames count as zero within the detection level, and the spread with
the smallest total chi-square wins (refined by a parabola in log spread). See docs/analysis.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import ndtr

from bes.analysis import spot_kernels
from bes.analysis.diffraction_geometry import DiffractionGeometry

if TYPE_CHECKING:
    from bes.analysis.characterisation import ReferenceWedge

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class MosaicityParams:
    link_tolerance_px: float = 2.0
    max_lorentz: float = 3.0
    """Spots nearer the rotation axis (wider rocking curves) are left out."""
    min_chain_isigma: float = 5.0
    """A chain counts when its strongest spot has at least this I/sigma."""
    min_chains: int = 10
    beam_rocking_sigma_deg: float = 0.01
    """Divergence and bandwidth, added to the mosaic spread in quadrature (sigma)."""
    range_deg: tuple[float, float] = (0.005, 3.0)
    """FWHM search range."""
    steps: int = 48
    centre_steps: int = 48
    max_rocking_sigma_deg: float = 5.0
    max_chains: int = 500
    """Only the strongest chains (by peak I/sigma) of all wedges enter the fit: one spread is
    well fixed by a few hundred, and the fit's cost grows with every chain (a strong crystal
    gives thousands)."""


@dataclass(frozen=True)
class MosaicityEstimate:
    mosaicity_deg: float | None
    """FWHM of the mosaic spread; None with too few chains."""
    n_chains: int
    at_range_limit: bool
    """The best spread is at an end of the search range (the wedges cannot tell more)."""
    note: str = ""


def estimate_mosaicity(
    wedges: Sequence[ReferenceWedge],
    geometry: DiffractionGeometry,
    params: MosaicityParams | None = None,
) -> MosaicityEstimate:
    """Mosaic spread (FWHM, deg) fitted to the rocking curves of spot chains (module doc)."""
    p = params or MosaicityParams()
    found = [_chains(wedge, geometry, p) for wedge in wedges]
    n_chains = sum(len(g[0]) for g in found)
    if n_chains < p.min_chains:
        return MosaicityEstimate(
            None,
            n_chains,
            False,
            f"mosaicity unknown: {n_chains} spot chains (< {p.min_chains}) across the wedges",
        )
    groups = _strongest(found, p.max_chains)
    low, high = (math.log(v / FWHM_PER_SIGMA) for v in p.range_deg)
    trial = np.exp(np.linspace(low, high, p.steps))
    chi2 = np.zeros(trial.size)
    fraction = np.linspace(0.0, 1.0, p.centre_steps)
    for (lorentz, observed, error, _), wedge in zip(groups, wedges, strict=True):
        if lorentz.size == 0:
            continue
        edges = np.arange(len(wedge.frames) + 1) * wedge.oscillation_deg
        chi2 += spot_kernels.rocking_chi2(
            lorentz,
            np.ascontiguousarray(observed, dtype=np.float64),
            np.ascontiguousarray(error, dtype=np.float64),
            edges.astype(np.float64),
            trial,
            fraction,
            p.beam_rocking_sigma_deg,
            p.max_rocking_sigma_deg,
        )
    best = int(np.argmin(chi2))
    log_sigma = math.log(trial[best])
    if 0 < best < trial.size - 1:
        # Parabola through the minimum and its neighbours (equal steps in log spread).
        left, mid, right = chi2[best - 1 : best + 2]
        curvature = left - 2.0 * mid + right
        if curvature > 0:
            step = (high - low) / (p.steps - 1)
            log_sigma += 0.5 * step * (left - right) / curvature
    edge = best in (0, trial.size - 1)
    return MosaicityEstimate(
        mosaicity_deg=float(math.exp(log_sigma) * FWHM_PER_SIGMA),
        n_chains=n_chains,
        at_range_limit=edge,
        note="mosaicity at the end of the search range" if edge else "",
    )


def _chi2(  # the reference for spot_kernels.rocking_chi2 (one trial spread at a time)
    lorentz: np.ndarray,
    observed: np.ndarray,
    error: np.ndarray,
    edges: np.ndarray,
    sigma_mosaic: float,
    p: MosaicityParams,
) -> float:
    """Total over chains of the best chi-square of one rocking curve per chain."""
    sigma = np.minimum(
        np.hypot(lorentz * sigma_mosaic, p.beam_rocking_sigma_deg), p.max_rocking_sigma_deg
    )
    span = edges[-1]
    fraction = np.linspace(0.0, 1.0, p.centre_steps)
    # (chains, centres): from 3 sigma before the wedge to 3 sigma after it.
    centres = -3.0 * sigma[:, None] + fraction[None, :] * (span + 6.0 * sigma[:, None])
    cdf = ndtr((edges[None, None, :] - centres[:, :, None]) / sigma[:, None, None])
    profile = cdf[:, :, 1:] - cdf[:, :, :-1]  # (chains, centres, frames)
    weight = 1.0 / np.square(error)[:, None, :]
    obs = observed[:, None, :]
    scale = np.maximum(
        (profile * obs * weight).sum(-1) / np.maximum((profile**2 * weight).sum(-1), 1e-30), 0.0
    )
    residual = ((obs - scale[:, :, None] * profile) ** 2 * weight).sum(-1)
    return float(residual.min(axis=1).sum())


Chains = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""Per chain: Lorentz factor, intensities (chains x frames), their errors, peak I/sigma."""


def _strongest(groups: list[Chains], limit: int) -> list[Chains]:
    """The ``limit`` chains of highest peak I/sigma over all wedges (each wedge keeps its
    own), or all of them when there are not more."""
    peaks = np.concatenate([g[3] for g in groups]) if groups else np.zeros(0)
    if peaks.size <= limit:
        return groups
    threshold = np.sort(peaks)[::-1][limit - 1]
    kept: list[Chains] = []
    room = limit
    for lorentz, observed, error, peak in groups:
        keep = np.flatnonzero(peak >= threshold)[:room]
        room -= keep.size
        kept.append((lorentz[keep], observed[keep], error[keep], peak[keep]))
    return kept


def _chains(wedge: ReferenceWedge, geometry: DiffractionGeometry, p: MosaicityParams) -> Chains:
    """Per chain of one wedge: Lorentz factor, intensity on every frame of the wedge (0 where
    not seen), its error (the detection level where not seen) and the chain's peak
    I/sigma."""
    frames = [f.spots for f in wedge.frames]
    n = len(frames)
    positions = [
        np.column_stack([s.x_px, s.y_px]) if s is not None else np.zeros((0, 2)) for s in frames
    ]
    following = [np.full(len(pos), -1, dtype=np.int64) for pos in positions]
    has_previous = [np.zeros(len(pos), dtype=bool) for pos in positions]
    for k in range(n - 1):
        a, b = positions[k], positions[k + 1]
        if len(a) == 0 or len(b) == 0:
            continue
        tol = p.link_tolerance_px
        dist_ab, near_ab = cKDTree(b).query(a, distance_upper_bound=tol)
        dist_ba, near_ba = cKDTree(a).query(b, distance_upper_bound=tol)
        for i in np.flatnonzero(np.isfinite(dist_ab)):
            j = int(near_ab[i])
            if np.isfinite(dist_ba[j]) and near_ba[j] == i:
                following[k][i] = j
                has_previous[k + 1][j] = True
    cx, cy = geometry.beam_centre_px
    lorentz, observed, error, peak = [], [], [], []
    for k in range(n):
        s = frames[k]
        if s is None:
            continue
        for i in np.flatnonzero(~has_previous[k]):
            members = [(k, int(i))]
            while following[members[-1][0]][members[-1][1]] >= 0 and members[-1][0] < n - 1:
                kk, ii = members[-1]
                members.append((kk + 1, int(following[kk][ii])))
            spots = [(frames[kk], ii) for kk, ii in members]
            isig = np.array([f.isigma[ii] for f, ii in spots if f is not None])
            if isig.max() < p.min_chain_isigma:
                continue
            x = float(np.mean([f.x_px[ii] for f, ii in spots if f is not None]))
            y = float(np.mean([f.y_px[ii] for f, ii in spots if f is not None]))
            radius = math.hypot(x - cx, y - cy)
            factor = radius / max(abs(y - cy), 1e-9)
            if factor > p.max_lorentz or radius < 1.0:
                continue
            values = np.array([f.intensity[ii] for f, ii in spots if f is not None])
            sigmas = values / np.maximum(isig, 1e-6)
            obs = np.zeros(n)
            err = np.full(n, 3.0 * float(np.median(sigmas)))
            first = members[0][0]
            obs[first : first + len(values)] = values
            err[first : first + len(values)] = np.maximum(sigmas, 1e-6)
            lorentz.append(factor)
            observed.append(obs)
            error.append(err)
            peak.append(float(isig.max()))
    if not lorentz:
        return np.zeros(0), np.zeros((0, n)), np.zeros((0, n)), np.zeros(0)
    return np.array(lorentz), np.array(observed), np.array(error), np.array(peak)
