"""A crystal's reflections: reciprocal lattice, where they diffract, and how strong they are.

Intensity model. A reflection's mean fully recorded intensity (photons) for the crystal
fully bathed at the *reference dose per degree* (the default beam's peak photon density,
2e12 ph/s in 20 um FWHM, rotating 1 deg/s, i.e. 0.1 s per 0.1 deg frame) is
``A * exp(-B s^2 / 2)``, with ``A`` proportional to strength x crystal volume and ``B``
chosen so that mean I/sigma = 1 at ``resolution_limit_a`` (background of the reference
spot footprint included). Each reflection multiplies this by an acentric Wilson draw
(exponential, mean 1) seeded by the crystal and its Friedel-merged hkl, so the same
reflection has the same intensity on every frame. Symmetry equivalents other than Friedel
mates and systematic absences are not modelled.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from simulators.background import diffuse_per_sr
from simulators.render_kernels import classify_crossings, ewald_crossings, lattice
from simulators.world import Crystal

REFERENCE_FLUX_PH_S = 2.0e12
REFERENCE_BEAM_FWHM_MM = 0.020
REFERENCE_EXPOSURE_S = 0.1
REFERENCE_OSCILLATION_DEG = 0.1
LOW_ANGLE_PHOTONS_50UM = 3.0e5
"""A: mean fully recorded low-angle intensity of a 50 um sphere of strength 1 at the reference
dose per degree. The Darwin formula gives ~9e5 for lysozyme (small cell); a typical protein
with a larger cell gives fewer photons per reflection."""
REFERENCE_VOLUME_MM3 = math.pi / 6.0 * 0.05**3
REFERENCE_SPOT_SOLID_ANGLE_SR = 3.5e-5
"""Background footprint of a spot for the I/sigma calibration: 4 pi (0.8 px)^2 pixels of
0.2 mm at 95 mm (the small detector at its default distance)."""
REFERENCE_FRAMES_PER_SPOT = 2.0
"""A fully recorded reflection spans about two 0.1 deg frames of background."""
B_LIMITS_A2 = (5.0, 300.0)
MOSAIC_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
BEAM_ROCKING_SIGMA_DEG = 0.01
"""Divergence and bandwidth added to the mosaic spread (in quadrature)."""
MAX_ROCKING_SIGMA_DEG = 5.0
"""Reflections near the rotation axis: their rocking width (Lorentz) is capped here."""
MAX_REFLECTIONS = 3_000_000


def reference_photon_density_per_mm2_s() -> float:
    """Peak photon density (ph/s/mm^2) of the reference beam: 2e12 ph/s, 20 um FWHM Gaussian."""
    return REFERENCE_FLUX_PH_S * 4.0 * math.log(2.0) / (math.pi * REFERENCE_BEAM_FWHM_MM**2)


def reciprocal_matrix(cell: tuple[float, float, float, float, float, float]) -> np.ndarray:
    """B: columns are a*, b*, c* (1/Angstrom) in the crystal's Cartesian frame (a along x,
    b in the xy plane); the reciprocal vector of hkl is ``B @ hkl``."""
    a, b, c = cell[:3]
    al, be, ga = (math.radians(v) for v in cell[3:])
    cy = (math.cos(al) - math.cos(be) * math.cos(ga)) / math.sin(ga)
    cz2 = 1.0 - math.cos(be) ** 2 - cy**2
    if cz2 <= 0:
        raise ValueError(f"impossible unit cell {cell}: its angles do not close")
    real = np.array(
        [
            [a, b * math.cos(ga), c * math.cos(be)],
            [0.0, b * math.sin(ga), c * cy],
            [0.0, 0.0, c * math.sqrt(cz2)],
        ]
    )
    return np.linalg.inv(real).T


def crystal_seed(crystal: Crystal) -> int:
    """A stable seed for a crystal's random draws (same crystal, same seed, every process)."""
    key = (
        tuple(round(float(v), 9) for v in crystal.position_mm),
        tuple(round(float(v), 6) for v in crystal.size_um),
        tuple(round(float(v), 6) for v in crystal.cell),
    )
    return zlib.crc32(repr(key).encode())


def volume_mm3(crystal: Crystal) -> float:
    a, b, c = (float(v) * 1e-3 for v in crystal.size_um)
    return a * b * c if crystal.shape == "box" else math.pi / 6.0 * a * b * c


