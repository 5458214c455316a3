"""Absorbed dose from flux, beam size, exposure and energy (a RADDOSE-like first estimate).

Model: dose (Gy) = fluence (photons / cm^2) x photon energy (J) x mass energy-absorption
coefficient (cm^2/g) x 1000 (g -> kg), with the peak fluence of a Gaussian beam
(photons / (1.133 x FWHM_h x FWHM_v)), which is never below the dose any part of the
crystal receives. The coefficient is that of water (NIST) x 1.15 for a typical protein
crystal with sulphur and solvent salts, interpolated log-log. See docs/analysis.md.
"""

from __future__ import annotations

import math

import numpy as np

KEV_TO_J = 1.602176634e-16
PROTEIN_OVER_WATER = 1.15

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
    h, v = beam_fwhm_um
    if h <= 0 or v <= 0:
        raise ValueError(f"beam size must be > 0 um, got {beam_fwhm_um}")
    return flux_ph_s * exposure_s / (1.1331 * h * v)


def dose_gy(
    flux_ph_s: float,
    exposure_s: float,
    beam_fwhm_um: tuple[float, float],
    energy_kev: float,
) -> float:
    """Peak dose (Gy) of an exposure of ``exposure_s`` at ``flux_ph_s``."""
    if flux_ph_s < 0 or exposure_s < 0:
        raise ValueError(f"flux and exposure must be >= 0, got {flux_ph_s}, {exposure_s}")
    fluence_ph_cm2 = peak_fluence_ph_um2(flux_ph_s, exposure_s, beam_fwhm_um) * 1e8
    return fluence_ph_cm2 * energy_kev * KEV_TO_J * mass_energy_absorption(energy_kev) * 1e3


def dose_rate_mgy_s(
    flux_ph_s: float, beam_fwhm_um: tuple[float, float], energy_kev: float
) -> float:
    """Peak dose rate in MGy per second."""
    return dose_gy(flux_ph_s, 1.0, beam_fwhm_um, energy_kev) / 1e6


def collection_budget_mgy(
    used_mgy: float = 0.0,
    limit_mgy: float = DOSE_LIMIT_MGY,
    characterisation_share: float = CHARACTERISATION_SHARE,
) -> float:
    """Dose left for data collection: the cap less the characterisation share, less what
    the crystal already received beyond that share (never negative)."""
    reserved = limit_mgy * characterisation_share
    return max(0.0, limit_mgy - reserved - max(0.0, used_mgy - reserved))
