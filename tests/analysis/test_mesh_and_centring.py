"""Mesh grids, acquisition order and the 3D centring arithmetic on known answers."""

from __future__ import annotations

import numpy as np
import pytest

from bes.analysis.mesh_geometry import MeshGeometry, acquisition_order
from bes.analysis.mesh_map import mesh_map
from bes.analysis.xray_centring import centre_2d_and_line, centre_3d, position_from_grid
from simulators.geometry import centred_pose, sample_to_lab


def mesh(omega: float, rows: int = 6, cols: int = 8, **centre: float) -> MeshGeometry:
    return MeshGeometry(
        omega,
        rows,
        cols,
        20.0,
        20.0,
        centre.get("phiy", 0.1),
        centre.get("sampx", 0.02),
        centre.get("sampy", -0.03),
    )


def test_snaked_order_reverses_every_other_row() -> None:
    assert acquisition_order(2, 3, snaked=True) == [(0, 0), (0, 1), (0, 2), (1, 2), (1, 1), (1, 0)]
    assert acquisition_order(2, 2, snaked=False) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_mesh_map_places_frames_as_acquired_and_waits_for_missing_ones() -> None:
    g = mesh(0.0, rows=2, cols=3)
    partial = mesh_map([1.0, 2.0, 3.0, 4.0], g, snaked=True)
    assert partial.values[1, 2] == 4.0 and np.isnan(partial.values[1, 0])
    assert not partial.complete and partial.best_index == (1, 2)
    with pytest.raises(ValueError, match="7 frames for a 2x3 mesh"):
        mesh_map([0.0] * 7, g, snaked=True)
    assert mesh_map([0.0] * 6, g, snaked=False).best_index is None


@pytest.mark.parametrize("omega", [0.0, 37.0, 200.0])
def test_grid_positions_put_the_sample_point_in_the_beam_at_both_omegas(omega: float) -> None:
    """The sample point centred by grid point (col 2, row_a 1, row_b 4) is the one in the
    beam at mesh A's point (1, 2) and at mesh B's point (4, 2) (simulator geometry)."""
    ga, gb = mesh(omega), mesh(omega + 90.0)
    position = position_from_grid(2.0, 1.0, 4.0, ga, gb)
    sample_point = -np.array([position["phiy"], position["sampx"], position["sampy"]])
    for g, row in ((ga, 1.0), (gb, 4.0)):
        pose = {"omega": g.omega_deg, "kappa": 0.0, "phi": 0.0, "phiz": 0.0, **g.position(row, 2.0)}
        x, y, _ = sample_to_lab(sample_point, pose)[0]
        assert abs(x) < 1e-12 and abs(y) < 1e-12


def test_centre_3d_finds_a_known_point() -> None:
    ga, gb = mesh(10.0), mesh(100.0)
    a, b = np.zeros((6, 8)), np.zeros((6, 8))
    a[2, 3], b[4, 3] = 10.0, 10.0
    result = centre_3d(a, ga, b, gb)
    assert result.found and len(result.regions) == 1
    region = result.regions[0]
    assert region.max_voxel == (3, 2, 4) and region.n_voxels == 1
    assert region.position == pytest.approx(position_from_grid(3, 2, 4, ga, gb))
    assert region.size_um == (20.0, 20.0, 20.0)


def test_centred_crystal_truth_round_trip() -> None:
    """A crystal at a known sample point: the grid point the meshes see it at gives back
    exactly the simulator's centred pose."""
    crystal = (0.03, -0.02, 0.05)
    truth = centred_pose(crystal)
    ga = MeshGeometry(25.0, 11, 11, 10.0, 10.0, truth["phiy"], 0.0, 0.0)
    gb = MeshGeometry(115.0, 11, 11, 10.0, 10.0, truth["phiy"], 0.0, 0.0)
    # rows where the crystal crosses the beam, computed from the lab geometry
    rows = []
    for g in (ga, gb):
        pose = {"omega": g.omega_deg, "kappa": 0.0, "phi": 0.0, "phiz": 0.0, **g.position(5, 5)}
        y = sample_to_lab(np.array(crystal), pose)[0][1]
        rows.append(5 + (-y) / (g.step_v_um * 1e-3))
    position = position_from_grid(5.0, rows[0], rows[1], ga, gb)
    assert position == pytest.approx(truth, abs=1e-9)


def test_empty_maps_and_bad_inputs() -> None:
    ga, gb = mesh(0.0), mesh(90.0)
    assert not centre_3d(np.zeros((6, 8)), ga, np.zeros((6, 8)), gb).found
    assert not centre_3d(np.full((6, 8), 0.5), ga, np.ones((6, 8)), gb, min_peak=1.0).found
    with pytest.raises(ValueError, match="map_a has shape"):
        centre_3d(np.zeros((5, 8)), ga, np.zeros((6, 8)), gb)
    with pytest.raises(ValueError, match="share the phiy axis"):
        centre_3d(np.zeros((6, 8)), ga, np.zeros((6, 8)), mesh(90.0, phiy=0.5))
    with pytest.raises(ValueError, match="different omegas"):
        centre_3d(np.zeros((6, 8)), ga, np.zeros((6, 8)), mesh(180.0))
    with pytest.raises(ValueError, match="steps must be > 0"):
        MeshGeometry(0.0, 2, 2, 0.0, 20.0, 0.0, 0.0, 0.0)


def test_two_d_plus_line_scan() -> None:
    ga = mesh(0.0)
    line_geometry = MeshGeometry(90.0, 6, 1, 20.0, 20.0, ga.position(2, 5)["phiy"], 0.02, -0.03)
    a = np.zeros((6, 8))
    a[2, 5] = 8.0
    line = np.zeros(6)
    line[3] = 5.0
    result = centre_2d_and_line(a, ga, line, line_geometry)
    assert result.found
    best = result.best
    assert best is not None and best.max_voxel[0] == 5
    with pytest.raises(ValueError, match="one column"):
        centre_2d_and_line(a, ga, np.zeros(4), line_geometry)
