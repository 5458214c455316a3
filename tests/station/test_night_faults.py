"""Beamline-level faults in a night: a beam loss re-queues the sample and the queue waits for
the beam, then goes on by itself; a sample-changer fault puts the queue in FAULT, the changer
is reset once and the sample retried; a fault that comes back ends the night for a person; a
robot fault met by the unmount of a sample that failed on its own fault fails that sample,
and the queue resets the robot before the next."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bes.queue.readiness import CHANGER_FAULT
from bes.station import open_station
from bes.station.night import Night, plan_demo
from tests.reliability.harness import PHASE_NODE, Sample, night_run
from tests.station.test_night import NIGHT_PARAMETERS
from tests.workflows.helpers import GOOD_PIN


def good_pins(tmp_path: Path, n: int) -> Path:
    sheet = tmp_path / "world.json"
    pins = [{**GOOD_PIN, "location": f"1:{i}"} for i in range(1, n + 1)]
    sheet.write_text(json.dumps({"fill": "missing", "pins": pins}))
    return sheet


def night_with_faults(tmp_path: Path, per_pin: dict[str, list[str]], once: bool) -> Any:
    events: list[dict[str, Any]] = []
    faults = {"faults": {"per_pin": per_pin, "once": once}}
    with open_station(
        data_dir=tmp_path / "data",
        clock="instant",
        no_lims=True,
        sample_sheet=good_pins(tmp_path, 3),
        overrides=faults,
    ) as station:
        with Night(station, poll_s=0.02, queue_subscribers=[events.append]) as night:
            entries = night.add(plan_demo(3, parameters=NIGHT_PARAMETERS))
            report = night.run(entries, handle_signals=False)
            history = {e.location: night.queue.store.history(e.id) for e in report.entries}
        mounted = station.beamline.sample_changer.mounted
    return report, history, events, mounted


def test_a_beam_loss_requeues_the_sample_and_the_queue_resumes_when_the_beam_is_back(
    tmp_path: Path,
) -> None:
    report, history, events, mounted = night_with_faults(tmp_path, {"1:2": ["beam_loss"]}, True)

    assert report.complete
    assert [(e.location, e.state.name, e.outcome) for e in report.entries] == [
        ("1:1", "DONE", "collected"),
        ("1:2", "DONE", "collected"),
        ("1:3", "DONE", "collected"),
    ]
    second = [c.to_state.name for c in history["1:2"]]
    assert second.count("FAILED") == 1 and second[-1] == "DONE"
    assert report.entries[1].attempts == 2
    queue_moves = [(e["from_state"], e["to_state"]) for e in events if e["type"] == "queue"]
    assert ("RUNNING", "PAUSED") in queue_moves  # waiting for beam
    assert ("PAUSED", "RUNNING") in queue_moves  # by itself, once the beam is back
    waits = [e["reason"] for e in events if e["type"] == "queue" and e["to_state"] == "PAUSED"]
    assert waits == ["waiting for beam"]
    assert mounted is None


def test_a_sample_changer_fault_is_recovered_once_by_a_reset(tmp_path: Path) -> None:
    report, _, events, mounted = night_with_faults(
        tmp_path, {"1:3": ["sample_changer_fault"]}, True
    )

    assert report.complete
    assert [e.state.name for e in report.entries] == ["DONE", "DONE", "DONE"]
    assert report.entries[2].attempts == 2
    queue_states = [e["to_state"] for e in events if e["type"] == "queue"]
    assert "FAULT" in queue_states
    assert queue_states[queue_states.index("FAULT") + 1] == "RUNNING"
    assert mounted is None


def test_a_fault_that_comes_back_ends_the_night_for_a_person(tmp_path: Path) -> None:
    report, _, _, _ = night_with_faults(tmp_path, {"1:2": ["sample_changer_fault"]}, False)

    assert not report.complete
    states = [e.state.name for e in report.entries]
    assert states[0] == "DONE"
    assert states[1:] == ["QUEUED", "QUEUED"]  # waiting for bes night --resume
    assert report.queue_state == "IDLE"
    assert "needs a person" in (report.queue_reason or "")


def test_a_detector_error_whose_unmount_meets_a_robot_fault_fails_the_sample_and_resets(
    tmp_path: Path,
) -> None:
    """The sample ends FAILED on its own fault (the robot fault its unmount met is noted, not
    taken for the run's): it is not re-queued. The robot it left in FAULT is met before the
    next sample: the queue goes to FAULT, resets it once and goes on (no wait for ever)."""
    samples = [Sample("1:1", "collection", {"unmount_at_end": True}), Sample("1:2")]
    with night_run(tmp_path, samples) as run:

        def detector_error_then_robot_fault() -> None:
            run.faults.add("1:1", "detector_error")
            run.faults.add("1:1", "sample_changer_fault")  # fires at the fault handler's unmount

        run.triggers.at("1:1", PHASE_NODE["collection"], detector_error_then_robot_fault)
        report = run.run()

        assert report.complete
        assert [e.state.name for e in report.entries] == ["FAILED", "DONE"]
        first = run.entry("1:1")
        assert first.attempts == 1
        assert first.reason is not None
        assert "DetectorError: detector (pin 1:1)" in first.reason
        assert "unmount failed (SampleChangerFault" in first.reason
        assert "beamline fault" not in first.reason, first.reason
        assert run.faults.fired == [("detector_error", "1:1"), ("sample_changer_fault", "1:1")]
        second = run.entry("1:2").id
        assert run.queue_moves() == [
            ("IDLE", "RUNNING", "night started"),
            ("RUNNING", "FAULT", CHANGER_FAULT.reason),
            ("FAULT", "RUNNING", f"sample changer reset; going on with entry {second}"),
            ("RUNNING", "IDLE", "queue empty"),
        ]
