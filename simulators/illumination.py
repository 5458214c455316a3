"""How much of a body (crystal, loop film) the beam lights: its beam-weighted volume.

The result is the integral of g(x, y) over the body's volume, g being the beam's areal
density normalised to a unit integral (1/mm^2); so ``flux * result / volume`` is the
mean photon density (ph/s/mm^2) the body sees. It is computed per beam ray as the chord
length through the body (ellipsoid or box, exact) on a grid over where beam and body
overlap, and averaged over sub-poses when the sample moves during a frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from simulators.render_kernels import beam_weighted_volume as _beam_weighted_volume
from simulators.world import Crystal, Loop

BEAM_PROFILES = ("gaussian", "tophat")
FILM_THICKNESS_UM = 20.0
"""Assumed thickness of the solvent film held by a loop."""
_FOUR_LN2 = 4.0 * math.log(2.0)


@dataclass(frozen=True)
class BeamProfile:
    """The beam's cross-section at the sample: Gaussian of the given FWHM, or a uniform ellipse
    of that full width (top-hat, as behind a slit or aperture)."""

    fwhm_mm: tuple[float, float]
    """(horizontal = lab x, vertical = lab y)."""
    shape: str = "gaussian"

    def __post_init__(self) -> None:
        if self.shape not in BEAM_PROFILES:
            raise ValueError(
                f"unknown beam profile {self.shape!r}; known: {', '.join(BEAM_PROFILES)}"
            )
        if not (self.fwhm_mm[0] > 0 and self.fwhm_mm[1] > 0):
            raise ValueError(f"beam size must be > 0, got {self.fwhm_mm} mm")

    @property
    def peak_density_per_mm2(self) -> float:
        fx, fy = self.fwhm_mm
        if self.shape == "gaussian":
            return _FOUR_LN2 / (math.pi * fx * fy)
        return 4.0 / (math.pi * fx * fy)

    @property
    def half_extent_mm(self) -> tuple[float, float]:
        """Beyond these lab |x|, |y| the density is negligible (< 1e-7 of the peak)."""
        factor = 2.0 if self.shape == "gaussian" else 0.5
        return (factor * self.fwhm_mm[0], factor * self.fwhm_mm[1])

    def density(self, x_mm: np.ndarray, y_mm: np.ndarray) -> np.ndarray:
        """Areal density (1/mm^2, unit integral) at lab (x, y)."""
        u = (np.asarray(x_mm) / self.fwhm_mm[0]) ** 2 + (np.asarray(y_mm) / self.fwhm_mm[1]) ** 2
        if self.shape == "gaussian":
            return self.peak_density_per_mm2 * np.exp(-_FOUR_LN2 * u)
        return np.where(u <= 0.25, self.peak_density_per_mm2, 0.0)


@dataclass(frozen=True)
class Body:
    """A solid fixed to the pin: an ellipsoid or a box (sample frame, mm)."""

    centre_mm: tuple[float, float, float]
    half_axes_mm: tuple[float, float, float]
    axes: np.ndarray
    """3x3, columns are the body's own axes in the sample frame."""
    shape: str = "ellipsoid"

    @property
    def volume_mm3(self) -> float:
        a, b, c = self.half_axes_mm
        return 8.0 * a * b * c if self.shape == "box" else 4.0 / 3.0 * math.pi * a * b * c

    @property
    def bounding_radius_mm(self) -> float:
        h = np.asarray(self.half_axes_mm)
        return float(np.linalg.norm(h)) if self.shape == "box" else float(h.max())


def crystal_body(crystal: Crystal) -> Body:
    a, b, c = (float(v) * 1e-3 / 2.0 for v in crystal.size_um)
    x, y, z = (float(v) for v in crystal.position_mm)
    return Body(
        centre_mm=(x, y, z),
        half_axes_mm=(a, b, c),
        axes=np.asarray(crystal.orientation, dtype=float),
        shape="box" if crystal.shape == "box" else "ellipsoid",
    )


