"""Data collection: rotation scans from the strategy or from given parameters (a single data
set, a small wedge per crystal, or sub-wedges stepped along a crystal), then the beamline's
processing hook."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bes.acquisition.processing import resolve_hook, run_hook
from bes.acquisition.rotation import Rotation, run_rotation
from bes.hal.detector import FileFormat
from bes.tasks.mx_state import Collected, MxTask, SampleRun, frame_dose_mgy

MODES = ("standard", "wedge", "helical")
DEFAULT_COLLECTION = {
    "total_range_deg": 180.0,
    "oscillation_deg": 0.1,
    "exposure_s": 0.01,
    "transmission": 0.5,
}
"""A data set without a strategy and without given values."""
EXPERIMENT_TYPE = {"standard": "OSC", "wedge": "OSC", "helical": "Helical"}


class Collect(
    MxTask, optional_input_names=["mode", "strategy"], output_names=["collections", "files"]
):
    """``mode`` ``standard``: one data set from the strategy (or the ``strategy`` input, or
    the given parameters); ``wedge``: ``wedge_range_deg`` about the current omega (one
    crystal of many); ``helical``: ``line_points`` sub-wedges stepped along the crystal."""

    def run(self) -> None:
        run = self.sample_run
        mode = str(self.get_input_value("mode", "standard"))
        if mode not in MODES:
            raise ValueError(f"unknown collection mode {mode!r}; known: {', '.join(MODES)}")
        plan = self._plan(run, mode)
        beamline = self.beamline
        if plan.get("detector_distance_mm"):
            distance = float(plan["detector_distance_mm"])
            if abs(distance - beamline.detector.geometry.distance_mm) > 1.0:
                beamline.detector.move_distance(distance)
        beamline.beam.set_transmission(float(plan["transmission"]))
        positions = _positions_along(run, mode)
        group = run.lims.start_group(EXPERIMENT_TYPE[mode], start=datetime.now(UTC))
        done: list[Collected] = []
        n_wedges = len(positions)
        range_each = float(plan["total_range_deg"]) / n_wedges
        for index, position in enumerate(positions):
            self.check_abort()
            if position:
                beamline.goniometer.move_many(position)
            start = float(plan["omega_start_deg"]) + index * range_each
            rotation = Rotation(
                omega_start_deg=start,
                oscillation_deg=float(plan["oscillation_deg"]),
                n_frames=max(1, round(range_each / float(plan["oscillation_deg"]))),
                exposure_s=float(plan["exposure_s"]),
            )
            done.append(self._collect_one(run, rotation, group))
        run.lims.end_group(group, end=datetime.now(UTC))
        run.collections.extend(done)
        dose = sum(c.dose_mgy for c in done)
        self.decide(
            "collected",
            f"{sum(c.n_frames for c in done)} frames in {len(done)} scan(s), {dose:.2f} MGy",
        )
        if mode != "wedge":
            self.conclude("collected", f"data collected ({plan['source']})", success=True)
        resolution = (run.strategy or {}).get("resolution_a")
        if resolution:
            self.report("resolution_a", resolution, "A")
        self.report("dose_mgy", round(run.dose_used_mgy, 3), "MGy")
        self.report("frames_collected", sum(c.n_frames for c in done))
        self.outputs.collections = [c.as_dict() for c in done]
        self.outputs.files = [c.master_file for c in done]

    def _plan(self, run: SampleRun, mode: str) -> dict[str, Any]:
        p = run.parameters
        given = self.get_input_value("strategy", None)
        strategy = dict(given) if isinstance(given, dict) else dict(run.strategy or {})
        source = "strategy" if strategy else "given parameters"
        plan: dict[str, Any] = {**DEFAULT_COLLECTION, **strategy}
        omega = float(self.beamline.goniometer.read("omega"))
        plan.setdefault("omega_start_deg", omega)
        if mode != "standard":
            plan["total_range_deg"] = p.wedge_range_deg
            plan["omega_start_deg"] = omega - p.wedge_range_deg / 2.0
        for name in (
            "omega_start_deg",
            "total_range_deg",
            "oscillation_deg",
            "exposure_s",
            "transmission",
            "detector_distance_mm",
        ):
            value = getattr(p, name)
            if value is not None:
                plan[name] = value
                source = "given parameters" if not strategy else "strategy with given values"
        plan["source"] = source
        return plan

    def _collect_one(self, run: SampleRun, rotation: Rotation, group: Any) -> Collected:
        beamline = self.beamline
        p = run.parameters
        target = run.reserve("dc")
        positions = beamline.goniometer.positions()
        scan = run_rotation(
            beamline, rotation, target=target, file_format=FileFormat(p.file_format)
        )
        run.files.extend(str(path) for path in scan.result.paths)
        beam = beamline.beam
        size = tuple(run.crystal["size_um"][:2]) if run.crystal else None
        dose = frame_dose_mgy(beam, rotation.exposure_s, size) * rotation.n_frames
        run.dose_used_mgy += dose
        geometry = beamline.detector.geometry
        lims = run.lims
        collection = lims.add_collection(
            group,
            self.scan_record(
                scan,
                target,
                omega_start_deg=rotation.omega_start_deg,
                oscillation_deg=rotation.oscillation_deg,
                exposure_s=rotation.exposure_s,
                transmission=beam.transmission,
                resolution_a=(run.strategy or {}).get("resolution_a"),
                comments="data collection",
            ),
        )
        lims.add_position(collection, positions)
        lims.end_collection(collection, end=scan.end, run_status="Data collection successful")
        summary = self._process(run, rotation, scan.master_file, target, geometry.distance_mm)
        if summary is not None:
            lims.add_processing(collection, summary)
        lims.add_step(
            "DataCollection",
            "Success",
            folder=str(target.directory),
            comments=f"{rotation.n_frames} x {rotation.oscillation_deg:g} deg",
        )
        return Collected(
            master_file=str(scan.master_file),
            n_frames=rotation.n_frames,
            omega_start_deg=rotation.omega_start_deg,
            oscillation_deg=rotation.oscillation_deg,
            exposure_s=rotation.exposure_s,
            transmission=float(beam.transmission),
            positions={k: round(v, 5) for k, v in positions.items()},
            dose_mgy=dose,
            processing=summary,
        )

    def _process(
        self, run: SampleRun, rotation: Rotation, master: Any, target: Any, distance_mm: float
    ) -> dict[str, Any] | None:
        hook = resolve_hook(self.beamline.extras, run.parameters.processing)
        if hook is None:
            return None
        request = {
            "master_file": str(master),
            "directory": str(target.directory),
            "prefix": target.prefix,
            "run": target.run,
            "n_frames": rotation.n_frames,
            "omega_start_deg": rotation.omega_start_deg,
            "oscillation_deg": rotation.oscillation_deg,
            "exposure_s": rotation.exposure_s,
            "wavelength_a": self.beamline.beam.wavelength_a,
            "detector_distance_mm": distance_mm,
            "sample": str(run.location) if run.location else None,
            "space_group": run.parameters.space_group,
            "cell": None,
        }
        summary = run_hook(hook, request)
        self.report("processing_status", summary.get("status"))
        if summary.get("resolution_a") is not None:
            self.report("processed_resolution_a", summary["resolution_a"], "A")
        return summary


def _positions_along(run: SampleRun, mode: str) -> list[dict[str, float]]:
    """Where each sub-scan starts: here (``{}``), or stepped along the crystal's extent in
    ``phiy`` for ``helical``."""
    if mode != "helical":
        return [{}]
    crystal = run.crystal or {}
    centre = crystal.get("position")
    size = crystal.get("size_um")
    n = run.parameters.line_points
    if not centre or not size:
        return [{}] * n
    length_mm = max(0.0, float(size[0]) - run.parameters.mesh_box_um) * 1e-3
    return [{**centre, "phiy": centre["phiy"] + length_mm * (i / (n - 1) - 0.5)} for i in range(n)]
