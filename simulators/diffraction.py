"""Frame physics: what the detector records for one exposure at the goniometer's pose.

A frame is Poisson counts of: smooth air/solvent background (scaled by flux x exposure);
ice rings and salt spots when the loop is in the beam; Bragg spots of every crystal the beam
lights. A reflection is recorded on a frame when it crosses (rotation) or lies near
(still, effective width STILL_WIDTH_DEG) the Ewald sphere within the frame's omega range;
its share of the intensity is the fraction of its Gaussian rocking curve inside that range
(partiality). Intensity = the crystal's calibrated reference intensity (see
``simulators.reflections``) x dose per degree relative to the reference x partiality, where
the dose uses the mean photon density over the crystal (``simulators.illumination``).
Spots are pixel-integrated 2D Gaussians. Counts are clipped at the count cutoff (overloads);
pixels in module gaps are zero (see the mask). Beam along +z, detector normal to it at
``distance_mm``; pixel convention in ``simulators.detector_models``.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.special import ndtr

from simulators.background import (
    SALT_PHOTONS,
    SALT_ROCKING_SIGMA_DEG,
    SALT_SPOT_SIGMA_SCALE,
    PixelScattering,
    SaltReflections,
    SparseMap,
    diffuse_map,
    ice_map,
    pixel_scattering,
    salt_reflections,
)
from simulators.geometry import sample_to_lab
from simulators.illumination import (
    FILM_THICKNESS_UM,
    BeamProfile,
    crystal_body,
    loop_body,
    mean_beam_weighted_volume,
)
from simulators.poisson import CHUNK_PIXELS, PoissonSampler
from simulators.reflections import (
    MOSAIC_FWHM_TO_SIGMA,
    REFERENCE_EXPOSURE_S,
    REFERENCE_FLUX_PH_S,
    REFERENCE_OSCILLATION_DEG,
    CrystalModel,
    ReflectionTable,
    crystal_model,
    reference_photon_density_per_mm2_s,
    reflection_table,
)
from simulators.world import Crystal, Loop, Pin

STILL_WIDTH_DEG = 0.05
"""Omega range a still frame (or any frame narrower than this) records: beam divergence,
bandwidth and the finite size of mosaic blocks."""
MIN_SPOT_PHOTONS = 0.02
"""Reflections expected to give fewer photons than this on a frame are not drawn."""
FAINT_FALL_OFF = 1e-3
"""Reflection tables stop where the reference mean falls below this x the I/sigma = 1 level
(or at the detector corner, if that comes first)."""
MAX_SPOT_HALF_WIDTH_PX = 12


@dataclass(frozen=True, eq=False)
class FrameGeometry:
    """How the detector sees a frame: pixels, position, wavelength, mask, spot size, cutoff."""

    shape: tuple[int, int]
    pixel_size_mm: float
    distance_mm: float
    beam_centre_px: tuple[float, float]
    wavelength_a: float
    mask: np.ndarray
    """True where there is no pixel (module gaps)."""
    spot_sigma_px: float
    count_cutoff: int
    """Counts at and above this are overloads (the frame holds this value there)."""
    layout: str = ""
    """Names the pixel layout and mask (e.g. ``eiger2_4m/full``): part of the cache key."""

    @property
    def key(self) -> tuple[object, ...]:
        """Everything but the cutoff that fixes the per-pixel maps."""
        return (
            self.layout,
            self.shape,
            self.pixel_size_mm,
            self.distance_mm,
            self.beam_centre_px,
            self.wavelength_a,
        )


@dataclass(frozen=True)
class Exposure:
    """One frame's exposure: the pose at its start and end, time and beam at the sample."""

    pose_start: Mapping[str, float]
    pose_end: Mapping[str, float]
    exposure_s: float
    flux_ph_s: float
    """Photons per second at the sample (0: no beam or shutter closed)."""
    beam_size_um: tuple[float, float]


