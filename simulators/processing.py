"""The simulated processing pipeline: a plausible data-processing summary from the truth.

It is part of the simulator, so it reads the sample world (which crystal the beam went
through during the scan) instead of the frames; its answers say ``simulated: True``. The
statistics follow simple rules, not a model of integration:

- resolution: the crystal's limit (5 % noise), or the detector edge if that is lower;
- space group and cell: the crystal's (cell lengths with 0.2 % noise, symmetry kept);
- completeness and multiplicity: the rotation range against the range the crystal system
  needs (:data:`NEEDED_RANGE_DEG`);
- outer shell: I/sigma about 2 and CC1/2 about 0.5 when the crystal limits the resolution,
  better when the detector edge does.

Noise is seeded from the world's seed and the request's prefix and run: the same scan
gives the same summary.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from bes.hal.beam import HC_KEV_A
from bes.hal.clock import DeviceAction
from simulators.clock import SimClock
from simulators.geometry import lab_to_sample
from simulators.world import Crystal, SampleWorld

PROGRAM = "simulated-processing"
SMALL_DETECTOR_EDGE_MM = 0.2 * 256
"""Beam centre to the nearest edge of the small test detector (512 pixels of 0.2 mm)."""

NEEDED_RANGE_DEG: dict[str, float] = {
    "triclinic": 180.0,
    "monoclinic": 180.0,
    "orthorhombic": 90.0,
    "tetragonal": 60.0,
    "hexagonal": 60.0,
    "cubic": 45.0,
}
"""Rotation range giving a complete data set, by crystal system (rule of thumb)."""

MAX_MULTIPLICITY = 40.0
BEAM_DEPTH_MM = (-0.5, 0.5)
"""Span along the beam (lab z) searched for crystals."""
_DEPTH_STEPS = 201  # 5 um apart
_FOOTPRINT_STEPS = 5  # rays across the beam footprint, per direction
_OMEGA_STEP_DEG = 1.0  # poses over the scan: an off-axis crystal crosses the beam briefly
_MAX_OMEGAS = 721


def crystal_system(cell: tuple[float, ...] | list[float]) -> str:
    """Crystal system from a unit cell's metric (a, b, c, alpha, beta, gamma)."""
    a, b, c, alpha, beta, gamma = cell

    def same(x: float, y: float) -> bool:
        return abs(x - y) <= 1e-3 * max(abs(x), abs(y))

    right = [same(angle, 90.0) for angle in (alpha, beta, gamma)]
    if all(right):
        if same(a, b) and same(b, c):
            return "cubic"
        if same(a, b):
            return "tetragonal"
        return "orthorhombic"
    if right[0] and right[1] and same(gamma, 120.0) and same(a, b):
        return "hexagonal"
    if right[0] and right[2]:
        return "monoclinic"
    return "triclinic"


def edge_resolution_a(wavelength_a: float, distance_mm: float, edge_radius_mm: float) -> float:
    """d-spacing at ``edge_radius_mm`` from the beam on a detector at ``distance_mm``."""
    two_theta = math.atan(edge_radius_mm / distance_mm)
    return wavelength_a / (2.0 * math.sin(0.5 * two_theta))


