"""Device faults injected for the pin (simulators/faults.py) end MXPressE ``failed`` through
its fault node, with the fault as the reason, and leave no sample on the goniometer."""

from __future__ import annotations

from pathlib import Path

import pytest

from bes.acquisition.scans import STALL_TIMEOUT_S
from bes.engine import EngineEvent, MetadataReported, NodeStarted
from bes.hal.sample_changer import SampleChangerState
from simulators.faults import FAULT_KINDS
from tests.workflows.helpers import FAST_COLLECTION, GOOD_PIN, SAMPLE, run_mx, sheet_beamline

FAULTS = {
    # kind: (where it fires, the error the run reports)
    "pin_missing": ("mount", "PinMissingError"),
    "load_fails": ("mount", "LoadError"),
    "sample_changer_fault": ("mount", "SampleChangerFault"),
    "motor_timeout": ("centre_loop", "MotorTimeout"),  # the first goniometer move after mount
    "detector_error": ("mesh_first", "DetectorError"),  # part-way through the first mesh
    "beam_loss": ("mesh_first", "BeamLossError"),  # when the shutter opens for the mesh
    "disk_full": ("mesh_first", "DiskFullError"),
}


def test_every_fault_kind_is_covered() -> None:
    assert set(FAULTS) == set(FAULT_KINDS)


@pytest.mark.parametrize("kind", list(FAULTS))
def test_a_device_fault_ends_the_sample_failed_and_unmounted(kind: str, tmp_path: Path) -> None:
    beamline = sheet_beamline({**GOOD_PIN, "faults": [kind]})
    node, error = FAULTS[kind]

    run = run_mx(beamline, "mxpresse", tmp_path, sample=SAMPLE, **FAST_COLLECTION)

    result = run.result
    assert (kind, SAMPLE) in beamline.extras["faults"].fired
    assert result.status == "failed"
    assert run.failed_nodes() == [node, "fault"]
    assert result.error is not None and result.error.node_id == "fault"
    assert error in result.error.message
    reported = _reported(run.events.events, "fault")
    assert reported["outcome"] == "failed"
    assert reported["success"] is False
    assert error in reported["reason"]
    assert "collect" not in result.node_executions
    assert beamline.sample_changer.mounted is None
    if node != "mount":  # it was mounted: the fault node put it back
        assert reported["unmounted_after_fault"] is True
        assert result.error.message.endswith("; sample unmounted")
    if kind == "sample_changer_fault":  # the robot waits for someone to look at it
        assert beamline.sample_changer.state is SampleChangerState.FAULT
    if kind == "beam_loss":
        assert "beam loss" in result.error.message


def test_a_detector_error_in_a_cbf_mesh_fails_at_once(tmp_path: Path) -> None:
    """The series stops at the faulty frame: following it must end with the detector's error,
    not wait for frames that will never come (STALL_TIMEOUT_S)."""
    beamline = sheet_beamline({**GOOD_PIN, "faults": ["detector_error"]})

    run = run_mx(beamline, "mxpresse", tmp_path, sample=SAMPLE, file_format="cbf")

    result = run.result
    assert result.status == "failed"
    assert run.failed_nodes() == ["mesh_first", "fault"]
    assert result.error is not None and "DetectorError" in result.error.message
    assert result.duration_s < STALL_TIMEOUT_S / 2
    assert beamline.sample_changer.mounted is None


def test_a_detector_error_during_the_collection_unmounts_the_sample(tmp_path: Path) -> None:
    beamline = sheet_beamline(GOOD_PIN)
    faults = beamline.extras["faults"]

    class FailTheCollection:
        def on_event(self, event: EngineEvent) -> None:
            if isinstance(event, NodeStarted) and event.node_id == "collect":
                faults.add(SAMPLE, "detector_error")

    run = run_mx(
        beamline,
        "mxpresse",
        tmp_path,
        sample=SAMPLE,
        **FAST_COLLECTION,
        subscribers=[FailTheCollection()],
    )

    result = run.result
    assert ("detector_error", SAMPLE) in faults.fired
    assert result.status == "failed"
    assert run.failed_nodes() == ["collect", "fault"]
    assert result.error is not None and "DetectorError" in result.error.message
    assert _reported(run.events.events, "fault")["unmounted_after_fault"] is True
    assert beamline.sample_changer.mounted is None


def _reported(events: list[EngineEvent], node_id: str) -> dict[str, object]:
    """The metadata a node reported (last value per key)."""
    return {
        e.key: e.value for e in events if isinstance(e, MetadataReported) and e.node_id == node_id
    }
