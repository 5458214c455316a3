"""Diffuse scatter reaching the detector: air and solvent background, ice rings, salt spots.

Intensities are photons per steradian per incident photon as functions of ``s = 1/d``
(1/Angstrom), so they hold for any detector; :func:`pixel_map` turns them into expected
counts per pixel by each pixel's solid angle. Numbers are modelling assumptions chosen to
give realistic counts (a 4 ms frame at 2e12 ph/s: ~0.05-0.2 counts per 75 um pixel).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from simulators.world import ICE_RING_D_A, Loop

AIR_PER_SR = 1.5e-5
"""Air, cryo-stream and window scatter, flat part."""
LOW_ANGLE_S = 0.03
"""1/Angstrom: below this the air scatter rises as 1/s^2 (capped at s = LOW_ANGLE_FLOOR_S)."""
LOW_ANGLE_FLOOR_S = 0.02
SOLVENT_RINGS: tuple[tuple[float, float, float], ...] = (
    (0.30, 0.06, 6.0e-5),
    (0.47, 0.09, 2.5e-5),
)
"""(s centre, s sigma, peak per sr) of the broad water/cryo-solution rings (~3.3 and ~2.1 A)."""
INCOHERENT_PER_SR_AT_HALF = 1.0e-5
"""Compton and other incoherent scatter at s = 0.5, rising linearly with s."""

ICE_RING_WEIGHTS: tuple[float, ...] = (1.0, 0.8, 1.0, 0.35, 0.6, 0.4, 0.15, 0.3)
"""Relative strengths of the hexagonal ice rings of ICE_RING_D_A."""
ICE_PEAK_PER_SR = 3.0e-4
"""Peak of the strongest ice ring for heavy ice (loop.ice = 1) and the loop face-on in the beam."""
ICE_RING_SIGMA_S = 0.002
"""Width of an ice ring in s (1/Angstrom): sharp-ish, a pixel or two on the small detector."""

SALT_D_A: tuple[float, ...] = (3.26, 2.82, 1.99, 1.70, 1.63)
"""d-spacings of salt (NaCl-like) reflections."""
SALT_REFLECTIONS = 1000
"""Salt reflections per loop, at random omega over a turn: a few on each still frame."""
SALT_ROCKING_SIGMA_DEG = 0.4
SALT_PHOTONS = 1.0e6
"""Fully recorded photons of one salt reflection at the reference dose per degree (very strong)."""
SALT_SPOT_SIGMA_SCALE = 0.7
"""Salt spots are sharper than protein spots (tiny, well-ordered crystals)."""


def diffuse_per_sr(s: np.ndarray) -> np.ndarray:
    """Air + solvent + incoherent scatter (photons / sr / incident photon) at ``s`` (1/A)."""
    s = np.asarray(s, dtype=np.float64)
    s_floor = np.maximum(s, LOW_ANGLE_FLOOR_S)
    out = AIR_PER_SR * (1.0 + (LOW_ANGLE_S / s_floor) ** 2)
    for centre, sigma, peak in SOLVENT_RINGS:
        out = out + peak * np.exp(-0.5 * ((s - centre) / sigma) ** 2)
    return out + INCOHERENT_PER_SR_AT_HALF * (s / 0.5)


def ice_per_sr(s: np.ndarray) -> np.ndarray:
    """Ice rings (photons / sr / incident photon) for heavy ice fully in the beam."""
    s = np.asarray(s, dtype=np.float64)
    out = np.zeros_like(s)
    for d, weight in zip(ICE_RING_D_A, ICE_RING_WEIGHTS, strict=True):
        out += weight * np.exp(-0.5 * ((s - 1.0 / d) / ICE_RING_SIGMA_S) ** 2)
    return ICE_PEAK_PER_SR * out


@dataclass(frozen=True)
class PixelScattering:
    """Per-pixel scattering geometry of one detector setting (float32 maps, frame shape)."""

    s_inv_a: np.ndarray
    """s = 1/d at each pixel centre."""
    solid_angle_sr: np.ndarray
    """Solid angle of each pixel seen from the sample (0 where there is no pixel)."""


def pixel_scattering(
    shape: tuple[int, int],
    pixel_size_mm: float,
    distance_mm: float,
    beam_centre_px: tuple[float, float],
    wavelength_a: float,
    mask: np.ndarray,
) -> PixelScattering:
    """1/d and solid angle of every pixel of a flat detector normal to the beam."""
    rows, cols = shape
    x_mm = ((np.arange(cols) + 0.5 - beam_centre_px[0]) * pixel_size_mm).astype(np.float32)
    y_mm = ((np.arange(rows) + 0.5 - beam_centre_px[1]) * pixel_size_mm).astype(np.float32)
    r2 = x_mm[None, :] ** 2 + y_mm[:, None] ** 2
    d2 = np.float32(distance_mm) ** 2
    cos_2theta = np.sqrt(d2 / (d2 + r2))
    sin_theta = np.sqrt((1.0 - cos_2theta) / 2.0)
    s_map = (2.0 * sin_theta / wavelength_a).astype(np.float32)
    omega = (pixel_size_mm**2 / d2) * cos_2theta**3
    omega[mask] = 0.0
    return PixelScattering(s_inv_a=s_map, solid_angle_sr=omega.astype(np.float32))


def diffuse_map(pixels: PixelScattering) -> np.ndarray:
    """Expected background counts per pixel per incident photon (air + solvent)."""
    return (diffuse_per_sr(pixels.s_inv_a) * pixels.solid_angle_sr).astype(np.float32)


@dataclass(frozen=True)
class SparseMap:
    """Non-negligible pixels of a map: flat indices and values (ice rings cover few pixels)."""

    index: np.ndarray
    value: np.ndarray


def ice_map(pixels: PixelScattering) -> SparseMap:
    """Expected ice-ring counts per pixel per incident photon for heavy ice, face-on."""
    values = (ice_per_sr(pixels.s_inv_a) * pixels.solid_angle_sr).ravel()
    keep = np.flatnonzero(values > values.max() * 1e-3) if values.size else values
    return SparseMap(index=keep.astype(np.int64), value=values[keep].astype(np.float64))


@dataclass(frozen=True)
class SaltReflections:
    """The salt crystallites of one loop: where (d, azimuth) and when (omega) they diffract."""

    d_a: np.ndarray
    azimuth_rad: np.ndarray
    omega_deg: np.ndarray
    relative_intensity: np.ndarray


def salt_reflections(loop: Loop) -> SaltReflections:
    """Salt reflections of ``loop``, drawn from a generator seeded by the loop itself."""
    seed = zlib.crc32(repr((loop.centre_mm, loop.size_um, loop.plane_angle_deg)).encode())
    rng = np.random.default_rng([seed, 7])
    n = SALT_REFLECTIONS
    return SaltReflections(
        d_a=rng.choice(np.asarray(SALT_D_A), size=n),
        azimuth_rad=rng.uniform(0.0, 2.0 * np.pi, size=n),
        omega_deg=rng.uniform(0.0, 360.0, size=n),
        relative_intensity=rng.exponential(1.0, size=n),
    )