class SimProcessing:
    """The simulated processing pipeline (a processing hook: ``hook(request) -> summary``).

    ``duration_s``: beamline time a run of the pipeline is reported to take (on ``clock``, as
    a ``processing/process`` action); it runs beside the beamline, so the clock does not wait.
    """

    name = "processing"

    def __init__(
        self, world: SampleWorld, clock: SimClock | None = None, duration_s: float = 60.0
    ) -> None:
        if not duration_s >= 0:
            raise ValueError(f"processing duration_s must be >= 0, got {duration_s!r}")
        self._world = world
        self._clock = clock
        self.duration_s = float(duration_s)

    def __repr__(self) -> str:
        return f"SimProcessing(duration_s={self.duration_s:g})"

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        wall_start = time.perf_counter()
        summary = self._process(request)
        if self._clock is not None:
            self._clock.report(
                DeviceAction(
                    device=self.name,
                    action="process",
                    start_s=self._clock.now(),
                    duration_s=self.duration_s,
                    wall_s=time.perf_counter() - wall_start,
                    details={
                        "prefix": request.get("prefix"),
                        "run": request.get("run"),
                        "status": summary["status"],
                    },
                )
            )
        return summary

    def _process(self, request: Mapping[str, Any]) -> dict[str, Any]:
        n_frames = int(_required(request, "n_frames"))
        oscillation_deg = float(_required(request, "oscillation_deg"))
        omega_start_deg = float(request.get("omega_start_deg") or 0.0)
        range_deg = abs(n_frames * oscillation_deg)
        if range_deg <= 0:
            return _failed(f"no rotation to process ({n_frames} frames of {oscillation_deg:g} deg)")
        hits = self._crystals_in_beam(omega_start_deg, n_frames * oscillation_deg)
        if not hits:
            return _failed("no diffraction (simulated processing)")
        crystal = max(hits, key=lambda pair: pair[1])[0]
        rng = np.random.default_rng(
            [
                int(self._world.seed or 0),
                zlib.crc32(str(request.get("prefix", "")).encode()),
                int(request.get("run") or 0),
            ]
        )

        limit_a = crystal.resolution_limit_a * (1.0 + 0.05 * _clipped_normal(rng))
        resolution_a = limit_a
        distance_mm = request.get("detector_distance_mm")
        wavelength_a = request.get("wavelength_a") or HC_KEV_A / self._world.beam.energy_kev
        if distance_mm:
            edge_mm = float(request.get("edge_radius_mm") or SMALL_DETECTOR_EDGE_MM)
            resolution_a = max(
                limit_a, edge_resolution_a(float(wavelength_a), float(distance_mm), edge_mm)
            )

        system = crystal_system(crystal.cell)
        needed_deg = NEEDED_RANGE_DEG[system]
        completeness = min(1.0, range_deg / needed_deg) * 0.99
        multiplicity = min(MAX_MULTIPLICITY, max(1.0, 2.0 * range_deg / needed_deg))
        # Outer shell: about 2 where the crystal stops diffracting, more if the edge cuts first.
        i_over_sigma = 2.0 * (resolution_a / limit_a) ** 3 * (1.0 + 0.1 * _clipped_normal(rng))
        cc_half = i_over_sigma / (i_over_sigma + 2.0)
        r_merge = 0.8 * math.sqrt(multiplicity) / i_over_sigma

        others = len(hits) - 1
        message = f"{n_frames} frames, {range_deg:g} deg processed (simulated)"
        if others:
            message += f"; {others} more crystal(s) in the beam"
        return {
            "program": PROGRAM,
            "status": "success",
            "simulated": True,
            "message": message,
            "resolution_a": round(resolution_a, 2),
            "space_group": crystal.space_group,
            "cell": _noisy_cell(crystal.cell, system, rng),
            "completeness": round(completeness, 4),
            "multiplicity": round(multiplicity, 2),
            "i_over_sigma": round(i_over_sigma, 2),
            "cc_half": round(cc_half, 3),
            "r_merge": round(r_merge, 3),
        }

    def _crystals_in_beam(
        self, omega_start_deg: float, sweep_deg: float
    ) -> list[tuple[Crystal, int]]:
        """Crystals of the mounted pin the beam crossed during the scan, with the number of
        sample points of the beam path inside each."""
        with self._world.lock:
            pin = self._world.mounted_pin
            crystals = list(pin.crystals) if pin is not None else []
            pose = dict(self._world.pose)
            fwhm_x_mm, fwhm_y_mm = (s * 1e-3 for s in self._world.beam.beam_size_um)
        if not crystals:
            return []
        # Rays along +z across the beam footprint (an ellipse of the beam's FWHM).
        u = np.linspace(-1.0, 1.0, _FOOTPRINT_STEPS)
        gu, gv = np.meshgrid(u, u)
        inside = gu**2 + gv**2 <= 1.0
        rays_x = 0.5 * fwhm_x_mm * gu[inside]
        rays_y = 0.5 * fwhm_y_mm * gv[inside]
        z = np.linspace(*BEAM_DEPTH_MM, _DEPTH_STEPS)
        lab = np.column_stack(
            [np.repeat(rays_x, z.size), np.repeat(rays_y, z.size), np.tile(z, rays_x.size)]
        )
        counts = [0] * len(crystals)
        n_omegas = min(_MAX_OMEGAS, max(2, math.ceil(abs(sweep_deg) / _OMEGA_STEP_DEG) + 1))
        for omega in omega_start_deg + np.linspace(0.0, sweep_deg, n_omegas):
            points = lab_to_sample(lab, {**pose, "omega": float(omega)})
            for i, crystal in enumerate(crystals):
                counts[i] += int(np.count_nonzero(crystal.contains(points)))
        return [(crystal, n) for crystal, n in zip(crystals, counts, strict=True) if n]


def _required(request: Mapping[str, Any], key: str) -> Any:
    value = request.get(key)
    if value is None:
        raise ValueError(f"processing request has no {key!r}; it has {', '.join(request)}")
    return value


def _failed(message: str) -> dict[str, Any]:
    return {"program": PROGRAM, "status": "failed", "simulated": True, "message": message}


def _clipped_normal(rng: np.random.Generator) -> float:
    return float(np.clip(rng.standard_normal(), -1.5, 1.5))


def _noisy_cell(cell: tuple[float, ...], system: str, rng: np.random.Generator) -> list[float]:
    """Cell lengths with 0.2 % noise, equal where the crystal system makes them equal."""
    a, b, c = (length * (1.0 + 0.002 * _clipped_normal(rng)) for length in cell[:3])
    if system == "cubic":
        a = b = c
    elif system in ("tetragonal", "hexagonal"):
        b = a
    return [round(a, 2), round(b, 2), round(c, 2), *(float(angle) for angle in cell[3:])]
