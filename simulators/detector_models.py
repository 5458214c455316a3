"""The simulated detector models: pixel layout, module gaps, ROI modes, rates and limits.

Pixel convention (used by every simulator module and written to the files): pixel
``(row, col)`` covers ``col <= x < col + 1`` and ``row <= y < row + 1`` in pixel
coordinates; the beam centre is given in the same coordinates, so its pixel is
``(floor(y), floor(x))``. Columns grow along lab +x (the omega axis), rows along lab -y
(down), as seen from the sample looking downstream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RoiMode:
    """A readout region: the full frame or a band of whole module rows, read faster."""

    rows: tuple[int, int]
    """First and one-past-last row of the full frame that the ROI reads."""
    rate_factor: float = 1.0
    """Maximum frame rate relative to the full frame (assumption: rate ~ 1 / rows read)."""


@dataclass(frozen=True)
class DetectorModel:
    """One detector type: what the frames look like and how fast they can come."""

    name: str
    description: str
    shape: tuple[int, int]
    """(rows, columns) of the full frame."""
    pixel_size_mm: float
    module_shape: tuple[int, int]
    """(rows, columns) of one module; the frame is a grid of modules separated by gaps."""
    gap_px: tuple[int, int]
    """(rows, columns) of dead pixels between module rows and between module columns."""
    max_frame_rate_hz: float | None
    """None: take the timing profile's detector rate."""
    max_count_rate_cps: float
    """Counts per second a pixel can record; a frame's count cutoff is this x exposure."""
    spot_sigma_px: float
    """Standard deviation of a Bragg spot (point spread, divergence) before mosaic smearing."""
    distance_limits_mm: tuple[float, float]
    sensor_material: str = "Si"
    sensor_thickness_mm: float = 0.45
    roi_modes: dict[str, RoiMode] = field(default_factory=dict)

    def mask(self) -> np.ndarray:
        """Boolean (rows, columns) array of the full frame, True where there is no pixel."""
        rows, cols = self.shape
        mask = np.zeros(self.shape, dtype=bool)
        mod_r, mod_c = self.module_shape
        gap_r, gap_c = self.gap_px
        for start in range(mod_r, rows, mod_r + gap_r):
            mask[start : start + gap_r, :] = True
        for start in range(mod_c, cols, mod_c + gap_c):
            mask[:, start : start + gap_c] = True
        return mask

    def roi(self, mode: str) -> RoiMode:
        if mode == "full":
            return RoiMode(rows=(0, self.shape[0]))
        try:
            return self.roi_modes[mode]
        except KeyError:
            known = ", ".join(("full", *self.roi_modes))
            raise ValueError(
                f"detector {self.name}: unknown ROI mode {mode!r}; known: {known}"
            ) from None

    def beam_centre_px(self) -> tuple[float, float]:
        """(x, y) of the direct beam on the full frame: its geometric centre."""
        rows, cols = self.shape
        return (cols / 2.0, rows / 2.0)

    def default_distance_mm(self, wavelength_a: float, edge_resolution_a: float = 2.0) -> float:
        """Distance that puts ``edge_resolution_a`` at the nearest edge of the full frame."""
        x, y = self.beam_centre_px()
        rows, cols = self.shape
        edge_mm = min(x, cols - x, y, rows - y) * self.pixel_size_mm
        two_theta = 2.0 * math.asin(wavelength_a / (2.0 * edge_resolution_a))
        distance = edge_mm / math.tan(two_theta)
        low, high = self.distance_limits_mm
        return round(min(max(distance, low), high), 1)


def _eiger2_4m() -> DetectorModel:
    # EIGER2 X 4M: 2 x 4 modules of 512 x 1028 pixels (75 um), 12-pixel gaps between the two
    # module columns and 38-pixel gaps between the four module rows: 2162 rows x 2068 columns
    # (REFERENCE section 3: 2068 x 2162 pixels of 75 um, width x height).
    return DetectorModel(
        name="eiger2_4m",
        description="DECTRIS EIGER2 X 4M geometry (simulated)",
        shape=(2162, 2068),
        pixel_size_mm=0.075,
        module_shape=(512, 1028),
        gap_px=(38, 12),
        max_frame_rate_hz=None,
        max_count_rate_cps=2.8e6,  # assumption: ~5e8 photons/s/mm2 x (75 um)^2
        spot_sigma_px=1.2,
        distance_limits_mm=(100.0, 1000.0),
        # The two middle module rows (like the EIGER ROI modes that read fewer modules).
        roi_modes={"half": RoiMode(rows=(550, 1612), rate_factor=2.0)},
    )


def _small() -> DetectorModel:
    return DetectorModel(
        name="small",
        description="small 512 x 512 test detector, 0.2 mm pixels, one module (simulated)",
        shape=(512, 512),
        pixel_size_mm=0.2,
        module_shape=(512, 512),
        gap_px=(0, 0),
        max_frame_rate_hz=1000.0,  # assumption: a small fast detector for tests and nights
        max_count_rate_cps=1.0e6,  # assumption: Pilatus-class 0.2 mm pixel
        spot_sigma_px=0.8,
        distance_limits_mm=(50.0, 800.0),
        roi_modes={"half": RoiMode(rows=(128, 384), rate_factor=2.0)},
    )


def detector_models() -> dict[str, DetectorModel]:
    """Model name -> model: ``small`` (tests, simulated nights) and ``eiger2_4m`` (benchmarks)."""
    return {m.name: m for m in (_small(), _eiger2_4m())}
