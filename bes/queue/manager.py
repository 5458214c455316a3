"""The queue manager: a worker thread that runs the QUEUED entries one after the other while
the queue is RUNNING, and the commands a person (CLI, REST) gives it.

- ``start`` runs the queue until it is empty (entries a crash left mid-sample are recovered
  first, by ``policy``); ``stop`` ends it after the current sample; ``abort`` ends the current
  run now and goes IDLE; ``skip`` ends the current run now and goes on with the next entry.
- ``pause`` takes effect at the current run's next step boundary (``RunControl.checkpoint``),
  or between samples for a runner that offers none (PAUSING until then); ``resume`` goes on.
- Before each sample the beamline must be ready (beam, sample changer): otherwise the queue
  holds (PAUSED, ``waiting for beam``) and resumes by itself once it is ready again; a sample
  changer found in FAULT, which does not clear by itself, is a beamline fault as below.
- A beamline-level fault (``SampleChangerFault``, ``DiskFullError``) puts the queue in FAULT;
  the sample is re-queued (the fault was not its doing). With ``recover_sample_changer`` a
  sample-changer fault is cleared by a reset, once per entry, and the queue goes on; otherwise
  (and for a full disk, which only a person can free) it waits for ``resume``.
- A failed sample does not stop the queue unless ``keep_going`` is off.

Every state change of the queue and of each entry is committed to the store first, then
recorded in the workflow database (``Recorder.queue_event`` / ``sample_transition``) and sent
to the subscribers (``subscribe``), all under the manager's lock, in order.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bes.hal.errors import BeamLossError, DiskFullError, SampleChangerFault
from bes.queue.control import RunControl, RunResult
from bes.queue.entries import NewEntry, QueueEntry
from bes.queue.events import QueueEvents, Subscriber
from bes.queue.machines import QueueMachine, SampleMachine, TransitionHook
from bes.queue.readiness import NotReady, Readiness, always_ready, beamline_readiness, not_ready
from bes.queue.states import (
    ACTIVE,
    FINAL,
    PHASE_TRIGGERS,
    PHASES,
    QueueState,
    QueueStateError,
    QueueTrigger,
    SampleState,
    SampleTrigger,
    StateChange,
)
from bes.queue.store import POLICIES, QueueStore, RecoveryPolicy

if TYPE_CHECKING:
    from bes.hal import Beamline
    from bes.record.recorder import Recorder

logger = logging.getLogger(__name__)

Runner = Callable[[QueueEntry, RunControl], RunResult]

Q = QueueState
QT = QueueTrigger
STOP_REASON = "stop after the current sample"


class QueueManager:
    """Runs the entries of ``store`` with ``runner``. ``recorder``: the workflow database's
    recorder; ``beamline``: for the default readiness check and the sample changer reset;
    ``beamline_ready``: the readiness check (None when ready, else what to wait for, or a
    ``NotReady`` fault: FAULT as for a fault raised by a run);
    ``abort_current(reason)``: ends the current run now (besides ``RunControl.on_abort``);
    ``fault_errors``: runner exceptions that are beamline-level faults (FAULT; only a
    ``SampleChangerFault`` has a configured recovery, the reset);
    ``requeue_errors``: runner exceptions of a beamline not ready (beam loss): the sample is
    re-queued, at most ``max_attempts`` attempts in all, and the queue waits; ``poll_s``: how often
    a queue waiting for the beamline looks again; ``on_idle``: called by the worker (outside
    the lock) each time the queue has gone IDLE, before ``wait_idle`` returns."""

    def __init__(
        self,
        store: QueueStore,
        runner: Runner,
        *,
        recorder: Recorder | None = None,
        beamline: Beamline | None = None,
        beamline_ready: Readiness | None = None,
        abort_current: Callable[[str], None] | None = None,
        keep_going: bool = True,
        recover_sample_changer: bool = False,
        policy: RecoveryPolicy = "requeue",
        fault_errors: tuple[type[BaseException], ...] = (SampleChangerFault, DiskFullError),
        requeue_errors: tuple[type[BaseException], ...] = (BeamLossError,),
        max_attempts: int = 3,
        poll_s: float = 1.0,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown recovery policy {policy!r}; known: {', '.join(POLICIES)}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        if poll_s <= 0:
            raise ValueError(f"poll_s must be > 0, got {poll_s!r}")
        self.store = store
        self.keep_going = keep_going
        self.recover_sample_changer = recover_sample_changer
        self.policy = policy
        self._runner = runner
        self._events = QueueEvents(recorder)
        self._beamline = beamline
        if beamline_ready is None:
            beamline_ready = beamline_readiness(beamline) if beamline else always_ready
        self._ready = beamline_ready
        self._abort_current = abort_current
        self._fault_errors = fault_errors
        self._requeue_errors = requeue_errors
        self.max_attempts = max_attempts
        self._poll_s = poll_s
        self._on_idle = on_idle
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queue = QueueMachine(on_transition=self._queue_changed, lock=self._lock)
        self._worker: threading.Thread | None = None
        self._control: RunControl | None = None
        self._sample: SampleMachine | None = None
        self._reset_tried: set[int] = set()
        self._recovery_due: tuple[int, str] | None = None
        """The entry a planned sample-changer reset is for, and the reason of the RECOVER."""
        self._recovering = False

    # -- entries -----------------------------------------------------------------------

    def add(self, entry: NewEntry, position: int | None = None) -> QueueEntry:
        """Validate and queue ``entry`` (ValueError with the reason; nothing queued)."""
        checked = self.store.validate(entry)  # outside the lock: may load the recipe
        with self._lock:
            added = self.store.get(self.store.add(checked, position))
            self._events.entry("added", added)
        return added

    def move(self, entry_id: int, position: int) -> QueueEntry:
        with self._lock:
            moved = self.store.move(entry_id, position)
            self._events.entry("moved", moved)
        return moved

    def remove(self, entry_id: int) -> QueueEntry:
        """Remove a waiting or finished entry (not the one running)."""
        with self._lock:
            removed = self.store.remove(entry_id)
            self._events.entry("removed", removed)
        return removed

    def retry(self, entry_id: int, reason: str = "re-queued by a person") -> QueueEntry:
        """Put a FAILED, ABORTED, SKIPPED or INTERRUPTED entry back in the queue."""
        with self._lock:
            self._entry_machine(self.store.get(entry_id)).fire(SampleTrigger.REQUEUE, reason)
        return self.store.get(entry_id)

    def recover(self) -> builtins.list[QueueEntry]:
        """Re-queue or skip (``policy``) the entries a crash left mid-sample; recorded."""
        with self._lock:
            if self._control is not None:
                raise QueueStateError("cannot recover: a sample is running")
            return self.store.recover(self.policy, on_change=self._events.sample)

    # -- commands ----------------------------------------------------------------------

    def start(self, reason: str = "started") -> None:
        with self._lock:
            if self._queue.state is Q.IDLE:
                self.recover()
            self._queue.fire(QT.START, reason)
            self._ensure_worker()

    def pause(self, reason: str = "paused by a person") -> None:
        """Pause at the next step boundary of the current run (or between samples)."""
        with self._lock:
            self._queue.fire(QT.PAUSE, reason)

    def resume(self, reason: str = "resumed by a person") -> None:
        with self._lock:
            self._queue.fire(QT.RESUME, reason)
            self._ensure_worker()

    def stop(self, reason: str = STOP_REASON) -> None:
        with self._lock:
            self._queue.fire(QT.STOP, reason)

    def abort(self, reason: str = "aborted by a person") -> None:
        """End the current run now; the queue goes IDLE."""
        with self._lock:
            self._queue.fire(QT.ABORT, reason)
            control = self._control
        if control is not None:
            self._abort_run(control, reason, skip=False)

    def skip(self, entry_id: int | None = None, reason: str = "skipped by a person") -> None:
        """Skip the current sample (its run is aborted; the queue goes on) or a waiting
        entry."""
        with self._lock:
            control = self._control
            if entry_id is None or (control is not None and control.entry.id == entry_id):
                if control is None:
                    raise QueueStateError("cannot skip: no sample is running")
            else:
                self._entry_machine(self.store.get(entry_id)).fire(SampleTrigger.SKIP, reason)
                return
        self._abort_run(control, reason, skip=True)

    # -- reading -----------------------------------------------------------------------

    @property
    def state(self) -> QueueState:
        return self._queue.state

    @property
    def waiting_for_person(self) -> bool:
        """In FAULT with no configured recovery left to try: only ``resume``, ``stop`` or
        ``abort`` gets it going."""
        with self._lock:
            return (
                self._queue.state is Q.FAULT and self._recovery_due is None and not self._recovering
            )

    def status(self) -> dict[str, Any]:
        """The queue's state and reason, the current entry (with its phase) and the number
        of entries per state."""
        with self._lock:
            control, sample = self._control, self._sample
            current = self.store.get(control.entry.id).to_json() if control else None
            if current is not None and sample is not None:
                current["state"] = sample.state.name
            return {
                "state": self._queue.state.name,
                "reason": self._queue.reason,
                "current": current,
                "counts": {state.name: n for state, n in self.store.counts().items()},
                "keep_going": self.keep_going,
                "policy": self.policy,
            }

    def history(self) -> builtins.list[dict[str, Any]]:
        """Finished entries (oldest end first), each with its state changes."""
        entries = sorted(self.store.list(FINAL), key=lambda e: e.ended_time or 0.0)
        return [
            {**e.to_json(), "transitions": [c.to_json() for c in self.store.history(e.id)]}
            for e in entries
        ]

    def queue_history(self) -> builtins.list[StateChange]:
        """The queue's own state changes since this manager was made."""
        with self._lock:
            return list(self._queue.history)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every queue, sample and entry event (a dict with
        ``type`` ``queue``, ``sample`` or ``entry``), in order, in the thread that made the
        change and under the manager's lock: keep it short. Returns the unsubscribe."""
        return self._events.subscribe(callback)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until the queue is IDLE and its worker has ended; False on timeout."""
        with self._wake:
            idle = self._wake.wait_for(
                lambda: self._queue.state is Q.IDLE and self._worker is None, timeout_s
            )
        return bool(idle)

    def close(self, timeout_s: float = 30.0) -> None:
        """Abort what runs and wait for the worker (at most ``timeout_s``)."""
        with self._lock:
            running = self._queue.state is not Q.IDLE
        if running:
            with contextlib.suppress(QueueStateError):  # it went IDLE meanwhile
                self.abort("queue closed")
        self.wait_idle(timeout_s)

    # -- the worker --------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="bes-queue", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        try:
            while True:
                while (control := self._next_entry()) is not None:
                    self._run(control)
                self._tidy()  # outside the lock: a start meanwhile goes on here
                with self._lock:
                    if self._queue.state is Q.IDLE:
                        self._worker = None
                        self._wake.notify_all()
                        return
        except Exception as exc:
            logger.exception("the queue worker failed")
            with self._lock:
                self._worker = None
                self._queue.current = None
                self._control = self._sample = None
                reason = f"queue error: {type(exc).__name__}: {exc}"
                state = self._queue.state
                if state in (Q.RUNNING, Q.PAUSING):
                    self._queue.fire(QT.FAULT, reason)  # resume() starts a new worker
                elif state is not Q.IDLE:
                    if state is not Q.ABORTING:
                        self._queue.fire(QT.ABORT, reason)
                    self._queue.fire(QT.ABORT_DONE, reason)
                self._wake.notify_all()

    def _next_entry(self) -> RunControl | None:
        """Drive the queue between samples; the next entry, taken (MOUNTING), with its run
        control, or None when the queue is IDLE."""
        while True:
            with self._lock:
                state = self._queue.state
                if state is Q.IDLE:
                    return None
                if state is Q.ABORTING:  # the reason says who asked and why
                    asked = self._queue.reason
                    self._queue.fire(QT.ABORT_DONE, f"aborted ({asked})" if asked else "aborted")
                    continue
                if state is Q.STOPPING:
                    asked, done = self._queue.reason, "stopped after the current sample"
                    stopped = f"{done} ({asked})" if asked and asked != STOP_REASON else done
                    self._queue.fire(QT.SAMPLE_DONE, stopped)
                    continue
                if state is Q.PAUSING:
                    self._queue.fire(QT.STEP_DONE, "paused between samples")
                    continue
                recovery = self._recovery_due if state is Q.FAULT else None
                self._recovery_due = None
                self._recovering = recovery is not None
                if recovery is None and (
                    state is Q.FAULT or (state is Q.PAUSED and not self._waiting_for_beamline())
                ):
                    self._wake.wait()
                    continue
            if recovery is not None:
                self._recover_changer(recovery)
                continue
            wait = not_ready(self._ready())  # outside the lock: may ask the hardware
            with self._lock:
                if self._queue.state is not state:
                    continue
                if state is Q.PAUSED and not self._waiting_for_beamline():
                    continue  # a person took the wait over meanwhile
                if wait is not None and wait.fault and self._beamline_fault(wait):
                    continue
                if state is Q.PAUSED:
                    if wait is None or wait.fault:
                        self._queue.fire(QT.BEAMLINE_READY, "the beamline is ready again")
                    else:
                        self._wake.wait(self._poll_s)
                    continue
                if wait is not None and not wait.fault:
                    self._queue.fire(QT.WAIT_BEAMLINE, wait.reason)
                    continue
                entry = self.store.next_queued()
                if entry is None:
                    self._queue.fire(QT.FINISH, "queue empty")
                    continue
                return self._take(entry)

    def _beamline_fault(self, fault: NotReady) -> bool:
        """The readiness check found a fault that will not clear by itself (a sample changer
        left in FAULT outside the queue's recovery): FAULT, as for the same fault raised by a
        run, with one reset planned for the next entry when ``resettable``. False (not the
        queue's business) when no entry waits to be mounted: the queue then ends."""
        following = self.store.next_queued()
        if following is None:
            return False
        self._queue.fire(QT.FAULT, fault.reason)
        then = f"going on with entry {following.id}"
        self._plan_reset(following.id, fault.resettable, then)
        return True

    def _tidy(self) -> None:
        """``on_idle``: what the runner leaves between samples is put away (e.g. the pin
        left on the goniometer for the next entry of a queue that stopped meanwhile)."""
        if self._on_idle is None:
            return
        try:
            self._on_idle()
        except Exception:
            logger.exception("tidying up at the end of the queue failed")

    def _waiting_for_beamline(self) -> bool:
        return self._queue.state is Q.PAUSED and self._queue.last_trigger is QT.WAIT_BEAMLINE

    def _take(self, entry: QueueEntry) -> RunControl:
        """Make ``entry`` the current one and commit MOUNTING (under the lock, in the same
        hold that chose it: a skip or remove meanwhile cannot slip in between)."""
        control = RunControl(entry, self._phase, self._checkpoint)
        sample = self._entry_machine(entry, control)
        self._queue.current = entry.id
        self._control, self._sample = control, sample
        sample.fire(SampleTrigger.MOUNT, f"taken by the queue (attempt {entry.attempts + 1})")
        control.entry = self.store.get(entry.id)
        return control

    def _run(self, control: RunControl) -> None:
        """One attempt at the current entry: the runner, then the state its result says."""
        entry, sample = control.entry, self._sample
        assert sample is not None
        result: RunResult | None = None
        error: Exception | None = None
        try:
            result = self._runner(entry, control)
        except Exception as exc:
            error = exc
        with self._lock:
            try:
                if error is not None:
                    self._runner_failed(sample, control, error)
                else:
                    assert result is not None
                    self._conclude(sample, control, result)
            finally:
                self._queue.current = None
                self._control = self._sample = None
                self._wake.notify_all()

    def _conclude(self, sample: SampleMachine, control: RunControl, result: RunResult) -> None:
        run_id = result.run_id or control.run_id
        control.outcome = result.outcome
        if result.status == "finished":
            if sample.state in (SampleState.MOUNTING, SampleState.MOUNTED):
                self._advance(sample, control, SampleState.RUNNING, "reported at the run's end")
            summary = getattr(result, "summary", None)
            detail = summary.get("reason") if isinstance(summary, dict) else None
            reason = f"{result.outcome}: {detail}" if detail else result.outcome
            sample.fire(SampleTrigger.FINISH, reason, run_id)
        elif result.status == "aborted" or control.aborted:
            self._end_aborted(sample, control, run_id)
        else:
            error = getattr(result, "error", None)
            sample.fire(SampleTrigger.FAIL, str(error or f"run {result.status}"), run_id)
            self._after_failure(control.entry)

    def _runner_failed(self, sample: SampleMachine, control: RunControl, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"
        if control.aborted:
            self._end_aborted(sample, control, control.run_id)
        elif isinstance(error, self._fault_errors):
            self._fault(sample, control, reason, resettable=isinstance(error, SampleChangerFault))
        elif isinstance(error, self._requeue_errors):
            self._requeue(sample, control, reason)
        else:
            logger.error("runner failed on queue entry %s: %s", control.entry.id, reason)
            sample.fire(SampleTrigger.FAIL, f"runner error: {reason}", control.run_id)
            self._after_failure(control.entry)

    def _end_aborted(self, sample: SampleMachine, control: RunControl, run_id: str | None) -> None:
        reason = control.abort_reason or "run aborted"
        trigger = SampleTrigger.SKIP if control.skip_requested else SampleTrigger.ABORT
        sample.fire(trigger, reason, run_id)

    def _after_failure(self, entry: QueueEntry) -> None:
        if not self.keep_going and self._queue.state in (Q.RUNNING, Q.PAUSING):
            self._queue.fire(QT.STOP, f"entry {entry.id} ({entry.location}) failed; keep_going off")

    def _fault(
        self, sample: SampleMachine, control: RunControl, reason: str, resettable: bool
    ) -> None:
        """A beamline-level fault: the sample goes back in the queue, the queue to FAULT;
        ``resettable``: a sample-changer reset may clear it (the configured recovery)."""
        sample.fire(SampleTrigger.FAIL, f"beamline fault: {reason}", control.run_id)
        sample.fire(SampleTrigger.REQUEUE, "re-queued after a beamline fault")
        if self._queue.state not in (Q.RUNNING, Q.PAUSING):
            return  # stopping or aborting: the queue ends anyway
        self._queue.fire(QT.FAULT, reason)
        entry_id = control.entry.id
        self._plan_reset(entry_id, resettable, f"retrying entry {entry_id}")

    def _plan_reset(self, entry_id: int, resettable: bool, then: str) -> None:
        """The configured recovery of a FAULT: one sample-changer reset per entry (a fault
        that comes back on the same entry waits for a person); ``then``: what the queue does
        after the reset, for the reason of its RECOVER."""
        can_reset = resettable and self.recover_sample_changer and self._beamline is not None
        if can_reset and entry_id not in self._reset_tried:
            self._reset_tried.add(entry_id)
            self._recovery_due = (entry_id, then)

    def _requeue(self, sample: SampleMachine, control: RunControl, reason: str) -> None:
        """A fault of the beamline's state, not of the sample (beam loss): the sample goes
        back in the queue (up to ``max_attempts`` attempts) and the readiness check holds the
        queue until the beamline is ready again."""
        sample.fire(SampleTrigger.FAIL, f"beamline not ready: {reason}", control.run_id)
        attempts = self.store.get(control.entry.id).attempts
        if attempts < self.max_attempts:
            sample.fire(
                SampleTrigger.REQUEUE,
                f"re-queued after attempt {attempts} of {self.max_attempts}",
            )
        else:
            self._after_failure(control.entry)

    def _recover_changer(self, recovery: tuple[int, str]) -> None:
        """The configured recovery: reset the sample changer once, then go on."""
        assert self._beamline is not None
        try:
            self._beamline.sample_changer.reset()
        except Exception as exc:
            logger.error("sample changer reset failed: %s", exc)
            with self._lock:
                self._recovering = False
                self._wake.notify_all()
            return  # stays in FAULT: a person decides
        with self._lock:
            self._recovering = False
            if self._queue.state is Q.FAULT:
                self._queue.fire(QT.RECOVER, f"sample changer reset; {recovery[1]}")

    # -- callbacks of the run ------------------------------------------------------------

    def _phase(self, control: RunControl, state: SampleState) -> None:
        if state not in PHASE_TRIGGERS:
            raise ValueError(f"a run reports MOUNTED, RUNNING or UNMOUNTING, not {state.name}")
        with self._lock:
            sample = self._sample
            if sample is None or self._control is not control:
                return  # reported after the queue concluded the run
            self._advance(sample, control, state, "reported by the run")

    def _advance(
        self, sample: SampleMachine, control: RunControl, state: SampleState, reason: str
    ) -> None:
        """Walk the phases from where the sample is up to ``state``."""
        if sample.state not in ACTIVE:
            return
        start, end = PHASES.index(sample.state), PHASES.index(state)
        for phase in PHASES[start + 1 : end + 1]:
            sample.fire(PHASE_TRIGGERS[phase], f"{phase.name.lower()} ({reason})", control.run_id)

    def _checkpoint(self, control: RunControl) -> None:
        with self._lock:
            if self._control is not control:
                return
            if self._queue.state is Q.PAUSING:
                self._queue.fire(QT.STEP_DONE, "paused after a step of the current sample")
            while self._queue.state is Q.PAUSED and not control.aborted:
                self._wake.wait()

    def _abort_run(self, control: RunControl, reason: str, skip: bool) -> None:
        control.request_abort(reason, skip=skip)
        with self._lock:
            self._wake.notify_all()
        if self._abort_current is not None:
            try:
                self._abort_current(reason)
            except Exception:
                logger.exception("abort_current failed")

    # -- persistence and events --------------------------------------------------------

    def _entry_machine(self, entry: QueueEntry, control: RunControl | None = None) -> SampleMachine:
        return SampleMachine(
            entry.location,
            entry.state,
            on_transition=self._sample_hook(entry.id, control),
            history=self.store.history(entry.id),
        )

    def _sample_hook(self, entry_id: int, control: RunControl | None) -> TransitionHook:
        def on_transition(
            from_state: SampleState, to_state: SampleState, reason: str | None, run_id: str | None
        ) -> None:
            outcome = control.outcome if control is not None and to_state in FINAL else None
            entry = self.store.update_state(entry_id, to_state, reason, run_id, outcome)
            self._events.sample(entry, self.store.history(entry_id)[-1])

        return on_transition

    def _queue_changed(
        self, from_state: QueueState, to_state: QueueState, reason: str | None, _run: str | None
    ) -> None:
        control = self._control
        entry = control.entry if control is not None else None
        run_id = control.run_id if control is not None else None
        self._events.queue(from_state, to_state, reason, entry, run_id)
        self._wake.notify_all()
