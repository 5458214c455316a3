"""Beamline check: read the beamline's state, turn omega a full turn in steps with a camera
snapshot at each step, and summarise. The recipe ``workflows/beamline_check.json`` loops
``RotateAndSnapshot`` on itself until ``done``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bes.tasks.base import BesTask


class ReadBeamline(BesTask, output_names=["state", "omega_deg"]):
    """Positions, beam, shutter and sample changer state, and the beamline clock."""

    def run(self) -> None:
        beamline = self.beamline
        positions = beamline.goniometer.positions()
        mounted = beamline.sample_changer.mounted
        self.outputs.state = {
            "beamline": beamline.name,
            "positions": positions,
            "beam_available": bool(beamline.beam.available),
            "energy_kev": float(beamline.beam.energy_kev),
            "transmission": float(beamline.beam.transmission),
            "shutter_open": bool(beamline.shutter.is_open),
            "sample_changer_state": str(beamline.sample_changer.state),
            "mounted": str(mounted) if mounted is not None else None,
            "detector": beamline.detector.name,
            "clock_s": float(beamline.clock.now()),
        }
        self.outputs.omega_deg = float(positions["omega"])
        self.report("energy_kev", self.outputs.state["energy_kev"], "keV")


class RotateAndSnapshot(
    BesTask,
    input_names=["omega_start_deg", "step_deg"],
    optional_input_names=[
        "omega_deg",
        "turn_deg",
        "covered_deg",
        "n_snapshots",
        "mean_intensities",
        "state",
    ],
    output_names=[
        "omega_start_deg",
        "step_deg",
        "omega_deg",
        "turn_deg",
        "covered_deg",
        "n_snapshots",
        "mean_intensities",
        "state",
        "done",
    ],
):
    """Move omega by ``step_deg`` and take a snapshot; ``done`` once ``turn_deg`` (default
    360) is covered. Loop it on itself while not done."""

    def run(self) -> None:
        step = float(self.inputs.step_deg)
        if not step > 0:
            raise ValueError(f"step_deg must be > 0, got {step}")
        start = float(self.inputs.omega_start_deg)
        omega = float(self.input("omega_deg", start))
        turn = float(self.input("turn_deg", 360.0))
        self.check_abort()
        goniometer = self.beamline.goniometer
        goniometer.move("omega", omega + step)
        image = np.asarray(self.beamline.camera.snapshot(), dtype=np.float64)
        if image.ndim != 2 or image.size == 0:
            raise ValueError(f"camera snapshot has shape {image.shape}; expected a 2D image")
        covered = float(self.input("covered_deg", 0.0)) + step
        intensities = [*self.input("mean_intensities", []), float(image.mean())]
        self.report("snapshot_mean_intensity", intensities[-1], "adu")
        self.outputs.omega_start_deg = start
        self.outputs.step_deg = step
        self.outputs.omega_deg = float(goniometer.read("omega"))
        self.outputs.turn_deg = turn
        self.outputs.covered_deg = covered
        self.outputs.n_snapshots = int(self.input("n_snapshots", 0)) + 1
        self.outputs.mean_intensities = intensities
        self.outputs.state = self.input("state", {})
        self.outputs.done = covered >= turn - 1e-9


class Summarise(
    BesTask,
    input_names=["state", "n_snapshots", "covered_deg", "omega_start_deg", "mean_intensities"],
    optional_input_names=["turn_deg"],
    output_names=["ok", "problems", "n_snapshots", "covered_deg", "omega_end_deg", "report"],
):
    """The check's verdict: ``ok`` and the list of problems found."""

    def run(self) -> None:
        state: dict[str, Any] = dict(self.inputs.state)
        omega_end = float(self.beamline.goniometer.read("omega"))
        covered = float(self.inputs.covered_deg)
        intensities = [float(v) for v in self.inputs.mean_intensities]
        turn = float(self.input("turn_deg", 360.0))
        problems = []
        if not state.get("beam_available", False):
            problems.append("no beam")
        if covered < turn - 1e-9:
            problems.append(f"omega covered {covered:g} deg of {turn:g}")
        if not intensities or not all(math.isfinite(v) for v in intensities):
            problems.append("camera snapshots missing or not finite")
        expected_end = float(self.inputs.omega_start_deg) + covered
        if abs(omega_end - expected_end) > 1e-3:
            problems.append(f"omega ended at {omega_end:g} deg, expected {expected_end:g}")
        self.outputs.ok = not problems
        self.report("success", not problems)
        self.report("outcome", "passed" if not problems else "problems")
        if problems:
            self.report("reason", "; ".join(problems))
        self.report("omega_end_deg", omega_end, "deg")
        self.outputs.problems = problems
        self.outputs.n_snapshots = int(self.inputs.n_snapshots)
        self.outputs.covered_deg = covered
        self.outputs.omega_end_deg = omega_end
        self.outputs.report = {
            **state,
            "n_snapshots": int(self.inputs.n_snapshots),
            "covered_deg": covered,
            "omega_end_deg": omega_end,
            "mean_intensity_range": [min(intensities), max(intensities)] if intensities else [],
            "clock_end_s": float(self.beamline.clock.now()),
        }


class ReportFault(
    BesTask,
    input_names=["WorkflowException"],
    optional_input_names=["WorkflowExceptionInstance"],
    output_names=["ok", "problems"],
):
    """Error handler: the check failed with an exception."""

    def run(self) -> None:
        error = self.inputs.WorkflowException
        message = error.get("errorMessage", str(error)) if isinstance(error, dict) else str(error)
        self.outputs.ok = False
        self.outputs.problems = [message]
        self.report("success", False)
        self.report("outcome", "fault")
        self.report("reason", message)