@dataclass(frozen=True)
class Frame:
    """A rendered frame and what went into it (the truth a spot finder is scored against)."""

    counts: np.ndarray
    """uint32 (rows, columns); gaps are 0, overloads hold the count cutoff."""
    overloads: int
    spot_xy_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    """(K, 2) x (column), y (row) of the Bragg spots drawn."""
    spot_photons: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(K,) expected photons of each spot (before noise)."""
    spot_d_a: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spot_crystal: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """(K,) index of each spot's crystal in ``pin.crystals``; -1 for salt."""
    lit_fraction: tuple[float, ...] = ()
    """Per crystal of the pin: mean photon density over it / the reference beam's peak
    density at full reference flux (1 = fully bathed in the reference beam)."""
    loop_in_beam: float = 0.0
    """Beam-weighted solvent film in the beam / film thickness (1 = film face-on, fully hit)."""


@dataclass(frozen=True)
class _Spots:
    x: np.ndarray
    y: np.ndarray
    photons: np.ndarray
    sigma_px: np.ndarray
    d_a: np.ndarray
    source: np.ndarray
    """Index of the crystal in the pin's list; -1 for salt."""

    @staticmethod
    def empty() -> _Spots:
        z = np.zeros(0)
        return _Spots(z, z, z, z, z, np.zeros(0, dtype=np.int64))

    @staticmethod
    def join(parts: list[_Spots]) -> _Spots:
        if not parts:
            return _Spots.empty()
        return _Spots(*(np.concatenate([getattr(p, f) for p in parts]) for f in _SPOT_FIELDS))


_SPOT_FIELDS = ("x", "y", "photons", "sigma_px", "d_a", "source")


