"""Characterisation from reference wedges: resolution, mosaicity, spot statistics, ice.

Input: the spots of a few consecutive frames of small oscillation at two or more omegas
(``SpotFinder.find(frame, keep_spots=True)``), each wedge with its oscillation width, and the
detector geometry. Everything is read from the spots; nothing about the sample is assumed.

Mosaicity (:mod:`bes.analysis.mosaicity`): spots at the same detector position on consecutive
frames are one reflection rocking through the Ewald sphere; the per-frame intensities of every
such chain are fitted with one Gaussian rocking curve of width ``Lorentz x mosaic spread``.

Resolution: a Wilson-type model of the spot intensities, extrapolated to where a fully
recorded reflection of mean intensity has I/sigma = 1 (the simulator's definition of a
crystal's limit at a dose):

1. a spot on a frame holds a share ``p = osc / (osc + k x Lorentz x mosaicity)`` of its
   reflection (``k = partiality_width_factor``; Lorentz ``1 / |sin phi|`` from its azimuth);
2. spots are cut at ``threshold_factor`` x their detection level ``T`` (I/sigma = 3 over the
   background under the spot); above a cut, exponentially distributed (Wilson) intensities
   exceed it by the mean of the whole population, so in shells of equal spot count
   ``mean((I - cut) / p)`` estimates the mean fully recorded intensity ``<I>(s)``;
3. ``ln <I>`` is fitted by a line in ``s^2`` (slope ``-B/2``) and extrapolated;
4. sigma counts the background per pixel and per degree read under the spots (held at its
   outermost value beyond them), over a footprint of ``spot_solid_angle_sr`` and
   ``integration_deg`` of rotation;
5. the resolution is the ``d`` where ``<I> / sqrt(<I> + background) = reference_isigma``.

See docs/analysis.md for the calibration, the accuracy on simulated crystals and the limits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bes.analysis.diffraction_geometry import DiffractionGeometry
from bes.analysis.mosaicity import MosaicityParams, estimate_mosaicity
from bes.analysis.spotfinder import FrameSpots, Spots, outer_resolution

QUALITY_FLAGS = (
    "no_diffraction",
    "weak",
    "resolution_uncertain",
    "ice_rings",
    "saturated",
    "beyond_detector",
    "no_falloff",
    "mosaicity_unknown",
    "high_mosaicity",
)
"""Every flag :attr:`Characterisation.flags` may hold (see docs/analysis.md)."""


@dataclass(frozen=True)
class ReferenceWedge:
    """Consecutive frames of one reference wedge, in acquisition order."""

    omega_start_deg: float
    oscillation_deg: float
    frames: tuple[FrameSpots, ...]

    def __post_init__(self) -> None:
        if not self.oscillation_deg > 0:
            raise ValueError(
                f"wedge at omega {self.omega_start_deg:g}: oscillation must be > 0 deg, "
                f"got {self.oscillation_deg!r}"
            )
        if not self.frames:
            raise ValueError(f"wedge at omega {self.omega_start_deg:g} has no frames")
        for number, frame in enumerate(self.frames):
            if frame.spots is None:
                raise ValueError(
                    f"wedge at omega {self.omega_start_deg:g}, frame {number}: no per-spot "
                    "arrays; find spots with SpotFinder.find(frame, keep_spots=True)"
                )


@dataclass(frozen=True)
class CharacterisationParams:
    min_spots_per_frame: float = 10.0
    """Fewer good spots per frame: no resolution estimate (flag ``weak``)."""
    confident_spots_per_frame: float = 30.0
    """Fewer good spots per frame: the estimate is flagged ``resolution_uncertain``."""
    no_diffraction_spots: float = 3.0
    """Fewer good spots per frame than this: ``no_diffraction``."""
    shell_spots: int = 20
    """Smallest number of spots in a resolution shell."""
    n_shells: int = 10
    detection_isigma: float = 3.0
    """The spot finder's I/sigma threshold (``SpotFinderParams.min_spot_isigma``)."""
    threshold_factor: float = 1.5
    """The fit uses spots above this x their detection level, as if cut there."""
    gain: float = 1.0
    """Detector counts per photon (``SpotFinderParams.gain``)."""
    partiality_width_factor: float = 1.0
    default_mosaicity_deg: float = 0.3
    """Used for the partiality when the mosaicity cannot be measured."""
    reference_isigma: float = 1.0
    spot_solid_angle_sr: float = 3.5e-5
    integration_deg: float = 0.2
    best_resolution_a: float = 0.8
    """The extrapolation stops here."""
    saturated_fraction_flag: float = 0.01
    high_mosaicity_deg: float = 1.0
    mosaicity: MosaicityParams = field(default_factory=MosaicityParams)

    def __post_init__(self) -> None:
        if self.shell_spots < 3 or self.n_shells < 3:
            raise ValueError(
                f"need shell_spots >= 3 and n_shells >= 3, got {self.shell_spots}, {self.n_shells}"
            )
        if not (self.gain > 0 and self.reference_isigma > 0 and self.integration_deg > 0):
            raise ValueError("gain, reference_isigma and integration_deg must be > 0")