def background_under_spot(s_inv_a: float, dose_ratio: float = 1.0) -> float:
    """Background photons under a fully recorded spot at the reference setting x dose ratio."""
    photons = REFERENCE_FLUX_PH_S * REFERENCE_EXPOSURE_S * REFERENCE_FRAMES_PER_SPOT
    per_sr = float(diffuse_per_sr(np.asarray(s_inv_a)))
    return dose_ratio * photons * per_sr * REFERENCE_SPOT_SOLID_ANGLE_SR


def intensity_at_i_sigma_1(s_inv_a: float, dose_ratio: float = 1.0) -> float:
    """Photons I with I / sqrt(I + background) = 1 at ``s``."""
    b = background_under_spot(s_inv_a, dose_ratio)
    return 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * b))


@dataclass(frozen=True)
class CrystalModel:
    """The diffraction scale of one crystal, calibrated to its ``resolution_limit_a``."""

    low_angle_photons: float
    """A: mean fully recorded intensity at s -> 0, fully bathed, reference dose per degree."""
    b_factor_a2: float
    volume_mm3: float
    calibrated: bool
    """False if B had to be clamped (the truth's resolution limit cannot be met)."""

    def mean_photons(self, s_inv_a: np.ndarray) -> np.ndarray:
        return self.low_angle_photons * np.exp(-0.5 * self.b_factor_a2 * np.square(s_inv_a))

    def resolution_at_dose_a(self, dose_ratio: float) -> float:
        """d (Angstrom) where mean I/sigma = 1 for fully recorded reflections at ``dose_ratio``
        x the reference dose per degree (fully bathed): the truth a resolution estimate meets."""
        if dose_ratio <= 0:
            return math.inf

        def i_over_sigma(s: float) -> float:
            i = dose_ratio * float(self.mean_photons(np.asarray(s)))
            return i / math.sqrt(i + background_under_spot(s, dose_ratio))

        low, high = 1e-3, 2.0
        if i_over_sigma(low) < 1.0:
            return math.inf
        if i_over_sigma(high) >= 1.0:
            return 1.0 / high
        for _ in range(60):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if i_over_sigma(mid) >= 1.0 else (low, mid)
        return 1.0 / low


def crystal_model(crystal: Crystal) -> CrystalModel:
    """A and B of a crystal (see the module docstring)."""
    if not crystal.resolution_limit_a > 0:
        raise ValueError(
            f"crystal resolution_limit_a must be > 0, got {crystal.resolution_limit_a}"
        )
    volume = volume_mm3(crystal)
    a = LOW_ANGLE_PHOTONS_50UM * max(crystal.strength, 0.0) * volume / REFERENCE_VOLUME_MM3
    s_lim = 1.0 / crystal.resolution_limit_a
    i1 = intensity_at_i_sigma_1(s_lim)
    wanted = 2.0 * math.log(a / i1) / s_lim**2 if a > i1 else -math.inf
    b = min(max(wanted, B_LIMITS_A2[0]), B_LIMITS_A2[1])
    return CrystalModel(
        low_angle_photons=a, b_factor_a2=b, volume_mm3=volume, calibrated=b == wanted
    )


