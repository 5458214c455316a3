"""3D X-ray centring from two meshes at different omegas sharing the ``phiy`` axis.

Method (as used at large MX facilities): for each column along the shared axis, the
outer product of the two columns gives a 3D map; voxels above ``threshold x max`` are
labelled as 26-connected regions (``scipy.ndimage.label``); each region reports its
centre of mass, max voxel, size, total count and bounding box, ranked by max count,
and is converted to goniometer positions (phiy, sampx, sampy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bes.analysis.mesh_geometry import MeshGeometry

DEFAULT_THRESHOLD = 0.25
"""Fraction of the 3D map's maximum above which a voxel belongs to a crystal."""


@dataclass(frozen=True)
class CrystalRegion:
    """One crystal found in the 3D map. Voxel indices are (col, row_a, row_b)."""

    rank: int
    position: dict[str, float]
    """Goniometer positions (phiy, sampx, sampy; mm) of the centre of mass."""
    max_voxel_position: dict[str, float]
    centre_of_mass: tuple[float, float, float]
    max_voxel: tuple[int, int, int]
    max_count: float
    total_count: float
    n_voxels: int
    bounding_box_min: tuple[int, int, int]
    bounding_box_max: tuple[int, int, int]
    size_um: tuple[float, float, float]
    """Extent along phiy, the first mesh's vertical and the second mesh's vertical."""


@dataclass(frozen=True)
class CentringResult:
    regions: tuple[CrystalRegion, ...]
    """Ranked by max count, strongest first; empty when nothing diffracts."""
    max_count: float
    threshold: float

    @property
    def found(self) -> bool:
        return bool(self.regions)

    @property
    def best(self) -> CrystalRegion | None:
        return self.regions[0] if self.regions else None


def centre_3d(
    map_a: np.ndarray,
    geometry_a: MeshGeometry,
    map_b: np.ndarray,
    geometry_b: MeshGeometry,
    threshold: float = DEFAULT_THRESHOLD,
    min_peak: float = 0.0,
) -> CentringResult:
    """Crystals from two 2D maps (rows x cols) whose columns are the same ``phiy`` values.

    ``min_peak``: a map whose maximum is not above it holds no diffraction; then no
    region is reported (no false centre on an empty loop).
    """
    a = _checked_map(map_a, geometry_a, "map_a")
    b = _checked_map(map_b, geometry_b, "map_b")
    _check_shared_axis(geometry_a, geometry_b)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be within (0, 1), got {threshold}")
    if a.max() <= min_peak or b.max() <= min_peak:
        return CentringResult(regions=(), max_count=float(max(a.max(), b.max())), threshold=0.0)
    # volume[col, row_a, row_b] = a[row_a, col] * b[row_b, col]
    volume = np.einsum("ic,jc->cij", a, b)
    peak = float(volume.max())
    level = threshold * peak
    labels, n_regions = ndimage.label(volume > level, structure=np.ones((3, 3, 3), dtype=bool))
    regions = []
    for index in range(1, n_regions + 1):
        regions.append(_region(volume, labels, index, geometry_a, geometry_b))
    regions.sort(key=lambda r: (-r.max_count, -r.total_count))
    ranked = tuple(
        CrystalRegion(**{**r.__dict__, "rank": rank}) for rank, r in enumerate(regions, start=1)
    )
    return CentringResult(regions=ranked, max_count=peak, threshold=level)


def centre_2d_and_line(
    map_a: np.ndarray,
    geometry_a: MeshGeometry,
    line_b: np.ndarray,
    geometry_b: MeshGeometry,
    threshold: float = DEFAULT_THRESHOLD,
    min_peak: float = 0.0,
) -> CentringResult:
    """2D mesh at omega plus a vertical line scan at another omega through the 2D best
    column: the line is a one-column mesh (``geometry_b.cols == 1``) at that ``phiy``."""
    a = _checked_map(map_a, geometry_a, "map_a")
    line = np.asarray(line_b, dtype=float).reshape(-1, 1)
    if geometry_b.cols != 1 or line.shape[0] != geometry_b.rows:
        raise ValueError(
            f"line scan must be one column of {geometry_b.rows} points, got shape {line.shape}"
        )
    if a.max() <= min_peak or line.max() <= min_peak:
        return CentringResult(regions=(), max_count=float(max(a.max(), line.max())), threshold=0.0)
    # Broadcast the line to every column with the best column's weight profile.
    expanded = np.repeat(line, geometry_a.cols, axis=1)
    shared = MeshGeometry(
        omega_deg=geometry_b.omega_deg,
        rows=geometry_b.rows,
        cols=geometry_a.cols,
        step_h_um=geometry_a.step_h_um,
        step_v_um=geometry_b.step_v_um,
        centre_phiy_mm=geometry_a.centre_phiy_mm,
        centre_sampx_mm=geometry_b.centre_sampx_mm,
        centre_sampy_mm=geometry_b.centre_sampy_mm,
    )
    return centre_3d(a, geometry_a, expanded, shared, threshold=threshold, min_peak=min_peak)


