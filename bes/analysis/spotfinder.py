"""Spot finding per frame: background, strong pixels, connected spots, ice rings, score.

A spot is >= ``min_pixels`` 8-connected pixels each unlikely (Poisson tail < ``p_false``)
under the local background mean, whose summed net counts are significant
(I / sigma(I) >= ``min_spot_isigma``). Spots on a detected ice ring, outside the
resolution window or with too many pixels are kept as spots but are not good
Bragg candidates. See docs/analysis.md for the score and resolution definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bes.analysis import spot_kernels
from bes.analysis.diffraction_geometry import DiffractionGeometry

ICE_RING_D_A: tuple[float, ...] = (3.897, 3.669, 3.441, 2.671, 2.249, 2.072, 1.948, 1.918)
"""Hexagonal ice powder rings (Angstrom)."""


@dataclass(frozen=True)
class SpotFinderParams:
    block_px: int = 16
    p_false: float = 0.005
    """Chance that a background pixel passes as strong (Poisson tail; ~2.6 sigma)."""
    min_count: int = 2
    min_pixels: int = 3
    max_pixels: int = 400
    min_spot_isigma: float = 3.0
    gain: float = 1.0
    d_max_a: float = 40.0
    """Spots at lower resolution than this (beam stop, air) are not Bragg candidates."""
    ice_half_width_inv_a2: float = 0.0025
    """Half width, in 1/d^2, of the shell around an ice ring whose spots are left out."""
    ice_excess: float = 0.25
    """A ring counts as ice when its shell's background is this much above its neighbours'."""
    max_strong_pixels: int = 400_000
    isigma_cap: float = 50.0
    """Per-spot cap on I/sigma in the score, so one salt spot cannot outweigh a crystal."""


@dataclass(frozen=True)
class Spots:
    """Per-spot arrays (all the same length)."""

    x_px: np.ndarray
    y_px: np.ndarray
    n_pixels: np.ndarray
    intensity: np.ndarray
    """Net counts (background removed)."""
    isigma: np.ndarray
    peak: np.ndarray
    d_a: np.ndarray
    saturated: np.ndarray
    good: np.ndarray
    """Good Bragg candidate: significant, not on ice, inside the resolution window."""


@dataclass(frozen=True)
class FrameSpots:
    """What one frame shows; the names follow ISPyB ImageQualityIndicators where they exist."""

    spot_total: int
    good_bragg_candidates: int
    total_integrated_signal: float
    resolution_a: float | None
    """Resolution of the outermost good spots (method1Res); None with too few spots."""
    score: float
    """DOZOR-like: sum over good spots of min(I/sigma, cap) / 10; grows with diffraction."""
    n_overloaded: int
    background_mean: float
    ice_rings_a: tuple[float, ...]
    strong_pixels: int
    overflow: bool = False
    spots: Spots | None = field(default=None, repr=False)


class SpotFinder:
    """Finds spots on frames of one detector geometry (geometry-dependent maps cached)."""

    def __init__(
        self,
        geometry: DiffractionGeometry,
        mask: np.ndarray | None = None,
        params: SpotFinderParams | None = None,
        saturation: float = np.inf,
    ) -> None:
        self.geometry = geometry
        self.params = params or SpotFinderParams()
        if mask is None:
            mask = np.ones(geometry.shape, dtype=bool)
        if mask.shape != geometry.shape:
            raise ValueError(
                f"mask shape {mask.shape} differs from the frame shape {geometry.shape}"
            )
        self.mask = np.ascontiguousarray(mask, dtype=bool)
        self.saturation = float(saturation)
        block = self.params.block_px
        rows, cols = geometry.shape
        centres_y = (np.arange((rows + block - 1) // block) + 0.5) * block
        centres_x = (np.arange((cols + block - 1) // block) + 0.5) * block
        d_blocks = geometry.d_spacing(centres_x[None, :], centres_y[:, None])
        self._block_inv_d2 = 1.0 / np.square(d_blocks)

    def find(self, frame: np.ndarray, keep_spots: bool = False) -> FrameSpots:
        if frame.shape != self.geometry.shape:
            raise ValueError(f"frame shape {frame.shape} differs from {self.geometry.shape}")
        p = self.params
        image = np.ascontiguousarray(frame)
        background, counts = spot_kernels.block_background(
            image, self.mask, p.block_px, 5.0, p.gain
        )
        npix, total, bg, x, y, peak, saturated, n_strong, overflow = spot_kernels.connected_spots(
            image,
            self.mask,
            background,
            p.block_px,
            p.p_false,
            p.min_count,
            p.gain,
            self.saturation,
            p.max_strong_pixels,
        )
        net = total - bg
        sigma = np.sqrt(np.maximum(total, 1.0) * p.gain)
        isigma = net / sigma
        spot = (npix >= p.min_pixels) & (isigma >= p.min_spot_isigma)
        d = self.geometry.d_spacing(x, y)
        ice = self._ice_rings(background, counts)
        on_ice = np.zeros(len(d), dtype=bool)
        inv_d2 = 1.0 / np.square(d)
        for ring in ice:
            on_ice |= np.abs(inv_d2 - 1.0 / ring**2) <= p.ice_half_width_inv_a2
        good = spot & ~on_ice & (d <= p.d_max_a) & (npix <= p.max_pixels)
        good_isigma = np.minimum(isigma[good], p.isigma_cap)
        valid = counts > 0
        result_spots = None
        if keep_spots:
            result_spots = Spots(
                x_px=x[spot],
                y_px=y[spot],
                n_pixels=npix[spot],
                intensity=net[spot],
                isigma=isigma[spot],
                peak=peak[spot],
                d_a=d[spot],
                saturated=saturated[spot],
                good=good[spot],
            )
        return FrameSpots(
            spot_total=int(spot.sum()),
            good_bragg_candidates=int(good.sum()),
            total_integrated_signal=float(net[good].sum()),
            resolution_a=outer_resolution(d[good]),
            score=float(good_isigma.sum() / 10.0),
            n_overloaded=int((saturated & spot).sum()),
            background_mean=float(background[valid].mean()) if valid.any() else 0.0,
            ice_rings_a=ice,
            strong_pixels=int(n_strong),
            overflow=bool(overflow),
            spots=result_spots,
        )

    def _ice_rings(self, background: np.ndarray, counts: np.ndarray) -> tuple[float, ...]:
        """Ice rings seen as shells whose tile background stands above their neighbours'."""
        p = self.params
        valid = counts > 0
        inv_d2 = self._block_inv_d2[valid]
        level = background[valid]
        found = []
        for ring in ICE_RING_D_A:
            centre = 1.0 / ring**2
            inside = np.abs(inv_d2 - centre) <= p.ice_half_width_inv_a2
            near = (np.abs(inv_d2 - centre) > 2 * p.ice_half_width_inv_a2) & (
                np.abs(inv_d2 - centre) <= 5 * p.ice_half_width_inv_a2
            )
            if inside.sum() < 4 or near.sum() < 4:
                continue
            ring_level = float(np.median(level[inside]))
            near_level = float(np.median(level[near]))
            noise = np.sqrt(max(near_level, 1e-3) / (p.block_px**2))
            if ring_level > near_level * (1.0 + p.ice_excess) + 5 * noise:
                found.append(ring)
        return tuple(found)


def outer_resolution(d_a: np.ndarray, min_spots: int = 5, quantile: float = 0.95) -> float | None:
    """d-spacing reached by the outermost spots: the ``quantile`` of 1/d^2 (robust to a
    stray spot); None with fewer than ``min_spots`` spots."""
    if len(d_a) < min_spots:
        return None
    inv_d2 = np.quantile(1.0 / np.square(d_a), quantile)
    return float(1.0 / np.sqrt(inv_d2))
