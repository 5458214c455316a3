"""``StationQueue``: the sample queue (``bes.queue``) running its entries on an open station.

One attempt at one entry is one ``Station.run`` of the entry's recipe on its pin, with:

- the run's id, phases (MOUNTED, RUNNING, UNMOUNTING) and pause points given to the queue
  (``PhaseReporter`` without its event-time pause point: the engine pauses between steps
  through ``RunContext.between_steps``, holding no lock);
- abort and skip reaching the run's context at once (the engine stops the beamline);
- the pin left on the goniometer while more samples wait, so that the next mount is one
  exchange, and the pin after it fetched from the dewar during the run when the sample
  changer can prefetch; the last pin (or the pin of a stopped or aborted queue) unloaded,
  and recorded in the LIMS as the run's robot moves are;
- a run that failed on a beamline-level fault raising it again (``SampleChangerFault``:
  the queue goes to FAULT, the changer is reset once; ``DiskFullError``: the queue goes to
  FAULT and waits for a person to free the data disk; ``BeamLossError``: the sample is
  re-queued and the queue waits for the beam), decided by the fault the run ended on, not
  by a fault its fault handler met afterwards.

``beamline_lock`` is held while a sample runs: a REST client that drives the beamline outside
the queue (``POST /RUN``) takes it too, so that the two never move the hardware at once.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bes.engine.events import EngineEvent, NodeEnded
from bes.hal.errors import BeamLossError, DeviceError, DiskFullError, SampleChangerFault
from bes.hal.sample_changer import Location
from bes.queue import (
    QueueEntry,
    QueueManager,
    QueueState,
    QueueStore,
    RunControl,
    beamline_readiness,
)
from bes.queue.phases import MOUNT_TASKS, PhaseReporter
from bes.queue.readiness import NotReady, Readiness, not_ready
from bes.queue.store import RecoveryPolicy

if TYPE_CHECKING:
    from bes.engine.context import RunContext
    from bes.engine.events import Subscriber
    from bes.hal import Beamline
    from bes.station.report import RunReport
    from bes.station.station import Station
    from bes.tasks.lims_records import LimsWriter

logger = logging.getLogger(__name__)

RAISED_AGAIN: dict[str, type[DeviceError]] = {
    "SampleChangerFault": SampleChangerFault,
    "BeamLossError": BeamLossError,
    "DiskFullError": DiskFullError,
}
"""Faults that end a run ``failed`` but are the beamline's, not the sample's: the runner
raises them again so that the queue acts on them (by the ``Type:`` of the root cause, as the
fault handler gives it).
A full data disk fails every sample after it, so the queue stops for a person instead of
running the dewar through to FAILED."""

READY_PACE_S = 5.0
"""Beamline time between two looks at a beamline the queue waits for."""

RunListener = Callable[[QueueEntry, "RunReport"], None]


class StationQueue:
    """The queue of ``station``: its store (``DATA_DIR/queue.sqlite`` unless given), the
    manager and the runner. ``subscribers``: engine-event subscribers of every run (progress
    displays, REST event streams); ``on_report(entry, report)``: called after each run."""

    def __init__(
        self,
        station: Station,
        *,
        store: QueueStore | None = None,
        policy: RecoveryPolicy = "requeue",
        recover_sample_changer: bool = True,
        keep_going: bool = True,
        prefetch: bool = True,
        poll_s: float = 1.0,
        subscribers: Iterable[Subscriber] = (),
        on_report: RunListener | None = None,
    ) -> None:
        self.station = station
        self.store = store if store is not None else QueueStore.in_dir(station.data_dir)
        self._own_store = store is None
        self.prefetch = prefetch
        self.subscribers: list[Subscriber] = list(subscribers)
        self.on_report = on_report
        self.beamline_lock = threading.Lock()
        self.reports: dict[int, RunReport] = {}
        """The last run report of each entry run by this process."""
        self._left_for_next = False
        """The pin on the goniometer was left there by the queue for its next entry (not at
        the entry's own ``unmount_at_end`` false): put back if the queue ends instead."""
        self._pin_lims: LimsWriter | None = None
        """The LIMS writer of the run whose pin is on the goniometer (its visit, its sample):
        where the queue records putting that pin back outside any run."""
        self.manager = QueueManager(
            self.store,
            self.run_entry,
            recorder=station.recorder,
            beamline=station.beamline,
            keep_going=keep_going,
            recover_sample_changer=recover_sample_changer,
            policy=policy,
            poll_s=poll_s,
            beamline_ready=clock_paced_readiness(station.beamline),
            on_idle=self._put_back_when_idle,
        )
        self.backfilled = backfill_transitions(self.store, station)
        """Sample transitions of an earlier process recorded now (see the function)."""
        self.runs_closed = close_interrupted_runs(self.store, station)
        """Workflow runs a crash left ``running``, recorded as ended now (see the function)."""

    # -- the runner --------------------------------------------------------------------

    def run_entry(self, entry: QueueEntry, control: RunControl) -> RunReport:
        """One attempt at ``entry`` (the queue's runner)."""
        station = self.station
        with self.beamline_lock:
            context = station.context()
            context.between_steps = control.checkpoint
            control.on_abort(context.request_abort)
            run_id = uuid.uuid4().hex
            control.started(run_id)
            # the station's data directory last: no entry moves files elsewhere
            inputs: dict[str, Any] = {**entry.inputs(), "data_root": str(station.data_dir)}
            leave_mounted = "unmount_at_end" not in entry.parameters and self._more_to_come(entry)
            if leave_mounted:
                inputs["unmount_at_end"] = False
            subscribers: list[Subscriber] = [
                PhaseReporter(control, pause_points=False),
                *([_Prefetcher(self, entry)] if self.prefetch else []),
                *self.subscribers,
            ]
            report = station.run(
                entry.recipe,
                inputs,
                subscribers=subscribers,
                labels={"sample": entry.sample},
                handle_signals=False,
                context=context,
                run_id=run_id,
            )
            self.reports[entry.id] = report
            self._keep_pin_lims(context)
            asked_to_keep = entry.parameters.get("unmount_at_end") is False
            self._left_for_next = not asked_to_keep
            if not asked_to_keep and not self._more_to_come(entry):
                self._unload_left_pin()  # also after an abort or skip: no fault handler ran
        if self.on_report is not None:
            try:
                self.on_report(entry, report)
            except Exception:
                logger.exception("run listener failed on queue entry %s", entry.id)
        _raise_beamline_fault(report)
        return report

    def _more_to_come(self, entry: QueueEntry) -> bool:
        """Another entry waits and the queue goes on after this one."""
        if self.manager.state not in (QueueState.RUNNING, QueueState.PAUSING, QueueState.PAUSED):
            return False
        following = self.store.next_queued()
        return following is not None and following.id != entry.id

    def next_location(self, entry: QueueEntry) -> Location | None:
        """The pin the queue will mount after ``entry``, if any."""
        following = self.store.next_queued()
        if following is None or following.id == entry.id:
            return None
        try:
            return Location.parse(following.location)
        except ValueError:
            return None

    def _keep_pin_lims(self, context: RunContext) -> None:
        """Keep the LIMS writer of the run whose pin stays on the goniometer (forget it once
        nothing is mounted; a pin another run left stays with that run's writer)."""
        from bes.tasks.mx_state import STATE_KEY, SampleRun

        run = context.state.get(STATE_KEY)
        mounted = self.station.beamline.sample_changer.mounted
        if isinstance(run, SampleRun) and mounted is not None and run.location == mounted:
            self._pin_lims = run.lims
        elif mounted is None:
            self._pin_lims = None

    def _put_back_when_idle(self) -> None:
        """The queue went IDLE (``on_idle``): a pin the queue left mounted for a next entry
        that will not come now (stopped or aborted between samples, e.g. while paused) is
        put back, as after the last sample."""
        with self.beamline_lock:
            if self._left_for_next:
                self._unload_left_pin()

    def _unload_left_pin(self) -> None:
        """The queue ends (empty, stopped or aborted): put back the pin left mounted."""
        self._left_for_next = False
        changer = self.station.beamline.sample_changer
        if changer.mounted is None:
            return
        try:
            self._unload("put back at the end of the queue")
            return
        except SampleChangerFault as exc:
            if not self.manager.recover_sample_changer:
                logger.error(
                    "could not unload %s at the end of the queue: %s", changer.mounted, exc
                )
                return
            # the configured recovery, as for a sample: reset once and try again (else the
            # robot would stay in FAULT and the next start of the queue wait for it for ever)
            logger.warning(
                "unload of %s at the end of the queue: %s; resetting", changer.mounted, exc
            )
        except DeviceError as exc:
            logger.error("could not unload %s at the end of the queue: %s", changer.mounted, exc)
            return
        try:
            changer.reset()
            self._unload("put back at the end of the queue, after a sample changer reset")
        except DeviceError as exc:
            logger.error("could not unload %s after a reset: %s", changer.mounted, exc)

    def _unload(self, note: str) -> None:
        """Unload the mounted pin, recorded in the LIMS as a RobotAction UNLOAD like the robot
        moves of a run (SUCCESS with ``note``, or ERROR with the fault, raised again)."""
        changer = self.station.beamline.sample_changer
        pin, start = str(changer.mounted), datetime.now(UTC)
        try:
            changer.unload()
        except DeviceError as exc:
            self._record_unload(pin, start, "ERROR", f"{type(exc).__name__}: {exc}")
            raise
        self._record_unload(pin, start, "SUCCESS", note)

    def _record_unload(self, pin: str, start: datetime, status: str, message: str) -> None:
        """Record an unload outside any run through the writer of the run that mounted the pin
        (none: no LIMS, or the pin was mounted by an earlier process). Never raises: the pin
        is back whatever the record does; a LIMS that is down keeps the write in the client's
        outbox, and one that refuses it is logged."""
        writer = self._pin_lims
        if writer is None or writer.location != pin:
            if self.station.lims is not None:
                logger.info("unload of %s not recorded in the LIMS: no run here mounted it", pin)
            return
        try:
            writer.robot_action(
                "UNLOAD",
                start=start,
                end=datetime.now(UTC),
                status=status,
                message=message,
                location=pin,
            )
        except Exception:
            logger.exception("the LIMS record of the unload of %s failed", pin)

    # -- life cycle ----------------------------------------------------------------------

    def close(self, timeout_s: float = 30.0) -> None:
        """Abort what runs, wait for the worker, put back a pin left mounted, close the store
        (when this object opened it)."""
        self.manager.close(timeout_s)
        with self.beamline_lock:
            self._unload_left_pin()
        if self._own_store:
            self.store.close()

    def __enter__(self) -> StationQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _Prefetcher:
    """After the mount node, asks the sample changer to fetch the next pin of the queue."""

    def __init__(self, queue: StationQueue, entry: QueueEntry) -> None:
        self.queue = queue
        self.entry = entry

    def on_event(self, event: EngineEvent) -> None:
        if not (
            isinstance(event, NodeEnded)
            and event.status == "finished"
            and event.task_identifier in MOUNT_TASKS
        ):
            return
        changer = self.queue.station.beamline.sample_changer
        if not changer.supports_prefetch:
            return
        location = self.queue.next_location(self.entry)
        if location is None:
            return
        try:
            changer.prefetch(location)
        except DeviceError as exc:  # the exchange will meet the fault again and record it
            logger.warning("prefetch of %s failed: %s", location, exc)


def _raise_beamline_fault(report: RunReport) -> None:
    """Raise the beamline-level fault a failed run ended on, judged by its root cause only:
    the run's summary ``reason`` (the fault handler's ``Type: device (pin P): message``),
    else the start of its error. A fault met after the root cause (the unmount of a sample
    that failed on a DetectorError meeting a robot fault: ``...; sample left mounted: unmount
    failed (SampleChangerFault: ...)``) leaves the sample FAILED with its own reason; the
    changer's FAULT is then met by the readiness check before the next sample."""
    if report.status != "failed":
        return
    reason = report.summary.get("reason") if report.summary else None
    for text in (reason, report.error):
        found = _FAULT.match(text) if isinstance(text, str) else None
        if found is not None:
            kind, device, pin, message = found.groups()
            raise RAISED_AGAIN[kind](device, message.strip(), pin)


_FAULT = re.compile(
    r"(?:(?:node '[^']*'|workflow): \w+: )?(?:SampleFailed: )?"
    r"(" + "|".join(RAISED_AGAIN) + r"): (\w+)(?: \(pin ([^)]+)\))?: (.*)$",
    re.DOTALL,
)
"""``Type: device (pin P): message`` at the start of a text (as ``DeviceError`` words itself),
after what precedes it in a run's error: the engine's ``node 'id': exception: `` and the fault
handler's ``SampleFailed: ``."""


def clock_paced_readiness(beamline: Beamline, pace_s: float = READY_PACE_S) -> Readiness:
    """The default readiness check (beam on, sample changer READY), which lets ``pace_s`` of
    beamline time pass before it looks again while the queue waits: a beam loss ends in
    beamline time, which a simulated instant clock only counts when something waits on it.
    A fault (sample changer in FAULT) is no wait: the queue goes to FAULT, and the look after
    its recovery is at once."""
    check = beamline_readiness(beamline)
    waiting = [False]

    def ready() -> str | NotReady | None:
        if waiting[0]:
            beamline.clock.sleep(pace_s)
        wait = check()
        held = not_ready(wait)
        waiting[0] = held is not None and not held.fault
        return wait

    return ready


def backfill_transitions(store: QueueStore, station: Station) -> int:
    """Record in the workflow database the sample transitions the queue file holds but the
    database lacks, with their own times and reasons: the queue commits a change before the
    recorder's writer thread does, so a process killed in between leaves the database behind.
    Returns how many were recorded."""
    from sqlalchemy import select

    from bes.record.schema import SampleTransition

    entries = store.list()
    if not entries:
        return 0
    samples = sorted({entry.sample for entry in entries})
    column = SampleTransition
    with station.database.engine.connect() as connection:
        rows = connection.execute(
            select(column.sample, column.to_state, column.time).where(column.sample.in_(samples))
        ).all()
    recorded = {(sample, state, round(when, 3)) for sample, state, when in rows}
    missing = 0
    for entry in entries:
        for change in store.history(entry.id):
            if change.from_state is None:  # the entry was added: a queue event, not a move
                continue
            key = (entry.sample, change.to_state.name, round(change.time, 3))
            if key in recorded:
                continue
            station.recorder.sample_transition(
                entry.sample,
                change.to_state,
                from_state=change.from_state,
                run_id=change.run_id,
                reason=change.reason,
                time_s=change.time,
            )
            missing += 1
    if missing:
        logger.warning("recorded %d sample transitions an earlier process had not", missing)
        station.recorder.flush()
    return missing


def close_interrupted_runs(store: QueueStore, station: Station) -> int:
    """End in the workflow database the runs a crash left ``running``: the run of each entry
    the queue file holds mid-sample (MOUNTING to UNMOUNTING; the queue will record it
    INTERRUPTED) is ``aborted``, error ``interrupted``, at the time of the entry's last
    committed change. Only this queue's runs: labelled with the entry's sample and started
    after the entry was taken (one manager per queue file, so no other process runs them).
    Returns how many were closed."""
    from sqlalchemy import select

    from bes.queue.states import ACTIVE
    from bes.record.schema import Run
    from bes.record.writer import RUN_END

    left = store.list(ACTIVE)
    if not left:
        return 0
    with station.database.engine.connect() as connection:
        open_runs = connection.execute(
            select(Run.run_id, Run.sample, Run.start_time).where(
                Run.status == "running", Run.sample.in_(sorted({e.sample for e in left}))
            )
        ).all()
    closed = 0
    for entry in left:
        history = store.history(entry.id)
        taken = max((c.time for c in history if c.to_state.name == "MOUNTING"), default=0.0)
        last = history[-1].time if history else taken
        for run_id, sample, start in open_runs:
            if sample != entry.sample or start < taken:
                continue
            station.recorder.writer.put(
                RUN_END,
                {  # the columns of the recorder's own run end (one UPDATE for a batch)
                    "run_id": run_id,
                    "status": "aborted",
                    "end_time": max(last, start),
                    "wall_s": max(0.0, last - start),
                    "end_beamline_s": None,
                    "outputs": None,
                    "node_executions": None,
                    "error_node": None,
                    "error_kind": "interrupted",
                    "error_message": f"interrupted: bes stopped during {entry.state.name} "
                    "(the process ended before the run did)",
                    "error_traceback": None,
                },
            )
            closed += 1
    if closed:
        logger.warning("recorded %d workflow runs an earlier process left running as ended", closed)
        station.recorder.flush()
    return closed


def queue_file(data_dir: Path) -> Path:
    """Where ``StationQueue`` keeps the queue of a data directory."""
    from bes.queue import QUEUE_FILE

    return Path(data_dir) / QUEUE_FILE