@dataclass(frozen=True)
class Characterisation:
    """What the reference wedges show; None where too few spots allow no estimate."""

    resolution_a: float | None
    """Where a fully recorded reflection of mean intensity has I/sigma = 1 (model above)."""
    spot_resolution_a: float | None
    """Reached by the outermost good spots (95 % quantile of 1/d^2)."""
    mosaicity_deg: float | None
    """Mosaic spread, FWHM."""
    wilson_b_a2: float | None
    n_frames: int
    n_spots_per_frame: float
    """Mean number of good Bragg candidates per frame."""
    spots_per_frame: tuple[int, ...]
    mean_isigma: float
    """Mean I/sigma of the good spots."""
    fraction_saturated: float
    """Share of the spots holding an overloaded pixel."""
    ice_rings_a: tuple[float, ...]
    """Ice rings seen on at least half of the frames."""
    flags: tuple[str, ...]
    """Diffraction quality flags, from :data:`QUALITY_FLAGS`."""
    notes: tuple[str, ...] = ()

    @property
    def diffracts(self) -> bool:
        return "no_diffraction" not in self.flags


def characterise(
    wedges: Sequence[ReferenceWedge],
    geometry: DiffractionGeometry,
    params: CharacterisationParams | None = None,
) -> Characterisation:
    """Resolution, mosaicity and spot statistics of reference wedges (module docstring)."""
    p = params or CharacterisationParams()
    if not wedges:
        raise ValueError("no reference wedges given; give at least one wedge of frames")
    frames = [frame for wedge in wedges for frame in wedge.frames]
    counts = tuple(frame.good_bragg_candidates for frame in frames)
    per_frame = float(np.mean(counts))
    spots = [_spots(frame) for frame in frames]
    oscillation = np.concatenate(
        [np.full(len(_spots(f).d_a), w.oscillation_deg) for w in wedges for f in w.frames]
    )
    every = _join(spots)
    good = every.good
    flags: list[str] = []
    notes: list[str] = []
    fraction_saturated = float(every.saturated.mean()) if every.saturated.size else 0.0
    if fraction_saturated > p.saturated_fraction_flag:
        flags.append("saturated")
    ring_votes: dict[float, int] = {}
    for frame in frames:
        for ring in frame.ice_rings_a:
            ring_votes[ring] = ring_votes.get(ring, 0) + 1
    ice = tuple(sorted((r for r, n in ring_votes.items() if 2 * n >= len(frames)), reverse=True))
    if ice:
        flags.append("ice_rings")

    mosaicity = estimate_mosaicity(wedges, geometry, p.mosaicity)
    mosaicity_deg = mosaicity.mosaicity_deg
    if mosaicity_deg is None:
        flags.append("mosaicity_unknown")
        notes.append(mosaicity.note)
    elif mosaicity_deg > p.high_mosaicity_deg:
        flags.append("high_mosaicity")

    resolution = None
    b_factor = None
    if per_frame < p.no_diffraction_spots:
        flags.append("no_diffraction")
    elif per_frame < p.min_spots_per_frame:
        flags.append("weak")
        notes.append(
            f"{per_frame:.1f} good spots per frame (< {p.min_spots_per_frame:g}): "
            "no resolution estimate"
        )
    else:
        keep = good & ~every.saturated
        fit = _wilson_fit(every, keep, oscillation, mosaicity_deg, geometry, p)
        if fit is None:
            flags.append("no_falloff")
            notes.append("spot intensities do not fall off with resolution: no extrapolation")
        else:
            resolution, b_factor = fit
            if per_frame < p.confident_spots_per_frame:
                flags.append("resolution_uncertain")
            if resolution < _corner_resolution(geometry):
                flags.append("beyond_detector")
    return Characterisation(
        resolution_a=resolution,
        spot_resolution_a=outer_resolution(every.d_a[good]),
        mosaicity_deg=mosaicity_deg,
        wilson_b_a2=b_factor,
        n_frames=len(frames),
        n_spots_per_frame=per_frame,
        spots_per_frame=counts,
        mean_isigma=float(every.isigma[good].mean()) if good.any() else 0.0,
        fraction_saturated=fraction_saturated,
        ice_rings_a=ice,
        flags=tuple(flags),
        notes=tuple(notes),
    )


