"""Simulated on-axis viewer: renders what the camera sees along the beam at the current pose.

A back-lit picture (bright background with an illumination fall-off, Gaussian noise) of
the mounted pin: the pin enters from the left (it comes from the goniometer head, at
negative ``a`` along the omega axis), a twisted fibre neck leads to the nylon loop, whose
rim shows as a dark ellipse flattening as the loop plane turns edge-on, and crystals in
the loop show as slightly darker shapes with darker, refracting edges. Objects are placed
with ``geometry.sample_to_lab``; image column grows with lab x, row with -y, and the beam
is at the image centre. Pixel coordinates are pixel centres (column j covers j +- 0.5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.spatial import ConvexHull

from simulators.actions import mounted_pin
from simulators.clock import SimClock
from simulators.geometry import omega_rotation, sample_to_lab
from simulators.profile import TimingProfile
from simulators.world import Crystal, Loop, Pin, SampleWorld

DEVICE = "camera"

NECK_MM = 0.35
"""Length of the fibre neck from the loop's near end to the pin tip (along the axis)."""
PIN_RADIUS_MM = 0.12
PIN_TIP_RADIUS_MM = 0.04
PIN_TAPER_MM = 0.15
BARE_PIN_TIP_MM = -0.25
"""Where the pin tip sits along the axis (sample frame ``a``) when the pin has no loop."""

# Opacity (fraction of light blocked) of each kind of object.
PIN_OPACITY = 0.92
FIBRE_OPACITY = 0.72
FILM_OPACITY = 0.08
ICE_OPACITY = 0.25
CRYSTAL_OPACITY = 0.18
CRYSTAL_EDGE_OPACITY = 0.45
CRYSTAL_EDGE_UM = 3.0

