"""Loop centring from on-axis camera views: bring the loop onto the rotation axis in the
beam and measure it, so that the mesh scans cover it."""

from __future__ import annotations

import math

from bes.acquisition.views import take_views
from bes.analysis.loop_centring import LoopView, centring_moves, find_loop
from bes.tasks.mx_state import MxTask


class CentreLoop(MxTask, output_names=["loop_found", "loop"]):
    """Views at ``loop_omegas_deg`` -> loop tip and centre -> moves; the loop's length along
    the axis and its height at each view tell the mesh how big to be. No loop -> ``loop_found``
    false with the reason."""

    def run(self) -> None:
        run = self.sample_run
        beamline = self.beamline
        camera = beamline.camera
        views = take_views(beamline, run.parameters.loop_omegas_deg)
        with run.software.waiting("loop analysis"):
            seen = [
                (v.omega_deg, find_loop(v.image, camera.pixel_size_um, camera.beam_position_px))
                for v in views
            ]
            moves = centring_moves(seen, views[0].positions)
        if not moves.found:
            self.outputs.loop_found = False
            self.outputs.loop = {"found": False, "reason": moves.reason}
            run.loop = self.outputs.loop
            self.decide("no loop", moves.reason)
            self.conclude("no_loop", f"loop centring failed: {moves.reason}", success=False)
            run.lims.add_step("LoopCentring", "Failure", comments=moves.reason)
            return
        beamline.goniometer.move_many(moves.positions)
        face_omega, heights = _face_on(seen, camera.pixel_size_um)
        loop = {
            "found": True,
            "positions": {k: round(v, 5) for k, v in moves.positions.items()},
            "length_um": round(moves.loop_length_um or 0.0, 1),
            "face_on_omega_deg": face_omega,
            "height_face_um": round(heights[0], 1),
            "height_edge_um": round(heights[1], 1),
            "confidence": moves.confidence,
        }
        run.loop = loop
        self.outputs.loop_found = True
        self.outputs.loop = loop
        self.report("loop_length_um", loop["length_um"], "um")
        self.report("loop_height_um", loop["height_face_um"], "um")
        run.lims.add_step(
            "LoopCentring",
            "Success",
            comments=f"loop {loop['length_um']:.0f} x {loop['height_face_um']:.0f} um, "
            f"face-on at omega {face_omega:g}",
        )


def _face_on(
    seen: list[tuple[float, LoopView]], pixel_size_um: float
) -> tuple[float, tuple[float, float]]:
    """The omega where the loop looks widest, and its height there and 90 deg on (um)."""
    found = [(omega, view) for omega, view in seen if view.found]
    omega, widest = max(found, key=lambda item: item[1].height_px)
    across = min(
        found,
        key=lambda item: abs(math.remainder(item[0] - omega - 90.0, 180.0)),
    )[1]
    return omega, (widest.height_px * pixel_size_um, across.height_px * pixel_size_um)
