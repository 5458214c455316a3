"""Simulated meshes for the analysis tests: render each point as the raster would take it
(the beam sweeping one box along phiy during the exposure) and score it with the spot
finder; the crystal positions are the simulator's truth, for scoring only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bes.analysis.mesh_geometry import MeshGeometry
from bes.analysis.spotfinder import SpotFinder
from simulators.diffraction import Exposure, FrameGeometry, FrameRenderer
from simulators.world import Pin
from tests.analysis.test_spotfinder import finder_for
from tests.simulators.detector_helpers import frame_geometry

EXPOSURE_S = 0.004
"""Modern mesh default: 4 ms per point (shared/REFERENCE.md section 3)."""
BOX_UM = 20.0


@dataclass
class MeshScanner:
    renderer: FrameRenderer
    geometry: FrameGeometry
    finder: SpotFinder
    flux_ph_s: float = 2e12
    beam_um: tuple[float, float] = (20.0, 20.0)

    @classmethod
    def small(cls, seed: int = 0) -> MeshScanner:
        geometry = frame_geometry(exposure_s=EXPOSURE_S)
        return cls(FrameRenderer(seed=seed), geometry, finder_for(geometry))

    def scores(self, pin: Pin, mesh: MeshGeometry) -> np.ndarray:
        """Score of every grid point (rows x cols)."""
        out = np.zeros((mesh.rows, mesh.cols))
        for row in range(mesh.rows):
            for col in range(mesh.cols):
                start = self._pose(mesh, row, col - 0.5)
                end = self._pose(mesh, row, col + 0.5)
                exposure = Exposure(start, end, EXPOSURE_S, self.flux_ph_s, self.beam_um)
                frame = self.renderer.render(self.geometry, exposure, pin)
                out[row, col] = self.finder.find(frame.counts).score
        return out

    @staticmethod
    def _pose(mesh: MeshGeometry, row: float, col: float) -> dict[str, float]:
        pose = {"omega": mesh.omega_deg, "kappa": 0.0, "phi": 0.0, "phiz": 0.0}
        pose.update(mesh.position(row, col))
        return pose


def meshes_around(
    centre: dict[str, float], omega_deg: float, rows: int, cols: int, box_um: float = BOX_UM
) -> tuple[MeshGeometry, MeshGeometry]:
    """Two meshes at omega and omega + 90 sharing the phiy axis, centred on ``centre``."""
    return tuple(  # type: ignore[return-value]
        MeshGeometry(
            omega_deg=w,
            rows=rows,
            cols=cols,
            step_h_um=box_um,
            step_v_um=box_um,
            centre_phiy_mm=centre["phiy"],
            centre_sampx_mm=centre["sampx"],
            centre_sampy_mm=centre["sampy"],
        )
        for w in (omega_deg, omega_deg + 90.0)
    )
