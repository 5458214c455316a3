"""Where each mesh point was exposed, in goniometer motor terms, and back.

A mesh at omega steps horizontally with ``phiy`` (along the omega axis) and
vertically with the centring table (``sampx``, ``sampy``), as in
docs/architecture.md "Geometry". Grid index (row, col) maps to the motor offset
applied at that point; row 0 is the top of the camera image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def table_shift(omega_deg: float, dy_mm: float, dz_mm: float = 0.0) -> tuple[float, float]:
    """Centring-table offset (sampx, sampy) that moves the sample by (dy, dz) in the lab
    (vertical, along the beam) at ``omega_deg``: ``R(omega)^T (dy, dz)``."""
    w = math.radians(omega_deg)
    c, s = math.cos(w), math.sin(w)
    return (c * dy_mm + s * dz_mm, -s * dy_mm + c * dz_mm)


@dataclass(frozen=True)
class MeshGeometry:
    """A 2D grid of ``rows x cols`` boxes of ``step_h_um x step_v_um`` at ``omega_deg``,
    centred on the motor positions ``centre`` (phiy, sampx, sampy in mm)."""

    omega_deg: float
    rows: int
    cols: int
    step_h_um: float
    step_v_um: float
    centre_phiy_mm: float
    centre_sampx_mm: float
    centre_sampy_mm: float

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"mesh needs at least 1x1 points, got {self.rows}x{self.cols}")
        if not (self.step_h_um > 0 and self.step_v_um > 0):
            raise ValueError(f"mesh steps must be > 0 um, got {self.step_h_um} x {self.step_v_um}")

    def offsets_mm(self, row: float, col: float) -> tuple[float, float]:
        """(dphiy, dy) motor offsets from the centre at a (fractional) grid index.

        Rows go down the image; the sample moves up (+dy) to bring a lower point into
        the beam, so dy grows with the row index."""
        dphiy = -(col - (self.cols - 1) / 2.0) * self.step_h_um * 1e-3
        dy = (row - (self.rows - 1) / 2.0) * self.step_v_um * 1e-3
        return dphiy, dy

    def position(self, row: float, col: float) -> dict[str, float]:
        """Motor positions at which grid point (row, col) is in the beam."""
        dphiy, dy = self.offsets_mm(row, col)
        dsx, dsy = table_shift(self.omega_deg, dy)
        return {
            "phiy": self.centre_phiy_mm + dphiy,
            "sampx": self.centre_sampx_mm + dsx,
            "sampy": self.centre_sampy_mm + dsy,
        }


def acquisition_order(rows: int, cols: int, snaked: bool) -> list[tuple[int, int]]:
    """Grid (row, col) of each frame in acquisition order: line by line along a row,
    reversing every other row when ``snaked``."""
    order: list[tuple[int, int]] = []
    for row in range(rows):
        columns = range(cols - 1, -1, -1) if snaked and row % 2 else range(cols)
        order.extend((row, col) for col in columns)
    return order
