"""Mesh scans: plan the grid over the centred loop, raster it with live analysis, decide
what the map says (signal, overloads, nothing), lower the transmission or enlarge the mesh
when asked to."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np

from bes.acquisition.mesh import MeshScan, run_mesh
from bes.analysis.mesh_geometry import MeshGeometry
from bes.hal.detector import FileFormat
from bes.plots.mesh_heatmap import write_mesh_heatmap
from bes.tasks.lims_records import GridRecord, QualityRow
from bes.tasks.mx_state import MxTask, SampleRun, frame_dose_mgy

FACES = ("first", "second", "line")
"""first: at the loop's face-on omega; second: 90 deg on (X-ray centring); line: one column
90 deg on through the first mesh's best column (line scan)."""
DEFAULT_LOOP_UM = (300.0, 250.0, 60.0)
"""Mesh extent (length, face-on height, edge-on height) when the loop was not measured."""

_plots = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bes-heatmap")


class PlanMesh(MxTask, optional_input_names=["enlarge"], output_names=["attempt", "mesh"]):
    """Grids covering the loop at its face-on omega and 90 deg on, sharing the phiy axis;
    ``enlarge``: the next attempt after a mesh without signal, ``mesh_enlarge_factor`` larger."""

    def run(self) -> None:
        run = self.sample_run
        p = run.parameters
        if self.get_input_value("enlarge", False):
            run.mesh_attempt += 1
            self.decide("enlarge mesh", f"attempt {run.mesh_attempt + 1} with a larger grid")
        scale = p.mesh_enlarge_factor**run.mesh_attempt
        loop = run.loop if run.loop and run.loop.get("found") else None
        if loop:
            length, face, edge = loop["length_um"], loop["height_face_um"], loop["height_edge_um"]
            omega = float(loop["face_on_omega_deg"])
        else:
            length, face, edge = DEFAULT_LOOP_UM
            omega = float(self.beamline.goniometer.read("omega"))
        box = p.mesh_box_um
        cols = p.mesh_cols or _points(length * scale, box, p.mesh_min_points)
        rows_a = p.mesh_rows or _points(face * scale, box, p.mesh_min_points)
        rows_b = p.mesh_rows or _points(edge * scale, box, p.mesh_min_points)
        while cols * max(rows_a, rows_b) > p.mesh_max_points and cols > 1:
            cols, rows_a, rows_b = (max(1, n * 9 // 10) for n in (cols, rows_a, rows_b))
        centre = self.beamline.goniometer.positions()
        run.mesh_plan = {
            face_name: MeshGeometry(
                omega_deg=w,
                rows=rows,
                cols=cols,
                step_h_um=box,
                step_v_um=box,
                centre_phiy_mm=centre["phiy"],
                centre_sampx_mm=centre["sampx"],
                centre_sampy_mm=centre["sampy"],
            )
            for face_name, w, rows in (("first", omega, rows_a), ("second", omega + 90.0, rows_b))
        }
        run.meshes.clear()
        self.outputs.attempt = run.mesh_attempt + 1
        self.outputs.mesh = {
            "cols": cols,
            "rows": [rows_a, rows_b],
            "box_um": box,
            "omega_deg": [omega, omega + 90.0],
        }


class ScanMesh(
    MxTask,
    input_names=["face"],
    output_names=["face", "verdict", "overloaded", "max_score", "best_position", "n_frames"],
):
    """Raster one face, scoring frames as they are written; ``verdict``: ``signal``,
    ``overload`` (lower the transmission and repeat), ``retry`` (enlarge, first face only),
    ``none`` (no diffraction)."""

    def run(self) -> None:
        run = self.sample_run
        p = run.parameters
        face = str(self.inputs.face)
        if face not in FACES:
            raise ValueError(f"unknown mesh face {face!r}; known: {', '.join(FACES)}")
        geometry = run.mesh_plan.get(face) if face != "line" else _line_geometry(run)
        if geometry is None:
            raise RuntimeError(f"no mesh planned for face {face!r}: run PlanMesh first")
        beamline = self.beamline
        beamline.beam.set_transmission(run.transmission)
        beamline.goniometer.move_many(
            {
                "omega": geometry.omega_deg,
                "phiy": geometry.centre_phiy_mm,
                "sampx": geometry.centre_sampx_mm,
                "sampy": geometry.centre_sampy_mm,
            }
        )
        snapshot = np.asarray(beamline.camera.snapshot(), dtype=np.float64)
        target = run.reserve("mesh")
        self.check_abort()
        scan = run_mesh(
            beamline,
            geometry,
            exposure_s=p.mesh_exposure_s,
            snaked=p.mesh_snaked,
            target=target,
            file_format=FileFormat(p.file_format),
            software=run.software,
        )
        run.meshes[face] = scan
        run.files.extend(str(path) for path in scan.scan.result.paths)
        run.dose_used_mgy += _mesh_dose_mgy(self, scan)
        heatmap = _heatmap(self, run, scan, snapshot, face)
        self._record(run, scan, heatmap, face)

        overloaded = scan.overloaded_fraction() >= p.overload_fraction
        may_attenuate = run.attenuations < p.max_attenuations
        max_score = scan.max_score
        if overloaded and may_attenuate:
            verdict = "overload"
            self.decide(
                "overload",
                f"{scan.overloaded_fraction():.0%} of the {face} mesh's "
                f"frames have overloads at transmission {run.transmission:.3g}",
            )
        elif max_score > p.min_score:
            verdict = "signal"
            self.decide("signal", f"{face} mesh best score {max_score:.1f} > {p.min_score:g}")
        elif face == "first" and run.mesh_attempt < p.mesh_retries:
            verdict = "retry"
            self.decide(
                "no signal",
                f"{face} mesh best score {max_score:.1f} <= {p.min_score:g}; enlarging the mesh",
            )
        else:
            verdict = "none"
            reason = (
                f"no diffraction: best mesh score {max_score:.1f} <= {p.min_score:g} "
                f"after {run.mesh_attempt + 1} mesh(es)"
            )
            self.decide("no signal", reason)
            if face == "first":
                self.conclude("no_diffraction", reason, success=False)
        if max_score > 0:
            best = scan.scan.frames[scan.best_image_number - 1] if scan.best_image_number else None
            if best is not None and best.resolution_a is not None:
                run.mesh_resolution_a = best.resolution_a
        self.report("max_score", round(max_score, 3))
        self.report("mesh_points", geometry.rows * geometry.cols)
        self.outputs.face = face
        self.outputs.verdict = verdict
        self.outputs.overloaded = verdict == "overload"
        self.outputs.max_score = round(max_score, 3)
        position = scan.map.best_position
        self.outputs.best_position = (
            {k: round(v, 5) for k, v in position.items()} if position else None
        )
        self.outputs.n_frames = len(scan.scan.frames)

    def _record(self, run: SampleRun, scan: MeshScan, heatmap: str, face: str) -> None:
        """LIMS: a Mesh group with its data collection, grid, per-image scores, workflow step."""
        lims = run.lims
        beamline = self.beamline
        g = scan.geometry
        frames = scan.scan.frames
        group = lims.start_group("Mesh", start=scan.scan.start)
        collection = lims.add_collection(
            group,
            self.scan_record(
                scan.scan,
                scan.target,
                omega_start_deg=g.omega_deg,
                oscillation_deg=0.0,
                exposure_s=scan.exposure_s,
                transmission=scan.transmission,
                comments="mesh scan",
            ),
        )
        workflow_mesh = lims.add_workflow_mesh(
            best_image=scan.best_image_number,
            values=(scan.max_score,),
            cartography_path=heatmap,
        )
        lims.add_grid(
            collection,
            GridRecord(
                dx_mm=g.step_h_um * 1e-3,
                dy_mm=g.step_v_um * 1e-3,
                steps_x=g.cols,
                steps_y=g.rows,
                mesh_angle_deg=g.omega_deg,
                snaked=scan.snaked,
                microns_per_pixel=(beamline.camera.pixel_size_um,) * 2,
                snapshot_offset_px=beamline.camera.beam_position_px,
            ),
            workflow_mesh=workflow_mesh,
        )
        lims.add_quality_indicators(
            collection,
            [
                QualityRow(
                    image_number=i + 1,
                    spot_total=f.spot_total,
                    good_bragg_candidates=f.good_bragg_candidates,
                    resolution_a=f.resolution_a,
                    total_integrated_signal=f.total_integrated_signal,
                    score=f.score,
                )
                for i, f in enumerate(frames)
            ],
        )
        lims.end_collection(collection, end=scan.scan.end, run_status="Data collection successful")
        lims.end_group(group, end=datetime.now(UTC))
        lims.add_step(
            "MeshScan",
            "Success",
            folder=str(scan.target.directory),
            image_path=heatmap,
            max_score=scan.max_score,
            comments=f"{g.rows}x{g.cols} at omega {g.omega_deg:g}, best {scan.max_score:.1f}",
        )
        run.mesh_groups[face] = group


class Attenuate(MxTask, input_names=["face"], output_names=["face", "transmission"]):
    """Lower the transmission by ``attenuation_factor`` before repeating the overloaded mesh."""

    def run(self) -> None:
        run = self.sample_run
        before = run.transmission
        run.transmission = before * run.parameters.attenuation_factor
        run.attenuations += 1
        self.decide(
            "attenuate",
            f"transmission {before:.3g} -> {run.transmission:.3g} for the {self.inputs.face} mesh",
        )
        self.report("transmission", run.transmission)
        self.outputs.face = self.inputs.face
        self.outputs.transmission = run.transmission


def _points(extent_um: float, box_um: float, minimum: int) -> int:
    """Boxes covering ``extent_um`` with one to spare."""
    return max(minimum, math.ceil(extent_um / box_um) + 1)


def _line_geometry(run: SampleRun) -> MeshGeometry | None:
    """One column at 90 deg from the first mesh, through its best column."""
    first = run.meshes.get("first")
    planned = run.mesh_plan.get("second")
    if first is None or planned is None or first.best_index is None:
        return None
    _, col = first.best_index
    phiy = first.geometry.position(0, col)["phiy"]
    return MeshGeometry(
        omega_deg=planned.omega_deg,
        rows=max(planned.rows, first.geometry.rows),
        cols=1,
        step_h_um=planned.step_h_um,
        step_v_um=planned.step_v_um,
        centre_phiy_mm=phiy,
        centre_sampx_mm=planned.centre_sampx_mm,
        centre_sampy_mm=planned.centre_sampy_mm,
    )


def _mesh_dose_mgy(task: MxTask, scan: MeshScan) -> float:
    """Dose the crystal took in the mesh: one point's exposure for each frame that diffracted
    (the beam lit crystal there), at the peak of the beam."""
    lit = sum(1 for f in scan.scan.frames if f.score > 0)
    return lit * frame_dose_mgy(task.beamline.beam, scan.exposure_s)


def _heatmap(task: MxTask, run: SampleRun, scan: MeshScan, snapshot: np.ndarray, face: str) -> str:
    """The heat map PNG path; drawn in the background (hardware does not wait for a plot)."""
    camera = task.beamline.camera
    directory = run.processed_directory()
    path = f"{directory}/{scan.target.prefix}_{scan.target.run}_heatmap.png"
    title = (
        f"{run.sample_name} {face} mesh at omega {scan.geometry.omega_deg:g}: "
        f"best {scan.max_score:.1f}"
    )
    future = _plots.submit(
        write_mesh_heatmap,
        path,
        scan.map,
        snapshot,
        camera.pixel_size_um,
        camera.beam_position_px,
        title,
    )
    run.background.append(future)
    run.files.append(path)
    return path


class MoveToBest(MxTask, output_names=["position"]):
    """mesh_scan: end at the first mesh's best point (``move_to_best``)."""

    def run(self) -> None:
        run = self.sample_run
        scan = run.meshes.get("first")
        position = scan.map.best_position if scan is not None else None
        self.outputs.position = position
        if position is None:
            return
        if run.parameters.move_to_best:
            self.beamline.goniometer.move_many(position)
        self.conclude("meshed", f"best mesh score {scan.max_score:.1f}", success=True)  # type: ignore[union-attr]
