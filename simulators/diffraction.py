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
from collections import OrderedDict, deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

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
from simulators.illumination import (
    FILM_THICKNESS_UM,
    BeamProfile,
    Body,
    beam_weighted_volume,
    crystal_body,
    loop_body,
    sub_poses,
)
from simulators.poisson import CHUNK_PIXELS, PoissonSampler, frame_seed
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
from simulators.render_kernels import (
    add_at,
    add_spots,
    alias_table,
    clip_at,
    poisson_draw,
    scatter_photons_at,
    select_crossings,
    spot_positions,
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
CANDIDATE_SIGMAS = 6.0
"""A pass through the Ewald sphere is looked at on frames within this many of its rocking
widths (sigma) of it; beyond, its share of the rocking curve is below 1e-9."""


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

    @cached_property
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
    loop_in_beam: float | None = 0.0
    """Beam-weighted solvent film in the beam / film thickness (1 = film face-on, fully hit);
    None when not worked out (a loop without ice or salt shows nothing on a frame)."""


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
        if len(parts) == 1:
            return parts[0]
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
        prefetch: int = 2,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.threads = threads if threads is not None else min(4, os.cpu_count() or 1)
        """Threads drawing the noise of large frames (1: none)."""
        self._executor: ThreadPoolExecutor | None = None
        self.beam_profile = beam_profile
        BeamProfile((1.0, 1.0), beam_profile)  # validates the profile name
        self._max_crystals = max_cached_crystals
        self._tables: OrderedDict[
            tuple[object, ...], tuple[CrystalModel, ReflectionTable, float]
        ] = OrderedDict()
        """Per crystal: its model, its reflection table and the d_min the table was made to."""
        self._pixels_key: tuple[object, ...] | None = None
        self._pixels: PixelScattering | None = None
        self._diffuse: np.ndarray | None = None
        self._ice: SparseMap | None = None
        self._sampler_key: tuple[object, ...] | None = None
        self._sampler: PoissonSampler | None = None
        self._samplers: OrderedDict[tuple[object, ...], PoissonSampler] = OrderedDict()
        self.prefetch = prefetch
        """Background frames drawn ahead on a thread of their own (0: none, in the caller)."""
        self._prefetcher: ThreadPoolExecutor | None = None
        self._ahead: deque[Future[np.ndarray]] = deque()
        self._series_base = 0
        self._series_next = 0
        self._salt: dict[tuple[object, ...], SaltReflections] = {}
        self._bodies: dict[tuple[object, ...], Body] = {}
        self._ice_samplers: OrderedDict[tuple[object, ...], PoissonSampler] = OrderedDict()
        self._ice_alias: np.ndarray | None = None
        self._weighted: OrderedDict[tuple[object, ...], float] = OrderedDict()

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
        loop_hit: float | None = 0.0
        touched: list[np.ndarray | None] = []
        if pin is not None and pin.present:
            if pin.loop is not None and not (pin.loop.ice > 0 or pin.loop.salt):
                loop_hit = None  # nothing of the loop shows: not worth the integral
            elif pin.loop is not None:
                loop_hit = self._loop_in_beam(pin.loop, exposure, beam)
                if loop_hit > 0:
                    touched.append(self._add_ice(counts, geometry, pin.loop, photons * loop_hit))
                    parts.append(self._salt_spots(geometry, pin.loop, exposure, window, loop_hit))
            for number, crystal in enumerate(pin.crystals):
                fraction = self._lit_fraction(crystal, exposure, beam)
                lit.append(fraction)
                if fraction > 0:
                    parts.append(
                        self._crystal_spots(geometry, crystal, exposure, window, fraction, number)
                    )
        spots = _Spots.join(parts)
        touched.append(self._add_spots(counts, geometry, spots))
        overloads = self._clip(counts, geometry, touched)
        return Frame(
            counts=counts,
            overloads=overloads,
            spot_xy_px=np.column_stack([spots.x, spots.y]),
            spot_photons=spots.photons,
            spot_d_a=spots.d_a,
            spot_crystal=spots.source,
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
            self._ice_alias = None
            self._pixels_key = geometry.key
            self._sampler = None
            self._sampler_key = None
        return self._pixels

    def _background(self, geometry: FrameGeometry, photons: float) -> np.ndarray:
        """Poisson draws of the air/solvent background. The background of a series is the
        same map frame after frame, so the next frames' draws are made ahead on a thread of
        their own (``prefetch``) while this one gets its spots; frame k of a series uses
        seed ``frame_seed(base, k)`` (``base`` from the renderer's generator when the map
        changes), whichever thread draws it."""
        self._pixel_maps(geometry)
        if photons <= 0:
            return np.zeros(geometry.shape, dtype=np.uint32)
        key = (geometry.key, photons)
        if self._sampler is None or self._sampler_key != key:
            self._switch_background(key, geometry, photons)
        sampler = self._sampler
        assert sampler is not None
        pool = self._pool(geometry)
        if self.prefetch <= 0:
            counts = sampler.sample_seeded(frame_seed(self._series_base, self._series_next), pool)
            self._series_next += 1
            return counts
        if self._prefetcher is None:
            self._prefetcher = ThreadPoolExecutor(1, thread_name_prefix="frame-background")
        while len(self._ahead) < self.prefetch + 1:
            seed = frame_seed(self._series_base, self._series_next)
            self._ahead.append(self._prefetcher.submit(sampler.sample_seeded, seed, pool))
            self._series_next += 1
        counts = self._ahead.popleft().result()
        seed = frame_seed(self._series_base, self._series_next)
        self._ahead.append(self._prefetcher.submit(sampler.sample_seeded, seed, pool))
        self._series_next += 1
        return counts

    def _switch_background(
        self, key: tuple[object, ...], geometry: FrameGeometry, photons: float
    ) -> None:
        """A new background map: its sampler (kept for when the map comes back) and a new
        series of seeds; draws made ahead for the old map are dropped."""
        for future in self._ahead:
            future.cancel()
        self._ahead.clear()
        sampler = self._samplers.get(key)
        if sampler is None:
            assert self._diffuse is not None
            sampler = PoissonSampler(self._diffuse * np.float32(photons))
            self._samplers[key] = sampler
            while len(self._samplers) > 3:
                self._samplers.popitem(last=False)
        self._samplers.move_to_end(key)
        self._sampler = sampler
        self._sampler_key = key
        self._series_base = int(self.rng.integers(0, 2**63))
        self._series_next = 0

    def _pool(self, geometry: FrameGeometry) -> ThreadPoolExecutor | None:
        """A thread pool for frames big enough to gain from one (the 4M), made once."""
        if self.threads <= 1 or geometry.shape[0] * geometry.shape[1] <= CHUNK_PIXELS:
            return None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="frame-noise")
        return self._executor

    def close(self) -> None:
        """Stop the noise threads and drop the draws made ahead (a later frame starts them
        again; samplers and tables stay cached)."""
        for future in self._ahead:
            future.cancel()
        self._ahead.clear()
        self._sampler = None
        self._sampler_key = None
        if self._prefetcher is not None:
            self._prefetcher.shutdown()
            self._prefetcher = None
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
        scale = photons * loop.ice
        seed = int(self.rng.integers(0, 2**63))
        # Poisson(value x scale) = Poisson(value x level) + Poisson(value x (scale - level)):
        # the level (5 % steps below the scale) has a sampler kept for the next frames, the
        # rest (< 5 %) is spread as a Poisson total over the alias table of the ring values.
        step = math.log(1.05)
        level_index = math.floor(math.log(scale) / step)
        level = math.exp(level_index * step)
        if level > scale:
            level_index -= 1
            level = math.exp(level_index * step)
        key = (geometry.key, level_index)
        sampler = self._ice_samplers.get(key)
        if sampler is None:
            sampler = self._ice_samplers[key] = PoissonSampler(ice.value * level)
            if len(self._ice_samplers) > 32:
                self._ice_samplers.popitem(last=False)
        flat = counts.reshape(-1)
        add_at(flat, ice.index, sampler.sample_seeded(seed))
        rest = float(ice.value.sum()) * (scale - level)
        if rest > 0:
            if self._ice_alias is None:
                self._ice_alias = alias_table(ice.value)
            n_rest = poisson_draw(rest, np.uint64(frame_seed(seed, 0)))
            scatter_photons_at(
                n_rest, self._ice_alias, ice.index, np.uint64(frame_seed(seed, 1)), flat
            )
        return ice.index

    def _loop_in_beam(self, loop: Loop, exposure: Exposure, beam: BeamProfile) -> float:
        key = ("loop", loop.centre_mm, loop.size_um, loop.plane_angle_deg)
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = loop_body(loop)
        weighted = self._mean_weighted(key, body, exposure, beam)
        return weighted / (FILM_THICKNESS_UM * 1e-3)

    def _mean_weighted(
        self, key: tuple[object, ...], body: Body, exposure: Exposure, beam: BeamProfile
    ) -> float:
        """``mean_beam_weighted_volume`` of a body over the frame's motion, with the value
        at each sub-pose kept for the next frames (a rotation frame starts where the one
        before it ended)."""
        poses, weights = sub_poses(exposure.pose_start, exposure.pose_end)
        total = 0.0
        for pose, weight in zip(poses, weights, strict=True):
            pose_key = (
                key,
                beam,
                pose["omega"],
                pose["phiy"],
                pose["phiz"],
                pose["sampx"],
                pose["sampy"],
            )
            value = self._weighted.get(pose_key)
            if value is None:
                value = beam_weighted_volume(body, pose, beam)
                self._weighted[pose_key] = value
                if len(self._weighted) > 64:
                    self._weighted.popitem(last=False)
            total += weight * value
        return total

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
        key = (
            "crystal",
            tuple(crystal.position_mm),
            tuple(crystal.size_um),
            np.asarray(crystal.orientation, dtype=float).tobytes(),
            crystal.shape,
        )
        body = self._bodies.get(key)
        if body is None:
            if len(self._bodies) > 256:
                self._bodies.clear()
            body = self._bodies[key] = crystal_body(crystal)
        weighted = self._mean_weighted(key, body, exposure, beam)
        density = exposure.flux_ph_s * weighted / body.volume_mm3
        return density / reference_photon_density_per_mm2_s()

    def _table(
        self, crystal: Crystal, geometry: FrameGeometry
    ) -> tuple[CrystalModel, ReflectionTable]:
        """The crystal's reflections to the resolution the frame can show (the faint limit
        of the crystal or the detector's corner, whichever is lower in resolution). A table
        made for a closer detector already holds them all (the extra reflections miss the
        detector), so it is used again when the detector moves back."""
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
        )
        hit = self._tables.get(key)
        model = hit[0] if hit is not None else crystal_model(crystal)
        s_lim2 = 1.0 / crystal.resolution_limit_a**2
        s_faint2 = s_lim2 + 2.0 * math.log(1.0 / FAINT_FALL_OFF) / model.b_factor_a2
        d_min = max(1.0 / math.sqrt(s_faint2), _corner_resolution_a(geometry))
        if hit is not None and hit[2] <= d_min * (1.0 + 1e-9):
            self._tables.move_to_end(key)
            return hit[0], hit[1]
        table = reflection_table(crystal, model, geometry.wavelength_a, d_min)
        self._tables[key] = (model, table, d_min)
        self._tables.move_to_end(key)
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
        number: int = 0,
    ) -> _Spots:
        """The spots of ``crystal`` (number ``number`` of its pin) on this frame."""
        _, table = self._table(crystal, geometry)
        per_degree = lit_fraction * exposure.exposure_s / REFERENCE_EXPOSURE_S
        scale = per_degree * window.per_degree_ratio
        classes = table.by_width
        ref, photons, omega_c = select_crossings(
            classes.bin_starts,
            CANDIDATE_SIGMAS * classes.max_sigma_deg,
            classes.omega_deg,
            classes.sigma_deg,
            classes.reflection,
            classes.photons,
            classes.log_photons,
            window.low_deg,
            window.high_deg,
            scale,
            MIN_SPOT_PHOTONS,
        )
        if ref.size == 0:
            return _Spots.empty()
        # Where the scattered ray goes: at the crossing, or at the frame's nearest edge.
        origin = _lab_point(crystal.position_mm, exposure.pose_start, exposure.pose_end)
        rows, cols = geometry.shape
        x, y, photons, sigma, d = spot_positions(
            ref,
            omega_c,
            photons,
            table.r_sample,
            table.s2,
            window.start_deg,
            window.end_deg,
            origin,
            geometry.wavelength_a,
            geometry.distance_mm,
            geometry.pixel_size_mm,
            float(geometry.beam_centre_px[0]),
            float(geometry.beam_centre_px[1]),
            rows,
            cols,
            float(geometry.spot_sigma_px),
            # Mosaic blocks fan the diffracted beam out by ~ mosaic x 2 sin(theta).
            math.radians(crystal.mosaicity_deg * MOSAIC_FWHM_TO_SIGMA),
        )
        return _Spots(
            x=x, y=y, photons=photons, sigma_px=sigma, d_a=d, source=np.full(x.size, number)
        )

    # --- drawing -------------------------------------------------------------------

    def _add_spots(
        self, counts: np.ndarray, geometry: FrameGeometry, spots: _Spots
    ) -> np.ndarray | None:
        """Add Poisson draws of pixel-integrated Gaussians, each over the pixels within 3.5
        sigma of its centre (at most MAX_SPOT_HALF_WIDTH_PX); returns the flat indices
        touched, or None when there were too many to list (then the whole frame is
        clipped)."""
        if spots.photons.size == 0:
            return np.zeros(0, dtype=np.int64)
        seed = np.uint64(self.rng.integers(0, 2**63))
        touched, n = add_spots(
            counts,
            geometry.mask,
            spots.x,
            spots.y,
            spots.photons,
            spots.sigma_px,
            MAX_SPOT_HALF_WIDTH_PX,
            seed,
        )
        return None if n > touched.size else touched[:n]

    def _clip(
        self, counts: np.ndarray, geometry: FrameGeometry, touched: list[np.ndarray | None]
    ) -> int:
        """Clip at the count cutoff; returns the number of overloaded pixels. ``touched``:
        flat indices of the pixels that got more than background (None: not known)."""
        cutoff = np.uint32(geometry.count_cutoff)
        sampler = self._sampler
        background_may_overload = sampler is not None and (
            sampler.max_mean + 10.0 * math.sqrt(sampler.max_mean) + 10.0 >= geometry.count_cutoff
        )
        if background_may_overload or any(t is None for t in touched):
            over = counts >= cutoff
            n = int(over.sum())
            counts[over] = cutoff
            return n
        known = [t for t in touched if t is not None and t.size]
        if not known:
            return 0
        index = known[0] if len(known) == 1 else np.concatenate(known)
        return clip_at(counts.reshape(-1), index, cutoff)


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


def _lab_point(
    point_mm: tuple[float, float, float],
    pose_start: Mapping[str, float],
    pose_end: Mapping[str, float],
) -> np.ndarray:
    """Lab position of a sample-frame point at the middle of a frame's motion
    (``simulators.geometry.sample_to_lab`` at the mean of the two poses)."""

    def mid(motor: str) -> float:
        value = float(pose_start[motor])
        return 0.5 * (value + float(pose_end.get(motor, value)))

    a, b, c = (float(v) for v in point_mm)
    omega = math.radians(mid("omega"))
    cos_w, sin_w = math.cos(omega), math.sin(omega)
    bb, cc = b + mid("sampx"), c + mid("sampy")
    y = cos_w * bb - sin_w * cc + mid("phiz")
    return np.array([a + mid("phiy"), y, sin_w * bb + cos_w * cc])


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
