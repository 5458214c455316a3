"""Absorbed dose from flux, beam size, exposure, energy and crystal size (a RADDOSE-like first
estimate).

Model: dose (Gy) = fluence (photons / cm^2) x photon energy (J) x mass energy-absorption
coefficient (cm^2/g) x 1000 (g -> kg). The fluence is that of a Gaussian beam of the given
FWHM centred on the crystal: its peak (photons / (1.133 x FWHM_h x FWHM_v)) when the crystal
size is unknown, which no part of the crystal exceeds; with the crystal size, the mean over the
crystal's cross-section, clipped to the beam's FWHM (a crystal larger than the beam is dosed
where the beam is, not over its whole volume). The coefficient is that of water (NIST) x 1.15
for a typical protein crystal with sulphur and solvent salts, interpolated log-log. Numbers:
12.4 keV, 2e9 photons/um^2 -> 1.15 MGy. See docs/analysis.md for the limits.
"""

from __future__ import annotations

import math

import numpy as np

KEV_TO_J = 1.602176634e-16
PROTEIN_OVER_WATER = 1.15
GAUSSIAN_AREA_FACTOR = math.pi / (4.0 * math.log(2.0))
"""Area of a 2D Gaussian beam = 1.1331 x FWHM_h x FWHM_v."""

# NIST XCOM / Hubbell-Seltzer mass energy-absorption coefficients of water (cm^2/g).
_ENERGY_KEV = np.array([5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0])
_MU_EN_RHO_WATER = np.array([40.27, 23.28, 9.691, 4.944, 1.374, 0.5503, 0.1557])

DOSE_LIMIT_MGY = 20.0
"""Dose cap per crystal (shared/REFERENCE.md section 3)."""
CHARACTERISATION_SHARE = 0.05
"""Part of the cap kept for characterisation and centring exposures."""


def mass_energy_absorption(energy_kev: float) -> float:
    """Mass energy-absorption coefficient (cm^2/g) of a typical protein crystal."""
    if not 5.0 <= energy_kev <= 30.0:
        raise ValueError(f"energy {energy_kev} keV is outside the dose model's 5-30 keV range")
    log_mu = np.interp(math.log(energy_kev), np.log(_ENERGY_KEV), np.log(_MU_EN_RHO_WATER))
    return float(math.exp(log_mu)) * PROTEIN_OVER_WATER


def peak_fluence_ph_um2(
    flux_ph_s: float, exposure_s: float, beam_fwhm_um: tuple[float, float]
) -> float:
    """Peak photons per square micrometre of a Gaussian beam over an exposure."""
    h, v = _beam(beam_fwhm_um)
    return flux_ph_s * exposure_s / (GAUSSIAN_AREA_FACTOR * h * v)


def crystal_fluence_fraction(
    beam_fwhm_um: tuple[float, float], crystal_size_um: tuple[float, float] | None
) -> float:
    """Mean fluence over the crystal's cross-section / the beam's peak fluence (<= 1).

    ``crystal_size_um``: the crystal's extent across the beam (horizontal, vertical); each is
    clipped to the beam FWHM. None: 1 (the peak)."""
    if crystal_size_um is None:
        return 1.0
    h, v = _beam(beam_fwhm_um)
    a, b = (float(x) for x in crystal_size_um)
    if not (a > 0 and b > 0):
        raise ValueError(f"crystal size must be > 0 um, got {crystal_size_um}")
    return _box_mean(min(a, h), h) * _box_mean(min(b, v), v)


def dose_gy(
    flux_ph_s: float,
    exposure_s: float,
    beam_fwhm_um: tuple[float, float],
    energy_kev: float,
    crystal_size_um: tuple[float, float] | None = None,
) -> float:
    """Dose (Gy) of an exposure of ``exposure_s`` at ``flux_ph_s``: at the beam's peak, or
    averaged over the crystal's cross-section when its size is given (module docstring)."""
    if not (flux_ph_s >= 0 and exposure_s >= 0):
        raise ValueError(f"flux and exposure must be >= 0, got {flux_ph_s}, {exposure_s}")
    fluence_ph_um2 = peak_fluence_ph_um2(flux_ph_s, exposure_s, beam_fwhm_um)
    fluence_ph_cm2 = fluence_ph_um2 * crystal_fluence_fraction(beam_fwhm_um, crystal_size_um) * 1e8
    return fluence_ph_cm2 * energy_kev * KEV_TO_J * mass_energy_absorption(energy_kev) * 1e3


def dose_rate_mgy_s(
    flux_ph_s: float,
    beam_fwhm_um: tuple[float, float],
    energy_kev: float,
    crystal_size_um: tuple[float, float] | None = None,
) -> float:
    """Dose rate in MGy per second (peak, or over the crystal when its size is given)."""
    return dose_gy(flux_ph_s, 1.0, beam_fwhm_um, energy_kev, crystal_size_um) / 1e6


def collection_budget_mgy(
    used_mgy: float = 0.0,
    limit_mgy: float = DOSE_LIMIT_MGY,
    characterisation_share: float = CHARACTERISATION_SHARE,
) -> float:
    """Dose left for data collection: the cap less the characterisation share, less what
    the crystal already received beyond that share (never negative)."""
    if not used_mgy >= 0:
        raise ValueError(f"dose already absorbed must be >= 0 MGy, got {used_mgy}")
    if not (limit_mgy > 0 and 0 <= characterisation_share < 1):
        raise ValueError(
            f"need a dose limit > 0 and a characterisation share within 0..1, got "
            f"{limit_mgy} MGy, {characterisation_share}"
        )
    reserved = limit_mgy * characterisation_share
    return max(0.0, limit_mgy - reserved - max(0.0, used_mgy - reserved))


def _beam(beam_fwhm_um: tuple[float, float]) -> tuple[float, float]:
    h, v = (float(x) for x in beam_fwhm_um)
    if not (h > 0 and v > 0):
        raise ValueError(f"beam size must be > 0 um, got {beam_fwhm_um}")
    return h, v


def _box_mean(width: float, fwhm: float) -> float:
    """Mean of a unit-peak Gaussian of ``fwhm`` over a centred interval of ``width``."""
    half = width / 2.0 * 2.0 * math.sqrt(math.log(2.0)) / fwhm  # in units of sigma * sqrt(2)
    return math.sqrt(math.pi) / 2.0 * math.erf(half) / half
