"""Data-collection strategy within a dose budget, from characterisation results.

Rules (documented with their limits in docs/analysis.md):
- total range from the Laue class of the known space group (unknown: 180 deg);
- oscillation per frame: half the mosaicity, within 0.05..0.5 deg;
- detector distance that puts the estimated resolution at the detector edge;
- dose: aim at ``target_dose_mgy`` (default 10 MGy), never above the collection budget
  (20 MGy cap less 5 % for characterisation, less any excess already absorbed); the dose is
  the beam's peak dose, or the mean over the crystal's cross-section when its size is known;
- exposure per frame at the detector's comfortable rate; transmission sets the dose;
  when full transmission cannot reach the target, exposure grows up to ``max_exposure_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bes.analysis.dose import collection_budget_mgy, dose_rate_mgy_s

HC_KEV_A = 12.398419843320026
MIN_OSCILLATION_DEG = 0.05
MAX_OSCILLATION_DEG = 0.5

# Minimal rotation (deg) for complete unique data with the crystal in any orientation,
# per crystal system; values from common practice (with margin), unknown -> 180.
_RANGE_BY_SYSTEM = {
    "triclinic": 360.0,
    "monoclinic": 180.0,
    "orthorhombic": 100.0,
    "tetragonal": 90.0,
    "trigonal": 90.0,
    "hexagonal": 80.0,
    "cubic": 60.0,
}


_SYSTEM_GROUPS = {
    "triclinic": "P1",
    "monoclinic": "P2 P21 C2 I2",
    "orthorhombic": "P222 P2221 P21212 P212121 C2221 C222 F222 I222 I212121",
    "tetragonal": "P4 P41 P42 P43 I4 I41 P422 P4212 P4122 P41212 P4222 P42212 P4322 P43212 "
    "I422 I4122",
    "trigonal": "P3 P31 P32 R3 H3 P312 P321 P3112 P3121 P3212 P3221 R32 H32",
    "hexagonal": "P6 P61 P65 P62 P64 P63 P622 P6122 P6522 P6222 P6422 P6322",
    "cubic": "P23 F23 I23 P213 I213 P432 P4232 F432 F4132 I432 P4332 P4132 I4132",
}
_SYSTEM_OF_GROUP = {g: system for system, groups in _SYSTEM_GROUPS.items() for g in groups.split()}
_MONOCLINIC_FULL = {"P121": "P2", "P1211": "P21", "C121": "C2", "I121": "I2"}


def crystal_system(space_group: str) -> str:
    """Crystal system of one of the 65 chiral space groups (e.g. ``P43212``, ``C 1 2 1``)."""
    symbol = space_group.replace(" ", "").replace("_", "").upper()
    symbol = _MONOCLINIC_FULL.get(symbol, symbol)
    try:
        return _SYSTEM_OF_GROUP[symbol]
    except KeyError:
        raise ValueError(
            f"unknown space group {space_group!r}; expected one of the 65 chiral groups, "
            "e.g. 'P212121' or 'P43212'"
        ) from None


@dataclass(frozen=True)
class BeamState:
    full_flux_ph_s: float
    beam_fwhm_um: tuple[float, float]
    energy_kev: float

    def __post_init__(self) -> None:
        if not self.full_flux_ph_s >= 0:
            raise ValueError(f"flux must be >= 0 ph/s, got {self.full_flux_ph_s}")
        if not (self.beam_fwhm_um[0] > 0 and self.beam_fwhm_um[1] > 0):
            raise ValueError(f"beam size must be > 0 um, got {self.beam_fwhm_um}")
        if not self.energy_kev > 0:
            raise ValueError(f"energy must be > 0 keV, got {self.energy_kev}")

    @property
    def wavelength_a(self) -> float:
        return HC_KEV_A / self.energy_kev


@dataclass(frozen=True)
class DetectorLimits:
    max_frame_rate_hz: float
    edge_radius_mm: float
    """Distance from the beam centre to the nearest detector edge."""
    min_distance_mm: float = 100.0
    max_distance_mm: float = 1000.0

    def __post_init__(self) -> None:
        if not (self.max_frame_rate_hz > 0 and self.edge_radius_mm > 0):
            raise ValueError(
                f"detector needs a frame rate > 0 Hz and an edge radius > 0 mm, got "
                f"{self.max_frame_rate_hz}, {self.edge_radius_mm}"
            )
        if not 0 < self.min_distance_mm <= self.max_distance_mm:
            raise ValueError(
                f"detector distance limits must satisfy 0 < min <= max, got "
                f"{self.min_distance_mm}..{self.max_distance_mm} mm"
            )


@dataclass(frozen=True)
class Strategy:
    omega_start_deg: float
    total_range_deg: float
    oscillation_deg: float
    n_frames: int
    exposure_s: float
    transmission: float
    detector_distance_mm: float
    resolution_a: float
    dose_mgy: float
    budget_mgy: float
    rationale: tuple[str, ...]
    collectable: bool = True
    """False when no dose is left (transmission 0): the crystal should not be collected."""


def plan_strategy(
    resolution_a: float,
    mosaicity_deg: float,
    beam: BeamState,
    detector: DetectorLimits,
    space_group: str | None = None,
    used_dose_mgy: float = 0.0,
    target_dose_mgy: float = 10.0,
    omega_start_deg: float = 0.0,
    exposure_s: float = 0.01,
    max_exposure_s: float = 0.1,
    crystal_size_um: tuple[float, float] | None = None,
) -> Strategy:
    """A rotation strategy that respects the dose budget (every case; see module doc).

    ``crystal_size_um``: the crystal's extent across the beam (e.g. from X-ray centring);
    the dose is then the mean over its cross-section rather than the beam's peak."""
    if not resolution_a > 0:
        raise ValueError(f"resolution must be > 0 Angstrom, got {resolution_a}")
    if not mosaicity_deg >= 0:
        raise ValueError(f"mosaicity must be >= 0 deg, got {mosaicity_deg}")
    if not target_dose_mgy > 0:
        raise ValueError(f"target dose must be > 0 MGy, got {target_dose_mgy}")
    if not (exposure_s > 0 and max_exposure_s > 0):
        raise ValueError(f"exposures must be > 0 s, got {exposure_s}, {max_exposure_s}")
    reasons: list[str] = []
    system = crystal_system(space_group) if space_group else None
    total_range = _RANGE_BY_SYSTEM[system] if system else 180.0
    reasons.append(
        f"range {total_range:g} deg for {system} {space_group}"
        if system
        else "range 180 deg (symmetry unknown)"
    )
    half_mosaicity = min(MAX_OSCILLATION_DEG, max(MIN_OSCILLATION_DEG, mosaicity_deg / 2.0))
    oscillation = round(round(half_mosaicity / 0.05) * 0.05, 4)
    n_frames = max(1, math.ceil(round(total_range / oscillation, 6)))
    reasons.append(f"oscillation {oscillation:.2f} deg from mosaicity {mosaicity_deg:.2f} deg")

    distance = distance_for_resolution(resolution_a, beam.wavelength_a, detector, reasons)
    budget = collection_budget_mgy(used_dose_mgy)
    target = min(target_dose_mgy, budget)
    exposure = max(exposure_s, 1.0 / detector.max_frame_rate_hz)
    longest = max(max_exposure_s, exposure)
    rate_full = dose_rate_mgy_s(
        beam.full_flux_ph_s, beam.beam_fwhm_um, beam.energy_kev, crystal_size_um
    )
    if crystal_size_um is not None:
        reasons.append(
            f"dose over the crystal's {crystal_size_um[0]:g} x {crystal_size_um[1]:g} um "
            "cross-section"
        )
    collectable = budget > 0 and rate_full > 0
    if not collectable:
        transmission = 0.0
        reasons.append(
            f"no dose left: budget {budget:.2f} MGy"
            if budget <= 0
            else "no flux: the beam delivers no dose"
        )
    else:
        transmission = target / (rate_full * exposure * n_frames)
        if transmission > 1.0:
            exposure = min(longest, target / (rate_full * n_frames))
            transmission = min(1.0, target / (rate_full * exposure * n_frames))
            reasons.append(f"exposure raised to {exposure:.3f} s to reach the dose target")
    dose = rate_full * transmission * exposure * n_frames
    if dose > budget:  # rounding only: keep the promise exactly
        transmission *= budget / dose * (1.0 - 1e-12)
        dose = rate_full * transmission * exposure * n_frames
    if collectable and dose < 0.999 * target:
        reasons.append(f"full transmission reaches only {dose:.2f} of {target:.2f} MGy")
    reasons.append(f"dose {dose:.2f} MGy of a {budget:.2f} MGy collection budget")
    return Strategy(
        omega_start_deg=omega_start_deg,
        total_range_deg=round(n_frames * oscillation, 4),
        oscillation_deg=oscillation,
        n_frames=n_frames,
        exposure_s=exposure,
        transmission=transmission,
        detector_distance_mm=distance,
        resolution_a=resolution_a,
        dose_mgy=dose,
        budget_mgy=budget,
        rationale=tuple(reasons),
        collectable=collectable,
    )


