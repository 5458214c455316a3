"""A mesh scan: raster a 2D grid at one omega, one frame per point, each frame scored while
the raster goes on; the scores arranged into the grid as acquired."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bes.acquisition.layout import Target
from bes.acquisition.scans import ScanFrames, acquire
from bes.acquisition.software_time import SoftwareTime
from bes.analysis.mesh_geometry import MeshGeometry, acquisition_order
from bes.analysis.mesh_map import MeshMap, mesh_map
from bes.hal import Beamline
from bes.hal.detector import ArmRequest, FileFormat, TriggerMode
from bes.hal.goniometer import RasterLine


@dataclass(frozen=True)
class MeshScan:
    """A mesh's frames, its score map and what the frames say about overloads."""

    geometry: MeshGeometry
    snaked: bool
    exposure_s: float
    transmission: float
    target: Target
    scan: ScanFrames
    map: MeshMap

    @property
    def best_index(self) -> tuple[int, int] | None:
        return self.map.best_index

    @property
    def max_score(self) -> float:
        values = self.map.filled()
        return float(values.max()) if values.size else 0.0

    @property
    def best_image_number(self) -> int | None:
        """1-based image number of the best point, as the LIMS counts images."""
        index = self.best_index
        if index is None:
            return None
        order = acquisition_order(self.geometry.rows, self.geometry.cols, self.snaked)
        return order.index(index) + 1

    def overloaded_fraction(self, min_overloads: int = 1) -> float:
        """Share of frames with at least ``min_overloads`` overloaded spots."""
        frames = self.scan.frames
        if not frames:
            return 0.0
        return float(np.mean([f.n_overloaded >= min_overloads for f in frames]))


def raster_lines(geometry: MeshGeometry, exposure_s: float, snaked: bool) -> list[RasterLine]:
    """One continuous line per row, from the outer edge of its first point to the outer edge
    of its last (every other row reversed when snaked)."""
    lines = []
    for row in range(geometry.rows):
        first, last = geometry.position(row, -0.5), geometry.position(row, geometry.cols - 0.5)
        if snaked and row % 2:
            first, last = last, first
        lines.append(RasterLine(first, last, geometry.cols, exposure_s))
    return lines


def run_mesh(
    beamline: Beamline,
    geometry: MeshGeometry,
    *,
    exposure_s: float,
    snaked: bool,
    target: Target,
    file_format: FileFormat = FileFormat.HDF5,
    software: SoftwareTime | None = None,
) -> MeshScan:
    """Move omega to the mesh's angle, raster it and score every frame as it is written."""
    goniometer = beamline.goniometer
    goniometer.move("omega", geometry.omega_deg)
    lines = raster_lines(geometry, exposure_s, snaked)
    request = ArmRequest(
        n_frames=geometry.rows * geometry.cols,
        exposure_s=exposure_s,
        directory=target.directory,
        prefix=target.prefix,
        run_number=target.run,
        file_format=file_format,
        trigger_mode=TriggerMode.EXTERNAL,
        omega_start_deg=geometry.omega_deg,
        omega_increment_deg=0.0,
        header={"scan": "mesh", "rows": geometry.rows, "cols": geometry.cols, "snaked": snaked},
    )
    scan = acquire(
        beamline,
        request,
        lambda: goniometer.raster(lines),
        software=software,
        software_label="mesh analysis",
    )
    scores = [frame.score for frame in scan.frames]
    return MeshScan(
        geometry=geometry,
        snaked=snaked,
        exposure_s=exposure_s,
        transmission=float(beamline.beam.transmission),
        target=target,
        scan=scan,
        map=mesh_map(scores, geometry, snaked),
    )
