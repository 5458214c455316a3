"""The queue on the embedded station: real recipes on the simulated beamline, recorded in the
workflow database, with the engine's events turned into sample phases; the beamline faults
its runner raises again for the queue; the pin it puts back at its end, recorded in the
LIMS."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bes.engine import NodeStarted
from bes.hal.errors import BeamLossError, DeviceError, DiskFullError, SampleChangerFault
from bes.queue import (
    NewEntry,
    QueueEntry,
    QueueManager,
    QueueState,
    QueueStore,
    RunControl,
    SampleState,
)
from bes.queue.phases import PhaseReporter
from bes.station import Station, open_station
from bes.station.queue_runner import StationQueue, _raise_beamline_fault
from bes.station.report import RunReport
from tests.reliability.accounting import FAST_PARAMETERS, sheet_of_good_pins
from tests.reliability.harness import LimsOutage
from tests.workflows.helpers import GOOD_PIN

SHEET = {
    "pins": [
        {
            "location": "1:1",
            "loop": {"centre_mm": [0.0, 0.08, -0.03]},
            "crystals": [{"position_mm": [0.02, 0.09, -0.02], "size_um": [50, 40, 30]}],
        },
    ]
}
"""1:1 holds a good crystal."""
SMALL = {"mesh_rows": 5, "mesh_cols": 5, "oscillation_deg": 0.5, "total_range_deg": 5.0}
"""Small meshes and a 5 deg collection: the run takes seconds, not minutes."""


def test_a_pin_through_mxpresse_is_recorded_phase_by_phase(tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.json"
    sheet.write_text(json.dumps(SHEET))
    data = tmp_path / "data"
    with open_station(data_dir=data, no_lims=True, clock="instant", sample_sheet=sheet) as station:

        def runner(entry: QueueEntry, control: RunControl) -> Any:
            inputs = {**entry.inputs(), "data_root": str(data)}
            return station.run(
                entry.recipe,
                inputs,
                subscribers=[PhaseReporter(control)],
                labels={"sample": entry.sample},
                handle_signals=False,
            )

        with QueueStore.in_dir(data) as store:
            manager = QueueManager(
                store, runner, recorder=station.recorder, beamline=station.beamline
            )
            manager.add(NewEntry("1:1", "mxpresse", SMALL))
            manager.start()
            assert manager.wait_idle(60)
            entries = store.list()
            histories = [[c.to_state for c in store.history(e.id)] for e in entries]
        station.recorder.flush()

    assert [(e.state, e.outcome) for e in entries] == [(SampleState.DONE, "collected")]
    assert histories[0] == [
        SampleState.QUEUED,
        SampleState.MOUNTING,
        SampleState.MOUNTED,
        SampleState.RUNNING,
        SampleState.UNMOUNTING,
        SampleState.DONE,
    ]
    with sqlite3.connect(data / "workflows.db") as db:
        rows = db.execute(
            "SELECT t.sample, t.to_state, r.run_id FROM sample_transitions t"
            " LEFT JOIN runs r ON r.id = t.run_id ORDER BY t.id"
        ).fetchall()
        actions = [a for (a,) in db.execute("SELECT action FROM queue_events ORDER BY id")]
    assert [(s, state) for s, state, _ in rows if s == "1:1"] == [
        ("1:1", state.name) for state in histories[0][1:]
    ]
    assert {run for s, state, run in rows if s == "1:1" and state != "MOUNTING"} == {
        entries[0].run_id
    }
    assert actions == ["added", "running", "idle"]


# -- beamline faults the runner raises again ---------------------------------------------------


def failed_report(reason: str | None, error: str) -> RunReport:
    summary = {"reason": reason} if reason is not None else {}
    return RunReport("mxpresse", "1:1", "run-1", "failed", "", summary, "sqlite://", error)


UNMOUNT_FAULT = (
    "; sample left mounted: unmount failed (SampleChangerFault: sample_changer (pin 1:1): "
    "robot fault during unload of 1:1; check the robot, then reset())"
)


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        (  # the fault handler's summary names the root cause
            "DetectorError: detector (pin 1:1): frame 2 failed",
            "node 'fault': exception: SampleFailed: DetectorError: detector (pin 1:1): frame 2 "
            f"failed{UNMOUNT_FAULT}",
        ),
        (None, f"node 'fault': exception: SampleFailed: MotorTimeout: omega: late{UNMOUNT_FAULT}"),
        ("a task error naming SampleChangerFault: sample_changer: in its text", "RuntimeError"),
    ],
)
def test_a_fault_met_after_the_root_cause_is_not_raised_again(
    reason: str | None, error: str
) -> None:
    """The queue must not re-queue a sample that failed on its own fault because the unmount
    of the fault handler then met a robot fault."""
    assert _raise_beamline_fault(failed_report(reason, error)) is None


@pytest.mark.parametrize(
    ("reason", "error", "raised"),
    [
        (
            "SampleChangerFault: sample_changer (pin 1:3): gripper lost the pin",
            "node 'fault': exception: SampleFailed: SampleChangerFault: sample_changer (pin 1:3): "
            f"gripper lost the pin{UNMOUNT_FAULT}",
            SampleChangerFault("sample_changer", "gripper lost the pin", "1:3"),
        ),
        (  # failed before PrepareRun: the summary's reason is the error's last line
            "SampleFailed: BeamLossError: beam: no beam",
            "node 'fault': exception: SampleFailed: BeamLossError: beam: no beam",
            BeamLossError("beam", "no beam"),
        ),
        (  # a recipe without a fault handler: the device error as the engine reports it
            None,
            "node 'collect': exception: DiskFullError: detector (pin 1:2): no room for dc-1-1",
            DiskFullError("detector", "no room for dc-1-1", "1:2"),
        ),
    ],
)
def test_a_run_that_ended_on_a_beamline_fault_raises_it_again(
    reason: str | None, error: str, raised: DeviceError
) -> None:
    with pytest.raises(type(raised)) as caught:
        _raise_beamline_fault(failed_report(reason, error))
    assert str(caught.value) == str(raised)
    assert (caught.value.device, caught.value.pin) == (raised.device, raised.pin)


# -- the pin put back at the end of the queue --------------------------------------------------


@contextlib.contextmanager
def queue_leaving_a_pin(tmp_path: Path) -> Iterator[tuple[Station, StationQueue]]:
    """A station with its embedded LIMS whose queue ran 1:1 and, as asked, left it mounted."""
    sheet = sheet_of_good_pins(tmp_path / "world.json", ["1:1"], GOOD_PIN)
    with open_station(
        data_dir=tmp_path / "data",
        clock="instant",
        sample_sheet=sheet,
        overrides={"faults": {"once": True}},
    ) as station:
        queue = StationQueue(station)
        try:
            queue.manager.add(
                NewEntry("1:1", "mxpresse", {**FAST_PARAMETERS, "unmount_at_end": False})
            )
            queue.manager.start()
            assert queue.manager.wait_idle(60)
            assert str(station.beamline.sample_changer.mounted) == "1:1"
            yield station, queue
        finally:
            queue.close()


def robot_actions(station: Station) -> list[dict[str, Any]]:
    assert station.lims is not None
    station.lims.flush()
    return station.lims.records("robot-actions")


@pytest.mark.parametrize("robot_fault", [False, True])
def test_the_pin_put_back_at_the_end_of_the_queue_is_a_lims_robot_action(
    tmp_path: Path, robot_fault: bool
) -> None:
    with queue_leaving_a_pin(tmp_path) as (station, queue):
        changer = station.beamline.sample_changer
        if robot_fault:
            station.beamline.extras["faults"].add("1:1", "sample_changer_fault")
        queue.close()  # the queue ends: the pin goes back (reset once on a robot fault)
        assert changer.mounted is None and str(changer.state) == "READY"
        actions = robot_actions(station)

    load, *unloads = actions
    assert (load["actionType"], load["status"]) == ("LOAD", "SUCCESS")
    expected = [("UNLOAD", "SUCCESS", "put back at the end of the queue")]
    if robot_fault:
        expected = [
            (
                "UNLOAD",
                "ERROR",
                "SampleChangerFault: sample_changer (pin 1:1): robot fault "
                "during unload of 1:1; check the robot, then reset()",
            ),
            ("UNLOAD", "SUCCESS", "put back at the end of the queue, after a sample changer reset"),
        ]
    assert [(a["actionType"], a["status"], a["message"]) for a in unloads] == expected
    for unload in unloads:  # the sample and place of the run that mounted it
        assert unload["blsampleId"] == load["blsampleId"] is not None
        assert (unload["dewarLocation"], unload["containerLocation"]) == (1, 1)


def test_a_lims_that_is_down_does_not_stop_the_unload_and_gets_its_record_later(
    tmp_path: Path,
) -> None:
    with queue_leaving_a_pin(tmp_path) as (station, queue):
        assert station.lims is not None
        outage = LimsOutage(station)
        try:
            outage.stop()
            queue.close()
            assert station.beamline.sample_changer.mounted is None
            assert station.lims.pending() >= 1  # the RobotAction waits in the outbox
            outage.start()
            actions = robot_actions(station)
            assert station.lims.pending() == 0
        finally:
            outage.close()

    assert [(a["actionType"], a["status"]) for a in actions] == [
        ("LOAD", "SUCCESS"),
        ("UNLOAD", "SUCCESS"),
    ]


def test_a_queue_stopped_between_samples_puts_back_the_pin_it_left_for_the_next(
    tmp_path: Path,
) -> None:
    """1:1 is left mounted for 1:2; the beam goes at 1:1's last step, so the queue waits
    (PAUSED) with the pin on the goniometer; a stop then ends the queue, and the pin goes
    back before ``wait_idle`` returns, recorded in the LIMS."""
    sheet = sheet_of_good_pins(tmp_path / "world.json", ["1:1", "1:2"], GOOD_PIN)
    with open_station(data_dir=tmp_path / "data", clock="instant", sample_sheet=sheet) as station:

        class BeamGoesAtTheEnd:
            def on_event(self, event: object) -> None:
                if isinstance(event, NodeStarted) and event.node_id == "summarise":
                    station.beamline.beam.inject_beam_loss(1.0e6)

        with StationQueue(station, subscribers=[BeamGoesAtTheEnd()], poll_s=0.05) as queue:
            manager, changer = queue.manager, station.beamline.sample_changer
            for location in ("1:1", "1:2"):
                manager.add(NewEntry(location, "mxpresse", FAST_PARAMETERS))
            manager.start()
            deadline = time.monotonic() + 60.0
            while manager.state is not QueueState.PAUSED and time.monotonic() < deadline:
                time.sleep(0.02)
            assert manager.state is QueueState.PAUSED
            assert str(changer.mounted) == "1:1"  # left for 1:2

            manager.stop("the night is over")
            assert manager.wait_idle(60)
            assert changer.mounted is None  # put back before wait_idle returned
            states = [e.state for e in manager.store.list()]
            actions = robot_actions(station)

    assert states == [SampleState.DONE, SampleState.QUEUED]
    assert [(a["actionType"], a["status"], a.get("message")) for a in actions] == [
        ("LOAD", "SUCCESS", None),
        ("UNLOAD", "SUCCESS", "put back at the end of the queue"),
    ]