def distance_for_resolution(
    resolution_a: float,
    wavelength_a: float,
    detector: DetectorLimits,
    reasons: list[str] | None = None,
) -> float:
    """Detector distance that puts ``resolution_a`` at the nearest edge, within the limits;
    why it had to be clamped is appended to ``reasons``."""
    reasons = [] if reasons is None else reasons
    ratio = wavelength_a / (2.0 * resolution_a)
    if ratio >= 1.0:
        reasons.append(
            f"{resolution_a:g} A is beyond the limit lambda/2 = {wavelength_a / 2:.2f} A: "
            "detector at its shortest distance"
        )
        return detector.min_distance_mm
    two_theta = 2.0 * math.asin(ratio)
    if two_theta >= math.pi / 2:
        reasons.append(f"{resolution_a:g} A needs 2theta >= 90 deg: shortest distance")
        return detector.min_distance_mm
    distance = detector.edge_radius_mm / math.tan(two_theta)
    clamped = min(detector.max_distance_mm, max(detector.min_distance_mm, distance))
    if clamped != distance:
        reasons.append(
            f"distance {distance:.0f} mm for {resolution_a:g} A at the edge is outside "
            f"{detector.min_distance_mm:g}..{detector.max_distance_mm:g} mm: {clamped:g} mm"
        )
    return clamped