def _wilson_fit(
    spots: Spots,
    keep: np.ndarray,
    oscillation_deg: np.ndarray,
    mosaicity_deg: float | None,
    geometry: DiffractionGeometry,
    p: CharacterisationParams,
) -> tuple[float, float] | None:
    """(resolution, B) from the intensity fall-off, or None without a fall-off."""
    cx, cy = geometry.beam_centre_px
    dx, dy = spots.x_px - cx, spots.y_px - cy
    lorentz = np.hypot(dx, dy) / np.maximum(np.abs(dy), 1e-9)
    keep = keep & (lorentz <= p.mosaicity.max_lorentz)
    lorentz = lorentz[keep]
    intensity = spots.intensity[keep]
    isigma = spots.isigma[keep]
    n_pixels = np.maximum(spots.n_pixels[keep], 1)
    osc = oscillation_deg[keep]
    s2 = 1.0 / np.square(spots.d_a[keep])
    if intensity.size < 3 * p.shell_spots // 2:
        return None
    total = np.square(intensity / np.maximum(isigma, 1e-6)) / p.gain
    background = np.maximum(total - intensity, 0.0)
    t = p.detection_isigma
    threshold = 0.5 * (t * t + np.sqrt(t**4 + 4.0 * t * t * background)) * p.threshold_factor
    mosaic = mosaicity_deg if mosaicity_deg is not None else p.default_mosaicity_deg
    partiality = osc / (osc + p.partiality_width_factor * lorentz * mosaic)
    # Per spot: excess over its detection level as a fully recorded share, and the background
    # per pixel and per degree of rotation.
    excess = (intensity - threshold) / partiality
    bg_per_deg = background / n_pixels / osc

    order = np.argsort(s2)
    per_shell = max(p.shell_spots, intensity.size // p.n_shells)
    x, y, weight, level = [], [], [], []
    for start in range(0, intensity.size - per_shell + 1, per_shell):
        stop = start + per_shell if intensity.size - start - per_shell >= per_shell else None
        shell = order[start:stop]
        shell = shell[excess[shell] > 0]
        if shell.size < p.shell_spots // 2:
            continue
        mean_excess = float(np.mean(excess[shell]))
        x.append(float(np.mean(s2[shell])))
        y.append(math.log(mean_excess))
        weight.append(float(shell.size))
        level.append(float(np.median(bg_per_deg[shell])))
    if len(x) < 3:
        return None
    xs, ys, ws = np.array(x), np.array(y), np.array(weight)
    slope = float(np.polyfit(xs, ys, 1, w=np.sqrt(ws))[0])
    if slope >= 0:
        return None
    x0, y0 = float(np.average(xs, weights=ws)), float(np.average(ys, weights=ws))

    s2_max = min(1.0 / p.best_resolution_a**2, 0.999 * (2.0 / geometry.wavelength_a) ** 2)
    grid = np.linspace(x0, s2_max, 4000)
    mean_full = np.exp(y0 + slope * (grid - x0))
    bg_pixel_deg = np.interp(grid, xs, np.array(level))
    s = np.sqrt(grid)
    sin_theta = np.clip(geometry.wavelength_a * s / 2.0, 0.0, 0.999999)
    two_theta = 2.0 * np.arcsin(sin_theta)
    pixel_sr = (geometry.pixel_size_mm / geometry.distance_mm) ** 2 * np.cos(two_theta) ** 3
    footprint_px = p.spot_solid_angle_sr / np.maximum(pixel_sr, 1e-30)
    background = bg_pixel_deg * footprint_px * p.integration_deg
    i_over_sigma = mean_full / np.sqrt(mean_full + background)
    below = np.flatnonzero(i_over_sigma < p.reference_isigma)
    s2_limit = grid[below[0]] if below.size else s2_max
    return float(1.0 / math.sqrt(s2_limit)), float(-2.0 * slope)


def _spots(frame: FrameSpots) -> Spots:
    if frame.spots is None:  # ReferenceWedge refuses these; kept for type checkers
        raise ValueError("FrameSpots without per-spot arrays (use keep_spots=True)")
    return frame.spots


def _join(parts: Sequence[Spots]) -> Spots:
    names = ("x_px", "y_px", "n_pixels", "intensity", "isigma", "peak", "d_a", "saturated", "good")
    joined = {n: np.concatenate([np.asarray(getattr(s, n)) for s in parts]) for n in names}
    joined["saturated"] = joined["saturated"].astype(bool)
    joined["good"] = joined["good"].astype(bool)
    return Spots(**joined)


def _corner_resolution(geometry: DiffractionGeometry) -> float:
    rows, cols = geometry.shape
    x, y = geometry.beam_centre_px
    corner = [(cx, cy) for cx in (0.0, float(cols)) for cy in (0.0, float(rows))]
    far = max(corner, key=lambda c: math.hypot(c[0] - x, c[1] - y))
    return float(geometry.d_spacing(far[0], far[1]))
