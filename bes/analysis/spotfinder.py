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
    shell_px: float = 2.0
    """Radial width of a background cell, in pixels."""
    max_sectors: int = 24
    """Azimuthal sectors per shell far from the beam (fewer near it: >= ~40 pixels a cell)."""
    p_false: float = 0.005
    """Chance that a background pixel passes as strong (Poisson tail; ~2.6 sigma)."""
    min_count: int = 2
    min_pixels: int = 3
    max_pixels: int = 400
    min_spot_isigma: float = 3.0
    gain: float = 1.0
    d_max_a: float = 40.0
    """Spots at lower resolution than this (beam stop, air) are not Bragg candidates."""
    ice_half_width_inv_a2: float = 0.004
    """Half width, in 1/d^2, of the shell around an ice ring whose spots are left out."""
    ice_excess: float = 0.1
    """A ring counts as ice when its shell's background is this much above its neighbours'..."""
    ice_spot_excess: float = 4.0
    ice_min_spots: int = 5
    """... or when it holds at least this many spots and ice_spot_excess times the density
    of the shells around it."""
    min_cell_pixels: int = 16
    """Background cells with fewer sampled pixels use their whole shell's mean."""
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
        self._cells, self._n_cells, self._cell_inv_d2, self._cell_shell = polar_cells(
            geometry, self.mask, self.params.shell_px, self.params.max_sectors
        )
        self._rings = _ice_ring_cells(
            self._cells, self._n_cells, self._cell_inv_d2, self.params.ice_half_width_inv_a2
        )

    def find(self, frame: np.ndarray, keep_spots: bool = False) -> FrameSpots:
        if frame.shape != self.geometry.shape:
            raise ValueError(f"frame shape {frame.shape} differs from {self.geometry.shape}")
        p = self.params
        image = np.ascontiguousarray(frame)
        background, counts = spot_kernels.cell_background(
            image, self._cells, self._n_cells, 5.0, p.gain
        )
        background = self._steady(background, counts)
        npix, total, bg, x, y, peak, saturated, n_strong, overflow = spot_kernels.connected_spots(
            image,
            self._cells,
            background,
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
        inv_d2 = 1.0 / np.square(d)
        ice = self._ice_rings(background, counts, inv_d2[spot])
        on_ice = np.zeros(len(d), dtype=bool)
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

    def _steady(self, background: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Cells with too few sampled pixels (detector corners, gaps) take their shell's mean."""
        shell = self._cell_shell
        weight = np.bincount(shell, weights=counts)
        shell_mean = np.bincount(shell, weights=background * counts) / np.maximum(weight, 1)
        return np.where(counts >= self.params.min_cell_pixels, background, shell_mean[shell])

    def _ice_rings(
        self, background: np.ndarray, counts: np.ndarray, spot_inv_d2: np.ndarray
    ) -> tuple[float, ...]:
        """Ice rings: shells at ice d-spacings whose background stands above the shells
        around them, or that hold far more spots than the same width around them."""
        p = self.params
        rings = self._rings
        if not rings.usable.any():
            return ()
        # the cells of each ring's shell and of the bands inside and outside it (valid
        # cells, fixed by the geometry and mask) were listed when the finder was made
        medians = spot_kernels.group_medians(background, rings.cells, rings.starts)
        ring_level = medians[0::3]
        # above both sides: a ring on the slope of the solvent ring is not ice
        near_level = np.maximum(medians[1::3], medians[2::3])
        distance = np.abs(spot_inv_d2[None, :] - rings.centre[:, None])
        hw = p.ice_half_width_inv_a2
        in_ring = np.count_nonzero(distance <= hw, axis=1)
        # the "around" band is three times as wide as the ring band
        around = np.count_nonzero((distance > 2 * hw) & (distance <= 5 * hw), axis=1)
        crowded = (in_ring >= p.ice_min_spots) & (in_ring > p.ice_spot_excess * around / 3.0)
        found = rings.usable & ((ring_level > near_level * (1.0 + p.ice_excess)) | crowded)
        return tuple(ring for ring, hit in zip(ICE_RING_D_A, found, strict=True) if hit)


@dataclass(frozen=True)
class _IceRingCells:
    """For every ice ring (ICE_RING_D_A order): the valid cells of its shell, of the band
    inside it and of the band outside it, as three groups each (``cells`` from
    ``starts[3 i + j]`` to ``starts[3 i + j + 1]``); ``usable`` where every group has at
    least 4 cells."""

    centre: np.ndarray
    cells: np.ndarray
    starts: np.ndarray
    usable: np.ndarray


def _ice_ring_cells(
    cells: np.ndarray, n_cells: int, cell_inv_d2: np.ndarray, half_width_inv_a2: float
) -> _IceRingCells:
    # the cells the background kernel samples (every second row) and counts: the valid ones
    counts = np.bincount(cells[::2][cells[::2] >= 0].ravel(), minlength=n_cells)
    valid = np.flatnonzero(counts > 0)
    inv_d2 = cell_inv_d2[valid]
    groups: list[np.ndarray] = []
    usable = []
    centres = []
    for ring in ICE_RING_D_A:
        centre = 1.0 / ring**2
        distance = np.abs(inv_d2 - centre)
        inside = distance <= half_width_inv_a2
        band = (distance > 2 * half_width_inv_a2) & (distance <= 5 * half_width_inv_a2)
        inner = band & (inv_d2 < centre)
        outer = band & (inv_d2 > centre)
        parts = [valid[inside], valid[inner], valid[outer]]
        usable.append(all(part.size >= 4 for part in parts))
        groups.extend(part if usable[-1] else valid[:0] for part in parts)
        centres.append(centre)
    sizes = np.array([g.size for g in groups], dtype=np.int64)
    return _IceRingCells(
        centre=np.array(centres),
        cells=np.concatenate(groups).astype(np.int64),
        starts=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        usable=np.array(usable, dtype=bool),
    )


def polar_cells(
    geometry: DiffractionGeometry, mask: np.ndarray, shell_px: float, max_sectors: int
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Cell index of every pixel (-1 where masked): shells of ``shell_px`` around the beam
    centre, cut into up to ``max_sectors`` sectors (fewer near the centre, so that a cell
    keeps about 40 pixels). Also each cell's 1/d^2 and shell number."""
    rows, cols = geometry.shape
    y, x = np.mgrid[0:rows, 0:cols]
    dx = x + 0.5 - geometry.beam_centre_px[0]
    dy = y + 0.5 - geometry.beam_centre_px[1]
    radius = np.hypot(dx, dy)
    shell = (radius / shell_px).astype(np.int64)
    n_shells = int(shell.max()) + 1
    mid_radius = (np.arange(n_shells) + 0.5) * shell_px
    sectors = np.clip((2 * np.pi * mid_radius * shell_px / 40.0).astype(np.int64), 1, max_sectors)
    angle = (np.arctan2(dy, dx) + np.pi) / (2 * np.pi)  # 0..1
    sector = np.minimum((angle * sectors[shell]).astype(np.int64), sectors[shell] - 1)
    first_cell = np.concatenate([[0], np.cumsum(sectors)[:-1]])
    cells = (first_cell[shell] + sector).astype(np.int32)
    cells[~mask] = -1
    n_cells = int(sectors.sum())
    cell_shell = np.repeat(np.arange(n_shells), sectors)
    d_mid = geometry.d_spacing(geometry.beam_centre_px[0] + mid_radius, geometry.beam_centre_px[1])
    inv_d2 = np.where(np.isfinite(d_mid), 1.0 / np.square(d_mid), 0.0)
    return np.ascontiguousarray(cells), n_cells, inv_d2[cell_shell], cell_shell


def outer_resolution(d_a: np.ndarray, min_spots: int = 5, quantile: float = 0.95) -> float | None:
    """d-spacing reached by the outermost spots: the ``quantile`` of 1/d^2 (robust to a
    stray spot); None with fewer than ``min_spots`` spots."""
    if len(d_a) < min_spots:
        return None
    inv_d2 = np.quantile(1.0 / np.square(d_a), quantile)
    return float(1.0 / np.sqrt(inv_d2))
