"""Heat map of a mesh's scores drawn over the camera snapshot taken at the mesh's centre."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import numpy as np

from bes.analysis.mesh_map import MeshMap


def grid_extent_px(
    mesh: MeshMap, pixel_size_um: float, beam_position_px: tuple[float, float]
) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) in snapshot pixels of the mesh boxes' outer edges.

    The snapshot is taken at the mesh centre; the point in the beam at motor offset
    (dphiy, dy) appears at column ``beam_x - dphiy / pixel`` and row ``beam_y + dy / pixel``
    (docs/architecture.md, Geometry)."""
    g = mesh.geometry
    px_mm = pixel_size_um * 1e-3
    corners = [g.offsets_mm(-0.5, -0.5), g.offsets_mm(g.rows - 0.5, g.cols - 0.5)]
    columns = [beam_position_px[0] - dphiy / px_mm for dphiy, _ in corners]
    rows = [beam_position_px[1] + dy / px_mm for _, dy in corners]
    return columns[0], columns[1], rows[1], rows[0]


def write_mesh_heatmap(
    path: str | Path,
    mesh: MeshMap,
    snapshot: np.ndarray | None,
    pixel_size_um: float,
    beam_position_px: tuple[float, float],
    title: str = "",
) -> Path:
    """PNG of the scores (transparent where zero or missing) over the snapshot, the best
    point marked."""
    path = Path(path)
    extent = grid_extent_px(mesh, pixel_size_um, beam_position_px)
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=100)
    try:
        if snapshot is not None:
            ax.imshow(snapshot, cmap="gray", origin="upper")
        values = np.ma.masked_where(~(mesh.values > 0), mesh.values)
        image = ax.imshow(
            values,
            cmap="inferno",
            alpha=0.65,
            extent=extent,
            origin="upper",
            interpolation="nearest",
        )
        fig.colorbar(image, ax=ax, label="score", shrink=0.8)
        best = mesh.best_index
        if best is not None:
            row, col = best
            dphiy, dy = mesh.geometry.offsets_mm(row, col)
            px_mm = pixel_size_um * 1e-3
            ax.plot(
                beam_position_px[0] - dphiy / px_mm,
                beam_position_px[1] + dy / px_mm,
                marker="+",
                color="cyan",
                markersize=14,
                mew=2,
            )
        g = mesh.geometry
        ax.set_title(
            title
            or f"mesh {g.rows}x{g.cols} at omega {g.omega_deg:g} deg, "
            f"{g.step_h_um:g}x{g.step_v_um:g} um"
        )
        ax.set_xlabel("camera column (px)")
        ax.set_ylabel("camera row (px)")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