def position_from_grid(
    col: float, row_a: float, row_b: float, geometry_a: MeshGeometry, geometry_b: MeshGeometry
) -> dict[str, float]:
    """Goniometer positions that put the grid point (col, row_a, row_b) in the beam at
    both omegas: solves the two vertical conditions for the centring table."""
    dphiy, dy_a = geometry_a.offsets_mm(row_a, col)
    _, dy_b = geometry_b.offsets_mm(row_b, col)
    # Row k of R(omega) projected on lab y: (cos w, -sin w) . table = y offset.
    wa, wb = math.radians(geometry_a.omega_deg), math.radians(geometry_b.omega_deg)
    ra = np.array([math.cos(wa), -math.sin(wa)])
    rb = np.array([math.cos(wb), -math.sin(wb)])
    centre_a = np.array([geometry_a.centre_sampx_mm, geometry_a.centre_sampy_mm])
    centre_b = np.array([geometry_b.centre_sampx_mm, geometry_b.centre_sampy_mm])
    rhs = np.array([dy_a + ra @ centre_a, dy_b + rb @ centre_b])
    sampx, sampy = np.linalg.solve(np.stack([ra, rb]), rhs)
    return {
        "phiy": geometry_a.centre_phiy_mm + dphiy,
        "sampx": float(sampx),
        "sampy": float(sampy),
    }


def _region(
    volume: np.ndarray,
    labels: np.ndarray,
    index: int,
    geometry_a: MeshGeometry,
    geometry_b: MeshGeometry,
) -> CrystalRegion:
    mask = labels == index
    weights = np.where(mask, volume, 0.0)
    total = float(weights.sum())
    com = tuple(float(c) for c in ndimage.center_of_mass(weights))
    max_flat = int(np.argmax(weights))
    max_voxel = tuple(int(i) for i in np.unravel_index(max_flat, volume.shape))
    coords = np.argwhere(mask)
    lo = tuple(int(v) for v in coords.min(axis=0))
    hi = tuple(int(v) for v in coords.max(axis=0))
    size = (
        (hi[0] - lo[0] + 1) * geometry_a.step_h_um,
        (hi[1] - lo[1] + 1) * geometry_a.step_v_um,
        (hi[2] - lo[2] + 1) * geometry_b.step_v_um,
    )
    return CrystalRegion(
        rank=0,
        position=position_from_grid(com[0], com[1], com[2], geometry_a, geometry_b),
        max_voxel_position=position_from_grid(
            max_voxel[0], max_voxel[1], max_voxel[2], geometry_a, geometry_b
        ),
        centre_of_mass=(com[0], com[1], com[2]),
        max_voxel=(max_voxel[0], max_voxel[1], max_voxel[2]),
        max_count=float(volume.flat[max_flat]),
        total_count=total,
        n_voxels=int(mask.sum()),
        bounding_box_min=(lo[0], lo[1], lo[2]),
        bounding_box_max=(hi[0], hi[1], hi[2]),
        size_um=size,
    )


def _checked_map(values: np.ndarray, geometry: MeshGeometry, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.shape != (geometry.rows, geometry.cols):
        raise ValueError(
            f"{name} has shape {array.shape}, its mesh is {geometry.rows}x{geometry.cols}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite scores")
    return np.clip(array, 0.0, None)


def _check_shared_axis(a: MeshGeometry, b: MeshGeometry) -> None:
    if a.cols != b.cols or a.step_h_um != b.step_h_um or a.centre_phiy_mm != b.centre_phiy_mm:
        raise ValueError(
            "the two meshes must share the phiy axis (same columns, step and centre): "
            f"{a.cols}x{a.step_h_um}um@{a.centre_phiy_mm} vs "
            f"{b.cols}x{b.step_h_um}um@{b.centre_phiy_mm}"
        )
    if math.isclose(math.sin(math.radians(b.omega_deg - a.omega_deg)), 0.0, abs_tol=1e-6):
        raise ValueError(
            f"the two meshes must be at different omegas (not 180 deg apart): "
            f"{a.omega_deg} and {b.omega_deg}"
        )