class FrameRenderer:
    """Renders frames for one detector; keeps per-geometry maps, per-crystal reflection tables
    and the noise sampler between frames (one instance per detector, no globals)."""

    def __init__(
        self,
        seed: int | None = 0,
        beam_profile: str = "gaussian",
        max_cached_crystals: int = 8,
        threads: int | None = None,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.threads = threads if threads is not None else min(4, os.cpu_count() or 1)
        """Threads drawing the noise of large frames (1: none)."""
        self._executor: ThreadPoolExecutor | None = None
        self.beam_profile = beam_profile
        BeamProfile((1.0, 1.0), beam_profile)  # validates the profile name
        self._max_crystals = max_cached_crystals
        self._tables: OrderedDict[tuple[object, ...], tuple[CrystalModel, ReflectionTable]] = (
            OrderedDict()
        )
        self._pixels_key: tuple[object, ...] | None = None
        self._pixels: PixelScattering | None = None
        self._diffuse: np.ndarray | None = None
        self._ice: SparseMap | None = None
        self._sampler_key: tuple[object, ...] | None = None
        self._sampler: PoissonSampler | None = None
        self._salt: dict[tuple[object, ...], SaltReflections] = {}

    # --- public ------------------------------------------------------------------

    def render(self, geometry: FrameGeometry, exposure: Exposure, pin: Pin | None) -> Frame:
        """One frame of ``exposure`` of the mounted ``pin`` (None: nothing mounted)."""
        photons = max(exposure.flux_ph_s, 0.0) * max(exposure.exposure_s, 0.0)
        counts = self._background(geometry, photons)
        if photons <= 0:
            return Frame(counts=counts, overloads=0)
        beam = BeamProfile(
            (exposure.beam_size_um[0] * 1e-3, exposure.beam_size_um[1] * 1e-3), self.beam_profile
        )
        window = OmegaWindow.of(exposure)
        parts: list[_Spots] = []
        lit: list[float] = []
        loop_hit = 0.0
        touched: list[np.ndarray] = []
        if pin is not None and pin.present:
            if pin.loop is not None:
                loop_hit = self._loop_in_beam(pin.loop, exposure, beam)
                if loop_hit > 0:
                    touched.append(self._add_ice(counts, geometry, pin.loop, photons * loop_hit))
                    parts.append(self._salt_spots(geometry, pin.loop, exposure, window, loop_hit))
            for number, crystal in enumerate(pin.crystals):
                fraction = self._lit_fraction(crystal, exposure, beam)
                lit.append(fraction)
                if fraction > 0:
                    spots = self._crystal_spots(geometry, crystal, exposure, window, fraction)
                    parts.append(replace(spots, source=np.full(spots.x.size, number)))
        spots = _Spots.join(parts)
        touched.append(self._add_spots(counts, geometry, spots))
        overloads = self._clip(counts, geometry, touched)
        keep = spots.photons > 0
        return Frame(
            counts=counts,
            overloads=overloads,
            spot_xy_px=np.column_stack([spots.x[keep], spots.y[keep]]),
            spot_photons=spots.photons[keep],
            spot_d_a=spots.d_a[keep],
            spot_crystal=spots.source[keep].astype(np.int64),
            lit_fraction=tuple(lit),
            loop_in_beam=loop_hit,
        )

    def background_mean(self, geometry: FrameGeometry, photons: float) -> np.ndarray:
        """Expected air/solvent counts per pixel for ``photons`` incident (no ice, no spots)."""
        self._pixel_maps(geometry)
        assert self._diffuse is not None
        return self._diffuse * np.float32(max(photons, 0.0))

    def pixel_resolution_a(self, geometry: FrameGeometry) -> np.ndarray:
        """d-spacing (Angstrom) at each pixel centre."""
        with np.errstate(divide="ignore"):
            return 1.0 / self._pixel_maps(geometry).s_inv_a

    # --- background, ice, salt -----------------------------------------------------

    def _pixel_maps(self, geometry: FrameGeometry) -> PixelScattering:
        if self._pixels is None or self._pixels_key != geometry.key:
            self._pixels = pixel_scattering(
                geometry.shape,
                geometry.pixel_size_mm,
                geometry.distance_mm,
                geometry.beam_centre_px,
                geometry.wavelength_a,
                geometry.mask,
            )
            self._diffuse = diffuse_map(self._pixels)
            self._ice = ice_map(self._pixels)
            self._pixels_key = geometry.key
            self._sampler = None
            self._sampler_key = None
        return self._pixels

    def _background(self, geometry: FrameGeometry, photons: float) -> np.ndarray:
        self._pixel_maps(geometry)
        if photons <= 0:
            return np.zeros(geometry.shape, dtype=np.uint32)
        key = (geometry.key, photons)
        if self._sampler is None or self._sampler_key != key:
            assert self._diffuse is not None
            self._sampler = PoissonSampler(self._diffuse * np.float32(photons))
            self._sampler_key = key
        return self._sampler.sample(self.rng, self._pool(geometry))

    def _pool(self, geometry: FrameGeometry) -> ThreadPoolExecutor | None:
        """A thread pool for frames big enough to gain from one (the 4M), made once."""
        if self.threads <= 1 or geometry.shape[0] * geometry.shape[1] <= CHUNK_PIXELS:
            return None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="frame-noise")
        return self._executor

    def close(self) -> None:
        """Stop the noise threads (a later frame starts them again)."""
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def _add_ice(
        self, counts: np.ndarray, geometry: FrameGeometry, loop: Loop, photons: float
    ) -> np.ndarray:
        self._pixel_maps(geometry)
        ice = self._ice
        if loop.ice <= 0 or ice is None or ice.index.size == 0:
            return np.zeros(0, dtype=np.int64)
        draws = self.rng.poisson(ice.value * (photons * loop.ice))
        flat = counts.reshape(-1)
        flat[ice.index] += draws.astype(np.uint32)
        return ice.index

    def _loop_in_beam(self, loop: Loop, exposure: Exposure, beam: BeamProfile) -> float:
        body = loop_body(loop)
        weighted = mean_beam_weighted_volume(body, exposure.pose_start, exposure.pose_end, beam)
        return weighted / (FILM_THICKNESS_UM * 1e-3)

    def _salt_spots(
        self,
        geometry: FrameGeometry,
        loop: Loop,
        exposure: Exposure,
        window: OmegaWindow,
        loop_hit: float,
    ) -> _Spots:
        if not loop.salt:
            return _Spots.empty()
        key = (loop.centre_mm, loop.size_um, loop.plane_angle_deg)
        salt = self._salt.get(key)
        if salt is None:
            salt = self._salt[key] = salt_reflections(loop)
        sigma = np.full(salt.omega_deg.size, SALT_ROCKING_SIGMA_DEG)
        partiality, _ = window.partiality(salt.omega_deg, sigma)
        dose = loop_hit * exposure.flux_ph_s * exposure.exposure_s
        scale = dose / (REFERENCE_FLUX_PH_S * REFERENCE_EXPOSURE_S) * window.per_degree_ratio
        photons = SALT_PHOTONS * salt.relative_intensity * partiality * scale
        keep = photons >= MIN_SPOT_PHOTONS
        d = salt.d_a[keep]
        sin_theta = geometry.wavelength_a / (2.0 * d)
        with np.errstate(invalid="ignore"):
            radius_mm = geometry.distance_mm * np.tan(2.0 * np.arcsin(np.clip(sin_theta, 0, 1)))
        phi = salt.azimuth_rad[keep]
        x = geometry.beam_centre_px[0] + radius_mm * np.cos(phi) / geometry.pixel_size_mm
        y = geometry.beam_centre_px[1] - radius_mm * np.sin(phi) / geometry.pixel_size_mm
        ok = (sin_theta < 0.99) & _on_frame(x, y, geometry)
        n = int(ok.sum())
        return _Spots(
            x=x[ok],
            y=y[ok],
            photons=photons[keep][ok],
            sigma_px=np.full(n, geometry.spot_sigma_px * SALT_SPOT_SIGMA_SCALE),
            d_a=d[ok],
            source=np.full(n, -1),
        )

    # --- Bragg spots ---------------------------------------------------------------

    def _lit_fraction(self, crystal: Crystal, exposure: Exposure, beam: BeamProfile) -> float:
        """Mean photon density over the crystal / the reference beam's peak density."""
        body = crystal_body(crystal)
        weighted = mean_beam_weighted_volume(body, exposure.pose_start, exposure.pose_end, beam)
        density = exposure.flux_ph_s * weighted / body.volume_mm3
        return density / reference_photon_density_per_mm2_s()

    def _table(
        self, crystal: Crystal, geometry: FrameGeometry
    ) -> tuple[CrystalModel, ReflectionTable]:
        key = (
            tuple(crystal.position_mm),
            tuple(crystal.size_um),
            np.asarray(crystal.orientation, dtype=float).tobytes(),
            crystal.shape,
            crystal.strength,
            crystal.resolution_limit_a,
            crystal.mosaicity_deg,
            tuple(crystal.cell),
            geometry.wavelength_a,
            _corner_resolution_a(geometry),
        )
        hit = self._tables.get(key)
        if hit is not None:
            self._tables.move_to_end(key)
            return hit
        model = crystal_model(crystal)
        s_lim2 = 1.0 / crystal.resolution_limit_a**2
        s_faint2 = s_lim2 + 2.0 * math.log(1.0 / FAINT_FALL_OFF) / model.b_factor_a2
        d_min = max(1.0 / math.sqrt(s_faint2), _corner_resolution_a(geometry))
        table = reflection_table(crystal, model, geometry.wavelength_a, d_min)
        self._tables[key] = (model, table)
        while len(self._tables) > self._max_crystals:
            self._tables.popitem(last=False)
        return model, table

    def _crystal_spots(
        self,
        geometry: FrameGeometry,
        crystal: Crystal,
        exposure: Exposure,
        window: OmegaWindow,
        lit_fraction: float,
    ) -> _Spots:
        _, table = self._table(crystal, geometry)
        per_degree = lit_fraction * exposure.exposure_s / REFERENCE_EXPOSURE_S
        scale = per_degree * window.per_degree_ratio
        near = window.select(table.cross_omega_deg, 5.0 * table.narrow_sigma_deg)
        candidates = np.concatenate([near[~table.is_wide[near]], table.wide_crossings])
        if candidates.size == 0:
            return _Spots.empty()
        sigma = table.cross_sigma_deg[candidates]
        partiality, omega_c = window.partiality(table.cross_omega_deg[candidates], sigma)
        ref = table.cross_reflection[candidates]
        photons = table.photons[ref] * partiality * scale
        keep = photons >= MIN_SPOT_PHOTONS
        if not np.any(keep):
            return _Spots.empty()
        ref, photons, omega_c = ref[keep], photons[keep], omega_c[keep]
        # Where the scattered ray goes: at the crossing, or at the frame's nearest edge.
        omega = np.radians(np.clip(omega_c, window.start_deg, window.end_deg))
        r0 = table.r_sample[ref]
        cos_w, sin_w = np.cos(omega), np.sin(omega)
        r_lab = np.column_stack(
            [r0[:, 0], cos_w * r0[:, 1] - sin_w * r0[:, 2], sin_w * r0[:, 1] + cos_w * r0[:, 2]]
        )
        k = r_lab.copy()
        k[:, 2] += 1.0 / geometry.wavelength_a
        forward = k[:, 2] > 1e-9
        start, end = exposure.pose_start, exposure.pose_end
        mid_pose = {m: 0.5 * (v + end.get(m, v)) for m, v in start.items()}
        origin = sample_to_lab(np.asarray(crystal.position_mm), mid_pose)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            path = (geometry.distance_mm - origin[2]) / k[:, 2]
            x_mm = origin[0] + k[:, 0] * path
            y_mm = origin[1] + k[:, 1] * path
        x = geometry.beam_centre_px[0] + x_mm / geometry.pixel_size_mm
        y = geometry.beam_centre_px[1] - y_mm / geometry.pixel_size_mm
        on = forward & _on_frame(x, y, geometry)
        s = np.sqrt(table.s2[ref[on]])
        sin_theta = geometry.wavelength_a * s / 2.0
        # Mosaic blocks fan the diffracted beam out by ~ mosaic x 2 sin(theta).
        mosaic_rad = math.radians(crystal.mosaicity_deg * MOSAIC_FWHM_TO_SIGMA)
        spread_px = geometry.distance_mm / geometry.pixel_size_mm * mosaic_rad * 2.0 * sin_theta
        return _Spots(
            x=x[on],
            y=y[on],
            photons=photons[on],
            sigma_px=np.hypot(geometry.spot_sigma_px, spread_px),
            d_a=1.0 / s,
            source=np.zeros(s.size, dtype=np.int64),
        )

    # --- drawing -------------------------------------------------------------------

    def _add_spots(self, counts: np.ndarray, geometry: FrameGeometry, spots: _Spots) -> np.ndarray:
        """Add Poisson draws of pixel-integrated Gaussians; returns the flat indices touched."""
        if spots.photons.size == 0:
            return np.zeros(0, dtype=np.int64)
        rows, cols = geometry.shape
        half = int(min(math.ceil(3.5 * float(spots.sigma_px.max())), MAX_SPOT_HALF_WIDTH_PX))
        offsets = np.arange(-half, half + 1)
        col0 = np.floor(spots.x).astype(np.int64)
        row0 = np.floor(spots.y).astype(np.int64)
        cs = col0[:, None] + offsets[None, :]
        rs = row0[:, None] + offsets[None, :]
        sig = spots.sigma_px[:, None]
        wx = ndtr((cs + 1 - spots.x[:, None]) / sig) - ndtr((cs - spots.x[:, None]) / sig)
        wy = ndtr((rs + 1 - spots.y[:, None]) / sig) - ndtr((rs - spots.y[:, None]) / sig)
        mean = spots.photons[:, None, None] * wy[:, :, None] * wx[:, None, :]
        draws = self.rng.poisson(mean)
        rr = np.broadcast_to(rs[:, :, None], draws.shape)
        cc = np.broadcast_to(cs[:, None, :], draws.shape)
        ok = (draws > 0) & (rr >= 0) & (rr < rows) & (cc >= 0) & (cc < cols)
        flat_index = rr[ok] * cols + cc[ok]
        values = draws[ok]
        live = ~geometry.mask.reshape(-1)[flat_index]
        flat_index, values = flat_index[live], values[live]
        np.add.at(counts.reshape(-1), flat_index, values.astype(np.uint32))
        return flat_index

    def _clip(self, counts: np.ndarray, geometry: FrameGeometry, touched: list[np.ndarray]) -> int:
        """Clip at the count cutoff; returns the number of overloaded pixels."""
        cutoff = np.uint32(geometry.count_cutoff)
        sampler = self._sampler
        background_may_overload = sampler is not None and (
            sampler.max_mean + 10.0 * math.sqrt(sampler.max_mean) + 10.0 >= geometry.count_cutoff
        )
        if background_may_overload:
            over = counts >= cutoff
            n = int(over.sum())
            counts[over] = cutoff
            return n
        index = np.concatenate(touched) if touched else np.zeros(0, dtype=np.int64)
        if index.size == 0:
            return 0
        flat = counts.reshape(-1)
        over = index[flat[index] >= cutoff]
        flat[over] = cutoff
        return int(np.unique(over).size)


