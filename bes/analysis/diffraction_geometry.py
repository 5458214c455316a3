"""Detector geometry for turning pixel positions into resolution (d-spacing).

Flat detector normal to the beam at ``distance_mm``; the direct beam hits it at
``beam_centre_px`` (x = column, y = row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DiffractionGeometry:
    shape: tuple[int, int]
    """(rows, columns)."""
    pixel_size_mm: float
    distance_mm: float
    beam_centre_px: tuple[float, float]
    wavelength_a: float

    def __post_init__(self) -> None:
        if self.distance_mm <= 0 or self.pixel_size_mm <= 0 or self.wavelength_a <= 0:
            raise ValueError(
                f"geometry needs distance, pixel size and wavelength > 0, got "
                f"{self.distance_mm} mm, {self.pixel_size_mm} mm, {self.wavelength_a} A"
            )

    def d_spacing(self, x_px: np.ndarray | float, y_px: np.ndarray | float) -> np.ndarray:
        """d-spacing (Angstrom) at pixel positions; infinite at the beam centre."""
        dx = (np.asarray(x_px, dtype=float) - self.beam_centre_px[0]) * self.pixel_size_mm
        dy = (np.asarray(y_px, dtype=float) - self.beam_centre_px[1]) * self.pixel_size_mm
        two_theta = np.arctan2(np.hypot(dx, dy), self.distance_mm)
        sin_theta = np.sin(two_theta / 2.0)
        with np.errstate(divide="ignore"):
            return np.where(sin_theta > 0, self.wavelength_a / (2.0 * sin_theta), np.inf)

    def radius_px(self, d_a: float) -> float:
        """Distance from the beam centre, in pixels, of the ring at d-spacing ``d_a``."""
        ratio = self.wavelength_a / (2.0 * d_a)
        if ratio >= 1.0:
            raise ValueError(f"d = {d_a} A is beyond the limit lambda/2 = {self.wavelength_a / 2}")
        return float(self.distance_mm * np.tan(2.0 * np.arcsin(ratio)) / self.pixel_size_mm)

    def edge_resolution_a(self) -> float:
        """d-spacing at the detector edge nearest the beam centre."""
        rows, cols = self.shape
        x, y = self.beam_centre_px
        nearest = min(x, cols - x, y, rows - y)
        return float(self.d_spacing(x + nearest, y))