SignedDistance = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(x row vector, y column vector) in mm -> approximate signed distance in mm (< 0 inside)."""


class SimCamera:
    """The simulated on-axis camera (implements ``bes.hal.Camera``); ``snapshot()`` returns
    a ``(height_px, width_px)`` uint8 image and spends ``profile.camera.snapshot_s``."""

    name = DEVICE

    def __init__(
        self,
        clock: SimClock,
        profile: TimingProfile,
        world: SampleWorld,
        width_px: int = 640,
        height_px: int = 512,
        pixel_size_um: float = 2.0,
        noise: float = 0.02,
        seed: int | None = 0,
    ) -> None:
        if width_px < 8 or height_px < 8 or not pixel_size_um > 0:
            raise ValueError(
                f"camera needs at least 8x8 pixels of positive size, got {width_px}x{height_px} "
                f"of {pixel_size_um!r} um"
            )
        self._clock = clock
        self._timing = profile.camera
        self._world = world
        self._shape = (int(height_px), int(width_px))
        self._pixel_size_um = float(pixel_size_um)
        self._noise = float(noise)
        self._rng = np.random.default_rng(seed)
        self._background = _background(self._shape)

    @property
    def pixel_size_um(self) -> float:
        return self._pixel_size_um

    @property
    def beam_position_px(self) -> tuple[float, float]:
        """(x = column, y = row) of the beam: the image centre."""
        height, width = self._shape
        return (width - 1) / 2.0, (height - 1) / 2.0

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the images."""
        return self._shape

    def lab_to_pixel(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        """(column, row) where a lab point (x along the omega axis, y up) appears."""
        cx, cy = self.beam_position_px
        scale = 1000.0 / self._pixel_size_um
        return cx + x_mm * scale, cy - y_mm * scale

    def snapshot(self) -> np.ndarray:
        with self._world.lock:
            pose = dict(self._world.pose)
            pin = self._world.mounted_pin
        image = self.render(pin, pose)
        self._clock.spend(
            DEVICE,
            "snapshot",
            self._timing.snapshot_s,
            omega=pose["omega"],
            pin=mounted_pin(self._world)[0],
        )
        return image

    def render(self, pin: Pin | None, pose: dict[str, float]) -> np.ndarray:
        """The image of ``pin`` (None: nothing mounted) at ``pose``, without spending time."""
        canvas = _Canvas(self._shape, self._pixel_size_um * 1e-3, self.beam_position_px)
        if pin is not None and pin.present:
            _draw_pin(canvas, pin, pose)
        light = self._background * canvas.transmission
        if self._noise > 0:
            light += self._noise * self._rng.standard_normal(self._shape, dtype=np.float32)
        return (np.clip(light, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    def describe(self) -> dict[str, Any]:
        height, width = self._shape
        return {
            "image_px": f"{width}x{height}",
            "pixel_size_um": self._pixel_size_um,
            "field_mm": (width * self._pixel_size_um / 1000, height * self._pixel_size_um / 1000),
            "beam_position_px": self.beam_position_px,
        }


class _Canvas:
    """Light transmitted through the objects drawn so far, one factor per pixel."""

    def __init__(
        self, shape: tuple[int, int], pixel_mm: float, centre_px: tuple[float, float]
    ) -> None:
        height, width = shape
        self.pixel_mm = pixel_mm
        self.x_mm = ((np.arange(width) - centre_px[0]) * pixel_mm).astype(np.float32)
        self.y_mm = ((centre_px[1] - np.arange(height)) * pixel_mm).astype(np.float32)
        self.transmission = np.ones(shape, dtype=np.float32)

    def shade(
        self,
        bounds_mm: tuple[float, float, float, float],
        distance: SignedDistance,
        opacity: float,
    ) -> None:
        """Darken the pixels inside ``distance`` (anti-aliased over one pixel) within
        ``bounds_mm`` = (x_min, x_max, y_min, y_max)."""
        x_min, x_max, y_min, y_max = bounds_mm
        pad = 2 * self.pixel_mm
        cols = np.nonzero((self.x_mm >= x_min - pad) & (self.x_mm <= x_max + pad))[0]
        rows = np.nonzero((self.y_mm >= y_min - pad) & (self.y_mm <= y_max + pad))[0]
        if cols.size == 0 or rows.size == 0:
            return
        window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        x = self.x_mm[window[1]][np.newaxis, :]
        y = self.y_mm[window[0]][:, np.newaxis]
        coverage = np.clip(0.5 - distance(x, y) / self.pixel_mm, 0.0, 1.0)
        self.transmission[window] *= 1.0 - opacity * coverage


def _background(shape: tuple[int, int]) -> np.ndarray:
    """Back-light: bright in the middle, falling off towards the corners, a slight tilt."""
    height, width = shape
    y = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, np.newaxis]
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[np.newaxis, :]
    return (0.85 - 0.08 * (x * x + y * y) + 0.04 * x - 0.02 * y).astype(np.float32)


def _draw_pin(canvas: _Canvas, pin: Pin, pose: dict[str, float]) -> None:
    axis_y = float(sample_to_lab(np.zeros(3), pose)[0, 1])
    loop = pin.loop
    if loop is None:
        _draw_stem(canvas, BARE_PIN_TIP_MM + pose["phiy"], axis_y)
        return
    centre = np.asarray(loop.centre_mm, dtype=float)
    half_length_mm = loop.size_um[0] * 5e-4
    near_end = centre - np.array([half_length_mm, 0.0, 0.0])
    tip_a = near_end[0] - NECK_MM
    _draw_stem(canvas, tip_a + pose["phiy"], axis_y)
    neck = sample_to_lab(np.array([[tip_a, 0.0, 0.0], near_end]), pose)[:, :2]
    _draw_segment(canvas, neck[0], neck[1], loop.fibre_um * 1e-3, FIBRE_OPACITY)
    _draw_loop(canvas, loop, pose)
    for crystal in pin.crystals:
        _draw_crystal(canvas, crystal, pose)


def _draw_stem(canvas: _Canvas, tip_x_mm: float, axis_y_mm: float) -> None:
    """The pin: a rod along the omega axis coming from the left, tapered at its tip."""

    def distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        taper = np.clip((tip_x_mm - x) / PIN_TAPER_MM, 0.0, 1.0)
        radius = PIN_TIP_RADIUS_MM + (PIN_RADIUS_MM - PIN_TIP_RADIUS_MM) * taper
        return np.maximum(np.abs(y - axis_y_mm) - radius, x - tip_x_mm)

    bounds = (-1e9, tip_x_mm, axis_y_mm - PIN_RADIUS_MM, axis_y_mm + PIN_RADIUS_MM)
    canvas.shade(bounds, distance, PIN_OPACITY)


def _draw_segment(
    canvas: _Canvas, start: np.ndarray, end: np.ndarray, width_mm: float, opacity: float
) -> None:
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    length2 = max(dx * dx + dy * dy, 1e-12)
    half = width_mm / 2.0

    def distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / length2, 0.0, 1.0)
        return np.hypot(x - x0 - t * dx, y - y0 - t * dy) - half

    bounds = (min(x0, x1) - half, max(x0, x1) + half, min(y0, y1) - half, max(y0, y1) + half)
    canvas.shade(bounds, distance, opacity)


def _ellipse_distance(x: np.ndarray, y: np.ndarray, semi_x: float, semi_y: float) -> np.ndarray:
    """First-order signed distance (mm) to an axis-aligned ellipse centred at 0."""
    f = (x / semi_x) ** 2 + (y / semi_y) ** 2 - 1.0
    grad = 2.0 * np.sqrt((x / semi_x**2) ** 2 + (y / semi_y**2) ** 2)
    return f / (grad + 1e-9)


def _draw_loop(canvas: _Canvas, loop: Loop, pose: dict[str, float]) -> None:
    """The loop rim and film: an ellipse whose across-axis extent is |cos| of the angle
    between the loop plane and the view."""
    xc, yc = (float(v) for v in sample_to_lab(np.asarray(loop.centre_mm), pose)[0, :2])
    seen = abs(np.cos(np.deg2rad(pose["omega"] + loop.plane_angle_deg)))
    semi_x = loop.size_um[0] * 5e-4
    semi_y = loop.size_um[1] * 5e-4 * seen
    fibre = loop.fibre_um * 1e-3 / 2.0
    outer_x, outer_y = semi_x + fibre, semi_y + fibre
    inner_x, inner_y = semi_x - fibre, semi_y - fibre
    bounds = (xc - outer_x, xc + outer_x, yc - outer_y, yc + outer_y)
    if inner_x > 0 and inner_y > 0:

        def film(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return _ellipse_distance(x - xc, y - yc, inner_x, inner_y)

        def rim(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            outer = _ellipse_distance(x - xc, y - yc, outer_x, outer_y)
            return np.maximum(outer, -film(x, y))

        canvas.shade(bounds, film, FILM_OPACITY + ICE_OPACITY * loop.ice)
        canvas.shade(bounds, rim, FIBRE_OPACITY)
    else:  # edge-on: the rim is a bar one fibre thick

        def bar(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return _ellipse_distance(x - xc, y - yc, outer_x, outer_y)

        canvas.shade(bounds, bar, FIBRE_OPACITY)


def _draw_crystal(canvas: _Canvas, crystal: Crystal, pose: dict[str, float]) -> None:
    """The crystal's shadow, slightly dark, with a darker refracting edge."""
    xc, yc = (float(v) for v in sample_to_lab(np.asarray(crystal.position_mm), pose)[0, :2])
    to_lab = np.eye(3)
    to_lab[1:, 1:] = omega_rotation(pose["omega"])
    rotation = to_lab @ np.asarray(crystal.orientation, dtype=float)
    half = np.asarray(crystal.size_um, dtype=float) * 5e-4
    if crystal.shape == "box":
        body = _box_shadow(rotation, half, xc, yc)
    else:
        body = _ellipsoid_shadow(rotation, half, xc, yc)
    reach = float(np.linalg.norm(half))
    bounds = (xc - reach, xc + reach, yc - reach, yc + reach)
    edge_mm = CRYSTAL_EDGE_UM * 1e-3

    def edge(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        d = body(x, y)
        return np.maximum(d, -(d + edge_mm))

    canvas.shade(bounds, body, CRYSTAL_OPACITY)
    canvas.shade(bounds, edge, CRYSTAL_EDGE_OPACITY)


def _ellipsoid_shadow(
    rotation: np.ndarray, half: np.ndarray, xc: float, yc: float
) -> SignedDistance:
    """Projection of an ellipsoid along z: the ellipse of the (x, y) block of its shape matrix."""
    spread = rotation @ np.diag(half**2) @ rotation.T
    variances, axes = np.linalg.eigh(spread[:2, :2])
    semi_u, semi_v = (float(s) for s in np.sqrt(np.maximum(variances, 1e-12)))
    (ux, vx), (uy, vy) = axes.tolist()  # columns are the shadow's principal directions

    def distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx, dy = x - xc, y - yc
        return _ellipse_distance(ux * dx + uy * dy, vx * dx + vy * dy, semi_u, semi_v)

    return distance


def _box_shadow(rotation: np.ndarray, half: np.ndarray, xc: float, yc: float) -> SignedDistance:
    """Projection of a box along z: the convex hull of its corners, as half-planes."""
    signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], dtype=float)
    corners = (signs * half) @ rotation.T
    points = corners[:, :2]
    hull = ConvexHull(points)
    # equations: normal . p + offset <= 0 inside, normals of unit length.
    edges = hull.equations.tolist()

    def distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx, dy = x - xc, y - yc
        nx, ny, offset = edges[0]
        d = nx * dx + ny * dy + offset
        for nx, ny, offset in edges[1:]:
            d = np.maximum(d, nx * dx + ny * dy + offset)
        return d

    return distance
