"""The fault matrix: every fault the station must survive, injected at several points of
``mxpresse`` (mount, mesh, characterisation, collection, unmount) in one night per fault,
one sample per point and a clean sample after them.

For each: the sample ends in the state the fault calls for with the reason recorded; the
queue goes on (a failed sample), re-queues it (beam loss, sample-changer fault: the queue
pauses or recovers by itself), or ends the night for a person (disk full, abort) who then
resumes it; no record is lost or doubled (queue file, workflow database, LIMS: see
``harness.night_run``); no thread or process is left behind.

Device faults go through the simulator: ``FaultPlan.add(pin, kind)`` when the phase's node
starts (the fault fires at that node's next device opportunity), planned before the night
for the mount (a missing pin is found by the prefetch during the sample before). The LIMS is
stopped and started again, the workflow database locked, a task made to raise, the queue
asked to abort or skip, each when the phase's node starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bes.station.night import NightReport
from bes.tasks.characterise import Characterise
from bes.tasks.collect import Collect
from bes.tasks.mesh import ScanMesh
from bes.tasks.sample import MountSample, UnmountSample
from tests.reliability.harness import PHASE_NODE, PHASES, NightRun, Sample, night_run

Inject = Callable[[NightRun, str, str], None]
"""``inject(run, location, phase)``: make the fault happen now."""


@dataclass(frozen=True)
class Fault:
    phases: tuple[str, ...]
    inject: Inject
    expect: str
    """``failed``: FAILED, the queue goes on; ``retried``: FAILED once, re-queued, DONE;
    ``done``: DONE (the fault is not the sample's); ``aborted`` / ``skipped``."""
    words: str = ""
    """In the reason of the sample's FAILED (or ABORTED, SKIPPED) transition."""
    planned: bool = False
    """At the mount the fault is planned before the night (the pin's own fault)."""
    queue: str = "goes_on"
    """``goes_on``; ``pauses`` (waits for the beam, resumes by itself); ``recovers`` (FAULT,
    the sample changer is reset, RUNNING); ``person`` (the night ends; resumed)."""


def device(kind: str) -> Inject:
    def inject(run: NightRun, location: str, phase: str) -> None:
        run.faults.add(location, kind)

    return inject


def beam_loss(run: NightRun, location: str, phase: str) -> None:
    if phase == "mount":  # the beam goes while the robot works: the mesh finds it gone
        run.station.beamline.beam.inject_beam_loss(600.0)
    else:
        run.faults.add(location, "beam_loss")


def disk_full(run: NightRun, location: str, phase: str) -> None:
    """The data disk is full from now on (the simulated detector's quota)."""
    detector = run.station.beamline.detector
    detector.disk_quota_bytes = detector.bytes_written


def lims_down(run: NightRun, location: str, phase: str) -> None:
    """The LIMS stops; it is back when the next sample's run starts."""
    run.lims.stop()
    run.triggers.at(None, "prepare", run.lims.start)


def database_locked(run: NightRun, location: str, phase: str) -> None:
    assert run.db_lock is not None
    run.db_lock.hold(LOCK_S)


def task_error(run: NightRun, location: str, phase: str) -> None:
    ARMED.add(location)


def abort(run: NightRun, location: str, phase: str) -> None:
    run.night.manager.abort(f"abort asked during {phase}")


def skip(run: NightRun, location: str, phase: str) -> None:
    run.night.manager.skip(reason=f"skip asked during {phase}")


MOUNT_TO_COLLECT = ("mount", "mesh", "characterisation", "collection")
SCANS = ("mesh", "characterisation", "collection")
LOCK_S = 1.0
"""How long the workflow database stays locked: longer than the writer's whole retry budget
of the test (busy timeout 0.1 s, retries after 0.05, 0.1, 0.2 s)."""
ARMED: set[str] = set()
"""Samples whose next run of a patched task raises (``task_error``)."""
TASKS = {
    "mount": MountSample,
    "mesh": ScanMesh,
    "characterisation": Characterise,
    "collection": Collect,
    "unmount": UnmountSample,
}

FAULTS: dict[str, Fault] = {
    "pin_missing": Fault(("mount",), device("pin_missing"), "failed", "PinMissingError", True),
    "load_fails": Fault(("mount",), device("load_fails"), "failed", "LoadError", True),
    "sample_changer_fault": Fault(
        ("mount", "unmount"),
        device("sample_changer_fault"),
        "retried",
        "beamline fault: SampleChangerFault",
        True,
        queue="recovers",
    ),
    "motor_timeout": Fault(
        MOUNT_TO_COLLECT, device("motor_timeout"), "failed", "MotorTimeout", True
    ),
    "detector_error": Fault(SCANS, device("detector_error"), "failed", "DetectorError"),
    "beam_loss": Fault(
        MOUNT_TO_COLLECT, beam_loss, "retried", "beamline not ready: BeamLossError", queue="pauses"
    ),
    "disk_full": Fault(
        SCANS, disk_full, "retried", "beamline fault: DiskFullError", queue="person"
    ),
    "lims_down": Fault(PHASES, lims_down, "done"),
    "database_locked": Fault(PHASES, database_locked, "done"),
    "task_error": Fault(PHASES, task_error, "failed", "RuntimeError: injected task error"),
    "abort": Fault(PHASES, abort, "aborted", "abort asked during", queue="person"),
    "skip": Fault(PHASES, skip, "skipped", "skip asked during"),
}


def plan(fault: Fault) -> list[Sample]:
    """One pin per phase (the mount after the scans, so that it is an exchange with the pin
    prefetched; the unmount's pin is put back, not exchanged), then a clean pin."""
    order = [
        p
        for p in ("mesh", "characterisation", "collection", "mount", "unmount")
        if p in fault.phases
    ]
    phases: list[str | None] = [None] if order[0] == "mount" else []
    phases += [*order, None]
    return [
        Sample(
            f"1:{i}",
            phase,
            {"unmount_at_end": True} if phase == "unmount" else {},
        )
        for i, phase in enumerate(phases, 1)
    ]


@pytest.fixture
def patched_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each phase's task raises after its work for a sample in ``ARMED`` (once)."""
    ARMED.clear()
    for cls in TASKS.values():
        original = cls.run

        def run(self: Any, original: Callable[[Any], None] = original) -> None:
            original(self)
            location = str(self.sample_run.location)
            if location in ARMED:
                ARMED.discard(location)
                raise RuntimeError(f"injected task error in {type(self).__name__}")

        monkeypatch.setattr(cls, "run", run)


@pytest.fixture
def short_database_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workflow database's busy timeout and the writer's retry delays made short, so that
    a lock of a second outlasts them: the writer must go on retrying, not drop rows."""
    monkeypatch.setattr("bes.record.database.SQLITE_BUSY_TIMEOUT_S", 0.1)
    monkeypatch.setattr("bes.record.writer.RETRY_DELAYS_S", (0.05, 0.1, 0.2))


def operator(expected_reason: str) -> Callable[[NightRun, NightReport], bool]:
    """A person: the night ended early for ``expected_reason``; frees the disk and resumes."""

    def act(run: NightRun, report: NightReport) -> bool:
        assert report.queue_state == "IDLE"
        assert expected_reason in (report.queue_reason or ""), report.queue_reason
        run.station.beamline.detector.disk_quota_bytes = None
        return True

    return act


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    fault = FAULTS[name]
    if name == "task_error":
        request.getfixturevalue("patched_tasks")
    if name == "database_locked":
        request.getfixturevalue("short_database_waits")
    samples = plan(fault)
    targets = [s for s in samples if s.phase is not None]

    with night_run(tmp_path, samples) as run:
        for sample in targets:
            location, phase = sample.location, sample.phase
            assert phase is not None
            if phase == "mount" and fault.planned:
                fault.inject(run, location, phase)
            else:
                run.triggers.at(
                    location,
                    PHASE_NODE[phase],
                    lambda location=location, phase=phase: fault.inject(run, location, phase),
                )
        reason = {"disk_full": "DiskFullError", "abort": "abort asked during"}.get(name, "")
        report = run.run(operator(reason) if fault.queue == "person" else None)

        assert report.complete, [(e.location, e.state.name, e.reason) for e in report.unfinished]
        assert report.queue_reason == "queue empty"
        for sample in samples:
            check_sample(run, fault, sample)
        check_queue(run, fault, len(targets))
        if name in ("pin_missing", "load_fails", "sample_changer_fault", "motor_timeout"):
            assert sorted(pin for kind, pin in run.faults.fired) == [t.location for t in targets]
        if name == "lims_down":
            assert run.lims.stops == len(targets)
        if name == "database_locked":
            assert run.db_lock is not None and run.db_lock.held == len(targets)
            assert run.station.recorder.stats.retries > 0  # it waited, and dropped nothing


def check_sample(run: NightRun, fault: Fault, sample: Sample) -> None:
    entry = run.entry(sample.location)
    states = [c.to_state.name for c in run.history(sample.location)]
    where = (sample.location, sample.phase, entry.state.name, entry.reason)
    expect = fault.expect if sample.phase is not None else "done"
    if expect in ("done", "retried"):
        assert entry.state.name == "DONE" and entry.outcome == "collected", where
        assert entry.attempts == (2 if expect == "retried" else 1), where
        assert states.count("FAILED") == (1 if expect == "retried" else 0), where
    else:
        state = {"failed": "FAILED", "aborted": "ABORTED", "skipped": "SKIPPED"}[expect]
        assert entry.state.name == state and entry.attempts == 1, where
    if expect != "done":
        failure = next(
            c
            for c in run.history(sample.location)
            if c.to_state.name in ("FAILED", "ABORTED", "SKIPPED")
        )
        assert fault.words in (failure.reason or ""), (where, failure.reason)
        if expect in ("aborted", "skipped"):
            assert sample.phase in (failure.reason or "")
    runs = [r for entry_id, r in run.reports if entry_id == entry.id]
    assert len(runs) == entry.attempts
    assert runs[-1].status == {"DONE": "finished", "FAILED": "failed"}.get(
        entry.state.name, "aborted"
    )


def check_queue(run: NightRun, fault: Fault, targets: int) -> None:
    moves = run.queue_moves()
    to = [m[1] for m in moves]
    nights = len(run.nights)
    if fault.queue == "pauses":
        assert [m for m in moves if m[:2] == ("RUNNING", "PAUSED")] == [
            ("RUNNING", "PAUSED", "waiting for beam")
        ] * targets
        assert moves.count(("PAUSED", "RUNNING", "the beamline is ready again")) == targets
    else:
        assert "PAUSED" not in to
    if fault.queue == "recovers":
        assert to.count("FAULT") == targets
        for i, state in enumerate(to):
            if state == "FAULT":
                assert moves[i + 1][1] == "RUNNING" and "sample changer reset" in moves[i + 1][2]
    elif fault.queue == "person":
        assert nights == targets + 1
        assert to.count("FAULT") == (targets if fault.expect == "retried" else 0)
    else:
        assert "FAULT" not in to
    if fault.queue != "person":
        assert nights == 1


def test_the_matrix_covers_every_fault_of_the_simulator_and_the_issue() -> None:
    from simulators.faults import FAULT_KINDS

    assert set(FAULT_KINDS) <= set(FAULTS)
    assert {"lims_down", "database_locked", "task_error", "abort", "skip"} <= set(FAULTS)
    covered = {phase for fault in FAULTS.values() for phase in fault.phases}
    assert covered == set(PHASES)


def test_a_robot_fault_putting_back_the_pin_of_an_aborted_sample_is_reset_once(
    tmp_path: Path,
) -> None:
    """The queue puts back the pin of an aborted run itself (no fault handler ran): a robot
    fault there is cleared by one reset, as for a sample, so the next start does not wait for
    a robot in FAULT for ever."""
    samples = [Sample("1:1", "collection"), Sample("1:2")]
    with night_run(tmp_path, samples) as run:

        def abort_then_fault() -> None:
            run.faults.add("1:1", "sample_changer_fault")  # fires at the queue's unload
            run.night.manager.abort("abort asked during collection")

        run.triggers.at("1:1", PHASE_NODE["collection"], abort_then_fault)
        first = run.run()
        changer = run.station.beamline.sample_changer
        assert first.queue_reason == "aborted (abort asked during collection)"
        assert ("sample_changer_fault", "1:1") in run.faults.fired
        assert changer.mounted is None and str(changer.state) == "READY"

        report = run.run()
        assert report.complete and report.queue_reason == "queue empty"
        assert [e.state.name for e in report.entries] == ["ABORTED", "DONE"]