def loop_body(loop: Loop, thickness_um: float = FILM_THICKNESS_UM) -> Body:
    """The loop's solvent film: a flat ellipsoid in the loop plane (see world.Loop)."""
    theta = math.radians(loop.plane_angle_deg)
    axes = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.0, math.cos(theta), -math.sin(theta)],
            [0.0, math.sin(theta), math.cos(theta)],
        ]
    )
    length_um, width_um = loop.size_um
    half = (length_um * 5e-4, width_um * 5e-4, thickness_um * 5e-4)
    x, y, z = (float(v) for v in loop.centre_mm)
    return Body(centre_mm=(x, y, z), half_axes_mm=half, axes=axes)


def chord_lengths_mm(
    body: Body, origins_sample: np.ndarray, direction_sample: np.ndarray
) -> np.ndarray:
    """Length inside ``body`` of the lines ``origin + t * direction`` (unit direction)."""
    o = (origins_sample - np.asarray(body.centre_mm)) @ body.axes
    d = np.asarray(direction_sample) @ body.axes
    half = np.asarray(body.half_axes_mm)
    if body.shape == "ellipsoid":
        o_s, d_s = o / half, d / half
        a = float(d_s @ d_s)
        b = 2.0 * (o_s @ d_s)
        c = np.einsum("ij,ij->i", o_s, o_s) - 1.0
        disc = b * b - 4.0 * a * c
        return np.sqrt(np.maximum(disc, 0.0)) / a
    t_low = np.full(len(o), -np.inf)
    t_high = np.full(len(o), np.inf)
    for axis in range(3):
        if abs(d[axis]) < 1e-12:
            outside = np.abs(o[:, axis]) > half[axis]
            t_high[outside] = -np.inf
            continue
        t1 = (-half[axis] - o[:, axis]) / d[axis]
        t2 = (half[axis] - o[:, axis]) / d[axis]
        t_low = np.maximum(t_low, np.minimum(t1, t2))
        t_high = np.minimum(t_high, np.maximum(t1, t2))
    return np.maximum(t_high - t_low, 0.0)


def beam_weighted_volume(
    body: Body, pose: Mapping[str, float], beam: BeamProfile, min_samples: int = 16
) -> float:
    """Integral of the beam density over the body at one pose (mm; see module docstring):
    rays along lab +z through a grid over where beam and body overlap (fine enough for the
    beam's features, a top-hat's sharp edge needing more, and for the body's thinnest
    dimension; 16 to 128 per side), each weighted by the beam density and by its chord
    through the body (compiled: ``simulators.render_kernels.beam_weighted_volume``)."""
    return float(
        _beam_weighted_volume(
            np.asarray(body.centre_mm, dtype=float),
            np.ascontiguousarray(body.axes, dtype=float),
            np.asarray(body.half_axes_mm, dtype=float),
            body.shape == "box",
            body.bounding_radius_mm,
            float(beam.fwhm_mm[0]),
            float(beam.fwhm_mm[1]),
            beam.shape == "gaussian",
            float(pose["phiy"]),
            float(pose["phiz"]),
            float(pose["sampx"]),
            float(pose["sampy"]),
            float(pose["omega"]),
            min_samples,
        )
    )


def sub_poses(
    start: Mapping[str, float], end: Mapping[str, float]
) -> tuple[Sequence[Mapping[str, float]], Sequence[float]]:
    """Poses and weights (Simpson) that average a quantity over a frame's linear motion."""
    if all(abs(end[m] - v) < 1e-12 for m, v in start.items() if m in end):
        return [start], [1.0]
    mid = {m: 0.5 * (v + end.get(m, v)) for m, v in start.items()}
    return [start, mid, end], [1.0 / 6.0, 4.0 / 6.0, 1.0 / 6.0]


def mean_beam_weighted_volume(
    body: Body, start: Mapping[str, float], end: Mapping[str, float], beam: BeamProfile
) -> float:
    """:func:`beam_weighted_volume` averaged over the motion from ``start`` to ``end``."""
    poses, weights = sub_poses(start, end)
    return sum(w * beam_weighted_volume(body, p, beam) for p, w in zip(poses, weights, strict=True))