def wilson_draws(seed: int, hkl: np.ndarray) -> np.ndarray:
    """Exponential(1) draws, one per reflection, equal for h and -h and independent of order."""
    h = hkl.astype(np.int64)
    first = np.where(h[:, 0] != 0, h[:, 0], np.where(h[:, 1] != 0, h[:, 1], h[:, 2]))
    h = np.where((first < 0)[:, None], -h, h) + 1024
    key = (h[:, 0] << 22 | h[:, 1] << 11 | h[:, 2]).astype(np.uint64)
    x = key ^ np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64)
    # splitmix64 finaliser: a good hash of (seed, hkl) in vectorised uint64 arithmetic.
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    u = ((x >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    return -np.log(u)


@dataclass(frozen=True)
class CrossingClasses:
    """The passes of a table through the Ewald sphere grouped by rocking width (class c:
    sigma within WIDTH_CLASS_FACTOR^c and WIDTH_CLASS_FACTOR^(c+1) of the narrowest) and, in
    each class, by omega bin (OMEGA_BINS over a turn), so that a frame looks only at the
    passes of each class within a few of the class's widths of its window (most passes are
    narrow, a few near the rotation axis are very wide). Arrays hold the passes in that
    order."""

    bin_starts: np.ndarray
    """(C, OMEGA_BINS + 1) first pass of each bin of each class, then the class's end."""
    max_sigma_deg: np.ndarray
    """(C,) widest rocking curve of each class."""
    omega_deg: np.ndarray
    """Omega in [0, 360) where the pass happens."""
    sigma_deg: np.ndarray
    """Rocking width (sigma, deg) of the pass: mosaic spread x Lorentz factor."""
    reflection: np.ndarray
    """Index of the pass's reflection."""
    photons: np.ndarray
    """Fully recorded photons of the pass's reflection (the table's ``photons``)."""

    @cached_property
    def log_photons(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.photons)


@dataclass(frozen=True)
class ReflectionTable:
    """Every reflection of a crystal to ``d_min_a`` at one wavelength, and its two passes
    through the Ewald sphere during a turn of omega."""

    hkl: np.ndarray
    """(N, 3) int32."""
    r_sample: np.ndarray
    """(N, 3) reciprocal vectors in the sample frame (1/Angstrom): lab frame at omega = 0."""
    s2: np.ndarray
    """(N,) 1/d^2."""
    photons: np.ndarray
    """(N,) fully recorded photons at the reference dose per degree, fully bathed
    (model mean x Wilson draw)."""
    by_width: CrossingClasses
    """The passes (M of them), grouped for rendering."""
    d_min_a: float
    wavelength_a: float

    @cached_property
    def _by_omega(self) -> np.ndarray:
        return np.argsort(self.by_width.omega_deg, kind="stable")

    @property
    def cross_omega_deg(self) -> np.ndarray:
        """(M,) omega in [0, 360) where a reflection lies on the Ewald sphere, sorted."""
        return self.by_width.omega_deg[self._by_omega]

    @property
    def cross_sigma_deg(self) -> np.ndarray:
        """(M,) rocking width (sigma, deg) of each pass, in ``cross_omega_deg`` order."""
        return self.by_width.sigma_deg[self._by_omega]

    @property
    def cross_reflection(self) -> np.ndarray:
        """(M,) index of the reflection of each pass, in ``cross_omega_deg`` order."""
        return self.by_width.reflection[self._by_omega]


WIDTH_CLASS_FACTOR = 1.5
"""Rocking widths of one class of passes span at most this factor."""
OMEGA_BINS = 3600
"""Omega bins over a turn of each class of passes."""


def reflection_table(
    crystal: Crystal, model: CrystalModel, wavelength_a: float, d_min_a: float
) -> ReflectionTable:
    """Reflections of ``crystal`` with d >= ``d_min_a`` (raised if there would be too many),
    and their passes through the Ewald sphere (compiled, ``simulators.render_kernels``)."""
    b_matrix = reciprocal_matrix(crystal.cell)
    volume_cell = 1.0 / abs(np.linalg.det(b_matrix))
    s_max = 1.0 / d_min_a
    estimate = 4.0 / 3.0 * math.pi * s_max**3 * volume_cell
    if estimate > MAX_REFLECTIONS:
        s_max *= (MAX_REFLECTIONS / estimate) ** (1.0 / 3.0)
    real = np.linalg.inv(b_matrix.T)  # columns: real axes a, b, c (Angstrom)
    limits = np.array([math.floor(s_max * np.linalg.norm(real[:, i])) for i in range(3)])
    u = np.asarray(crystal.orientation, dtype=float)
    seed_word = np.uint64(crystal_seed(crystal) * 0x9E3779B97F4A7C15 % 2**64)
    hkl, r, s2, photons = lattice(
        np.ascontiguousarray(b_matrix),
        np.ascontiguousarray(u @ b_matrix),
        limits.astype(np.int64),
        s_max,
        seed_word,
        model.low_angle_photons,
        model.b_factor_a2,
    )
    omega, sigma, reflection = ewald_crossings(
        r,
        s2,
        wavelength_a,
        crystal.mosaicity_deg * MOSAIC_FWHM_TO_SIGMA,
        BEAM_ROCKING_SIGMA_DEG,
        MAX_ROCKING_SIGMA_DEG,
    )
    starts, max_sigma, omega, sigma, reflection, pass_photons = classify_crossings(
        omega, sigma, reflection, photons, WIDTH_CLASS_FACTOR, OMEGA_BINS
    )
    return ReflectionTable(
        hkl=hkl,
        r_sample=r,
        s2=s2,
        photons=photons,
        by_width=CrossingClasses(
            bin_starts=starts,
            max_sigma_deg=max_sigma,
            omega_deg=omega,
            sigma_deg=sigma,
            reflection=reflection,
            photons=pass_photons,
        ),
        d_min_a=1.0 / s_max,
        wavelength_a=wavelength_a,
    )
