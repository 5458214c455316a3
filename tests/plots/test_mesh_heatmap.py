"""The mesh heat map lands on the camera picture where the mesh was taken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bes.analysis.mesh_geometry import MeshGeometry
from bes.analysis.mesh_map import mesh_map
from bes.plots.mesh_heatmap import grid_extent_px, write_mesh_heatmap


def geometry() -> MeshGeometry:
    return MeshGeometry(
        0.0,
        rows=4,
        cols=6,
        step_h_um=20.0,
        step_v_um=10.0,
        centre_phiy_mm=0.0,
        centre_sampx_mm=0.0,
        centre_sampy_mm=0.0,
    )


def test_grid_extent_follows_the_camera_conventions() -> None:
    mesh = mesh_map(list(range(24)), geometry(), snaked=True)
    left, right, bottom, top = grid_extent_px(mesh, pixel_size_um=2.0, beam_position_px=(320, 256))
    # 6 boxes of 20 um across = 120 um = 60 px, centred on the beam column
    assert (left, right) == pytest.approx((290.0, 350.0))
    # 4 boxes of 10 um down = 40 um = 20 px, row 0 at the top
    assert (top, bottom) == pytest.approx((246.0, 266.0))


def test_heatmap_png_is_written(tmp_path: Path) -> None:
    values = np.zeros(24)
    values[9] = 5.0
    mesh = mesh_map(values, geometry(), snaked=False)
    snapshot = np.full((512, 640), 200, dtype=np.uint8)
    path = write_mesh_heatmap(tmp_path / "mesh" / "heat.png", mesh, snapshot, 2.0, (320, 256))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert mesh.best_index == (1, 3)