@dataclass(frozen=True)
class OmegaWindow:
    """A frame's omega range, widened to at least STILL_WIDTH_DEG for partiality."""

    start_deg: float
    end_deg: float
    low_deg: float
    high_deg: float

    @staticmethod
    def of(exposure: Exposure) -> OmegaWindow:
        a = float(exposure.pose_start["omega"])
        b = float(exposure.pose_end.get("omega", a))
        start, end = min(a, b), max(a, b)
        width = max(end - start, STILL_WIDTH_DEG)
        centre = 0.5 * (start + end)
        return OmegaWindow(start, end, centre - width / 2.0, centre + width / 2.0)

    @property
    def per_degree_ratio(self) -> float:
        """Reference oscillation / this window: converts dose per frame to dose per degree."""
        return REFERENCE_OSCILLATION_DEG / (self.high_deg - self.low_deg)

    def select(self, sorted_omega_deg: np.ndarray, margin_deg: float) -> np.ndarray:
        """Indices of crossings (omega in [0, 360), sorted) within the window +- margin."""
        low, high = self.low_deg - margin_deg, self.high_deg + margin_deg
        if high - low >= 360.0:
            return np.arange(sorted_omega_deg.size)
        parts = []
        base = math.floor(low / 360.0) * 360.0
        for shift in (base, base + 360.0):
            i0 = np.searchsorted(sorted_omega_deg, low - shift, side="left")
            i1 = np.searchsorted(sorted_omega_deg, high - shift, side="right")
            if i1 > i0:
                parts.append(np.arange(i0, i1))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def partiality(
        self, omega_deg: np.ndarray, sigma_deg: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fraction of each rocking curve inside the window, and the crossing's omega moved
        to the turn nearest the window (for the spot position)."""
        centre = 0.5 * (self.low_deg + self.high_deg)
        omega = omega_deg + 360.0 * np.round((centre - omega_deg) / 360.0)
        high = ndtr((self.high_deg - omega) / sigma_deg)
        fraction = high - ndtr((self.low_deg - omega) / sigma_deg)
        return fraction, omega


def _on_frame(
    x: np.ndarray, y: np.ndarray, geometry: FrameGeometry, margin: float = 3.0
) -> np.ndarray:
    """Spot centres on the frame or close enough to its edge to light a pixel of it."""
    rows, cols = geometry.shape
    with np.errstate(invalid="ignore"):
        return (x > -margin) & (x < cols + margin) & (y > -margin) & (y < rows + margin)


def _corner_resolution_a(geometry: FrameGeometry) -> float:
    """The best d-spacing any pixel of the frame sees."""
    rows, cols = geometry.shape
    x, y = geometry.beam_centre_px
    dx = max(x, cols - x) * geometry.pixel_size_mm
    dy = max(y, rows - y) * geometry.pixel_size_mm
    two_theta = math.atan2(math.hypot(dx, dy), geometry.distance_mm)
    return geometry.wavelength_a / (2.0 * math.sin(two_theta / 2.0))
