"""Per-frame results of a mesh arranged into its 2D grid, as acquired (snaked or not)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bes.analysis.mesh_geometry import MeshGeometry, acquisition_order


@dataclass(frozen=True)
class MeshMap:
    """Score per grid point (rows x cols; NaN where no frame arrived) and the best point."""

    values: np.ndarray
    geometry: MeshGeometry
    snaked: bool

    @property
    def complete(self) -> bool:
        return not bool(np.isnan(self.values).any())

    @property
    def best_index(self) -> tuple[int, int] | None:
        """(row, col) of the highest score, None if no frame scored above zero."""
        if np.all(np.isnan(self.values)) or np.nanmax(self.values) <= 0:
            return None
        flat = int(np.nanargmax(self.values))
        row, col = np.unravel_index(flat, self.values.shape)
        return int(row), int(col)

    @property
    def best_position(self) -> dict[str, float] | None:
        index = self.best_index
        return None if index is None else self.geometry.position(*index)

    def filled(self) -> np.ndarray:
        """Scores with missing points as 0 (for centring)."""
        return np.nan_to_num(self.values, nan=0.0)


def mesh_map(values: Sequence[float], geometry: MeshGeometry, snaked: bool) -> MeshMap:
    """Place frame ``i``'s value at the grid point the ``i``-th frame was taken at.

    Fewer values than points (a scan still running, or stopped) leave NaN."""
    order = acquisition_order(geometry.rows, geometry.cols, snaked)
    if len(values) > len(order):
        raise ValueError(
            f"{len(values)} frames for a {geometry.rows}x{geometry.cols} mesh of {len(order)}"
        )
    grid = np.full((geometry.rows, geometry.cols), np.nan)
    for value, (row, col) in zip(values, order, strict=False):
        grid[row, col] = value
    return MeshMap(values=grid, geometry=geometry, snaked=snaked)
