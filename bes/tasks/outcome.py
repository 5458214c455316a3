"""How an MX recipe ends: the summary of the sample's run, or the fault handler that records
a failure, unmounts where it can and ends the run ``failed``."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from bes.tasks.mx_state import MxTask, SampleRun
from bes.tasks.sample import robot_move

BACKGROUND_TIMEOUT_S = 60.0


class SampleFailed(RuntimeError):
    """The recipe failed on a fault (device, task error); raised by the fault handler after
    recording it, so that the run ends ``failed`` with the original reason."""


class Summarise(
    MxTask,
    optional_input_names=["default_outcome", "unmount"],
    output_names=["outcome", "success", "summary"],
):
    """The end of every MX recipe: what was decided and found, files, beamline time; the
    LIMS workflow closed. ``default_outcome``: the verdict when no step gave one."""

    def run(self) -> None:
        run = self.sample_run
        if run.outcome is None:
            outcome = str(self.get_input_value("default_outcome", "done"))
            self.conclude(outcome, f"{run.recipe} finished", success=True)
        _wait_background(run)
        success = bool(run.success)
        summary = summarise(self, run, success)
        run.lims.sample_status(str(run.outcome), run.reason)
        run.lims.end_workflow("Success" if success else "Failure", run.reason)
        self.report("beamline_time_s", summary["beamline_time_s"], "s")
        self.report("software_wait_s", summary["software_wait_s"], "s")
        self.outputs.outcome = run.outcome
        self.outputs.success = success
        self.outputs.summary = summary


class HandleFault(
    MxTask,
    input_names=["WorkflowException"],
    optional_input_names=["unmount", "WorkflowExceptionInstance"],
    output_names=["outcome"],
):
    """Error handler of every MX recipe (``default_error_node``): records the fault, unmounts
    the sample when the recipe mounts its own (``unmount``), closes the LIMS records, then
    ends the run ``failed`` with the fault as reason."""

    def run(self) -> None:
        reason = fault_reason(self.inputs.WorkflowException)
        state = self.context.state.get("sample_run")
        if not isinstance(state, SampleRun):  # failed before PrepareRun made it
            raise SampleFailed(reason)
        run = state
        self.conclude("failed", reason, success=False)
        run.lims.add_step("Fault", "Error", comments=reason)
        notes = []
        if self.get_input_value("unmount", False) and run.parameters.unmount_at_end:
            notes.append(self._unmount())
        _wait_background(run)
        run.lims.sample_status("failed", reason)
        run.lims.end_workflow("Error", "; ".join([reason, *filter(None, notes)]))
        raise SampleFailed(reason + ("; " + notes[0] if notes and notes[0] else ""))

    def _unmount(self) -> str:
        """Put the pin back if one is mounted; the note says what happened."""
        changer = self.beamline.sample_changer
        try:
            self.beamline.shutter.close()
            if changer.mounted is None:
                return ""
            robot_move(self, "UNLOAD", changer.unload, str(changer.mounted))
        except Exception as exc:
            self.report("unmount_failed", f"{type(exc).__name__}: {exc}")
            return f"sample left mounted: unmount failed ({type(exc).__name__}: {exc})"
        self.report("unmounted_after_fault", True)
        return "sample unmounted"


def fault_reason(error: Any) -> str:
    """``Type: message`` of the root exception in ewoks' ``WorkflowException`` (the traceback
    prints the root cause first, then the wrappers)."""
    if not isinstance(error, dict):
        return str(error)
    text = "".join(error.get("traceBack") or [])
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith(_NOT_A_CAUSE):
            kind, colon, message = line.strip().partition(":")
            return kind.rsplit(".", 1)[-1] + colon + message
    return str(error.get("errorMessage", error))


_NOT_A_CAUSE = ("Traceback", "During handling", "The above exception")


def summarise(task: MxTask, run: SampleRun, success: bool) -> dict[str, Any]:
    beamline = task.beamline
    beamline_s = beamline.clock.now() - run.start_beamline_s
    return {
        "recipe": run.recipe,
        "sample": str(run.location) if run.location else None,
        "sample_name": run.sample_name,
        "outcome": run.outcome,
        "success": success,
        "reason": run.reason,
        "decisions": list(run.decisions),
        "loop": run.loop,
        "crystal": run.crystal,
        "n_crystals": len(run.centring.regions) if run.centring else 0,
        "characterisation": run.characterisation,
        "strategy": run.strategy,
        "collections": [c.as_dict() for c in run.collections],
        "dose_mgy": round(run.dose_used_mgy, 3),
        "files": list(run.files),
        "beamline_time_s": round(beamline_s, 2),
        "software_wait_s": round(run.software.total_s, 3),
        "software_wait_by_step_s": {k: round(v, 3) for k, v in run.software.by_label.items()},
        "lims_errors": list(run.lims.errors),
    }


def _wait_background(run: SampleRun) -> None:
    """Let background work (heat maps) finish; its errors are noted, never raised."""
    for future in run.background:
        try:
            future.result(timeout=BACKGROUND_TIMEOUT_S)
        except (Exception, concurrent.futures.TimeoutError) as exc:
            run.decisions.append(f"background work failed: {type(exc).__name__}: {exc}")
    run.background.clear()
