"""The runs started over the BES protocol (``POST /RUN``): each in its own thread on the
station, holding the beamline lock it shares with the sample queue, with its status kept for
``GET /STATUS`` after it ended (the last ``keep_finished`` runs).

A run starts only when the beamline is free: no queue sample in progress (the queue holds
``StationQueue.beamline_lock`` while it runs one), the queue not about to take the next one
(RUNNING, PAUSING, STOPPING, ABORTING), no other BES run. Otherwise :class:`BeamlineBusy`
(409) says who has it; nothing starts.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bes.engine.context import RunContext
from bes.queue import QueueState
from bes.server.callbacks import MxcubeCallbacks
from bes.server.messages import LogReporter

if TYPE_CHECKING:
    from bes.engine.events import Subscriber
    from bes.server.mxcube_body import RunRequest
    from bes.station.queue_runner import StationQueue

logger = logging.getLogger(__name__)

STARTED, FINISHED, ERROR, ABORTED = "STARTED", "FINISHED", "ERROR", "ABORTED"
"""What ``GET /STATUS`` answers."""
STATUS_OF_RESULT = {"finished": FINISHED, "failed": ERROR, "aborted": ABORTED}
QUEUE_FREE = (QueueState.IDLE, QueueState.PAUSED, QueueState.FAULT)
"""Queue states in which the queue does not take the beamline by itself."""
KEEP_FINISHED = 1000


class BeamlineBusy(RuntimeError):
    """The beamline cannot take the run now (the queue or another run has it, or no sample
    is mounted for an MX recipe that names none): 409, nothing started."""


@dataclass
class BesRun:
    """One run started by ``POST /RUN``; its id is the request id and the workflow-database
    run id."""

    request_id: str
    workflow: str
    location: str | None
    context: RunContext
    callbacks: MxcubeCallbacks | None
    started_time: float = field(default_factory=time.time)
    status: str = STARTED
    ended_time: float | None = None
    outcome: str | None = None
    error: str | None = None
    thread: threading.Thread | None = field(default=None, repr=False)
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "workflow": self.workflow,
            "sample": self.location,
            "status": self.status,
            "outcome": self.outcome,
            "error": self.error,
            "abort_requested": self.context.aborted,
            "started_time": self.started_time,
            "ended_time": self.ended_time,
            "callbacks": self.callbacks.target.url if self.callbacks else None,
        }


class BesRuns:
    """Starts, follows and aborts the BES-protocol runs of one station queue's station.

    ``subscribers``: engine subscribers of every run (event streams); ``keep_finished``: how
    many ended runs stay known; ``callback_timeout_s``: per XML-RPC call to the client. The
    lock ``claims`` is held while deciding who takes the beamline (the queue API holds it to
    start or resume the queue, so that a run and the queue never both go ahead)."""

    def __init__(
        self,
        queue: StationQueue,
        *,
        subscribers: Iterable[Subscriber] = (),
        keep_finished: int = KEEP_FINISHED,
        callback_timeout_s: float = 5.0,
    ) -> None:
        if keep_finished < 1:
            raise ValueError(f"keep_finished must be >= 1, got {keep_finished!r}")
        self.queue = queue
        self.station = queue.station
        self.subscribers = list(subscribers)
        self.keep_finished = keep_finished
        self.callback_timeout_s = callback_timeout_s
        self.claims = threading.Lock()
        self._runs: OrderedDict[str, BesRun] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False

    # -- starting --------------------------------------------------------------------

    def start(self, request: RunRequest) -> BesRun:
        """Take the beamline and start ``request`` in a thread; BeamlineBusy when taken."""
        with self.claims:
            if self._closed:
                raise BeamlineBusy("the server is shutting down")
            self._check_queue()
            lock = self.queue.beamline_lock
            if not lock.acquire(blocking=False):
                raise BeamlineBusy(self._holder())
        try:
            changer = self.station.beamline.sample_changer
            if request.mx and request.location is None and changer.mounted is None:
                raise BeamlineBusy(
                    f"no sample is mounted on {self.station.beamline.name} and the request "
                    "names none: mount one first or give sample_location 'puck:pin'"
                )
            run = BesRun(
                request_id=uuid.uuid4().hex,
                workflow=request.recipe.name,
                location=request.location or (str(changer.mounted) if changer.mounted else None),
                context=self.station.context(),
                callbacks=(
                    MxcubeCallbacks(request.callback, self.callback_timeout_s)
                    if request.callback is not None
                    else None
                ),
            )
            run.thread = threading.Thread(
                target=self._run, args=(run, request), name=f"bes-run-{run.request_id[:8]}"
            )
            with self._lock:
                self._runs[run.request_id] = run
            run.thread.start()
        except BaseException:
            lock.release()
            raise
        return run

    def _check_queue(self) -> None:
        manager = self.queue.manager
        state = manager.state
        if state not in QUEUE_FREE:
            raise BeamlineBusy(
                f"the sample queue is {state.name} and takes the beamline for its samples: "
                "stop or pause it first (POST /api/v1/queue/stop or /pause)"
            )

    def _holder(self) -> str:
        active = self.active()
        if active is not None:
            return (
                f"the beamline is busy with BES run {active.request_id} ({active.workflow}); "
                f"wait for it to end or abort it (GET /ABORT/{active.request_id})"
            )
        current = self.queue.manager.status().get("current")
        if current:
            return (
                f"the beamline is busy: the sample queue is running entry {current['id']} "
                f"({current['location']}, {current['recipe']}); stop or abort the queue first"
            )
        return "the beamline is busy with another run; try again when it has ended"

    # -- the run ---------------------------------------------------------------------

    def _run(self, run: BesRun, request: RunRequest) -> None:
        status, outcome, error = ERROR, None, None
        subscribers = list(self.subscribers)
        if run.callbacks is not None:
            subscribers.append(LogReporter(run.callbacks))
        labels = {**request.labels, "request_id": run.request_id}
        if run.location is not None:
            labels["sample"] = run.location
        try:
            report = self.station.run(
                request.recipe,
                request.inputs,
                subscribers=subscribers,
                labels=labels,
                handle_signals=False,
                context=run.context,
                run_id=run.request_id,
            )
            status = STATUS_OF_RESULT.get(report.status, ERROR)
            outcome, error = report.outcome, report.error
        except Exception as exc:
            logger.exception("BES run %s (%s) failed to run", run.request_id, run.workflow)
            error = f"{type(exc).__name__}: {exc}"
            if run.callbacks is not None:
                run.callbacks.log_message(f"BES: workflow {run.workflow} failed: {error}", "error")
        finally:
            # the beamline is free before the status says so: a client that reads the end
            # may start the next run at once
            self.queue.beamline_lock.release()
            run.outcome, run.error, run.ended_time = outcome, error, time.time()
            run.status = status
            run.done.set()
            if run.callbacks is not None:
                run.callbacks.workflow_end()
            self._forget_old()

    # -- reading and abort -----------------------------------------------------------

    def get(self, request_id: str) -> BesRun:
        """The run; KeyError naming the id for one never started or long forgotten."""
        with self._lock:
            run = self._runs.get(request_id)
        if run is None:
            raise KeyError(f"no BES run {request_id!r}")
        return run

    def list(self) -> list[BesRun]:
        """The runs kept, oldest first."""
        with self._lock:
            return list(self._runs.values())

    def active(self) -> BesRun | None:
        """The run going on (its status STARTED), if any."""
        with self._lock:
            return next((r for r in self._runs.values() if r.status == STARTED), None)

    def abort(self, request_id: str, wait_s: float = 5.0, reason: str | None = None) -> BesRun:
        """Ask the run to stop and wait up to ``wait_s`` for it to end (its status is then
        ABORTED, or what it ended with before the abort took effect)."""
        run = self.get(request_id)
        if not run.done.is_set():
            run.context.request_abort(reason or f"aborted by the client (GET /ABORT/{request_id})")
            run.done.wait(wait_s)
        return run

    def _forget_old(self) -> None:
        with self._lock:
            finished = [k for k, r in self._runs.items() if r.done.is_set()]
            for key in finished[: max(0, len(finished) - self.keep_finished)]:
                del self._runs[key]

    def close(self, timeout_s: float = 30.0) -> None:
        """Refuse new runs, abort the one going on, wait for it and for the callbacks."""
        with self.claims:
            self._closed = True
        deadline = time.monotonic() + timeout_s
        for run in self.list():
            if not run.done.is_set():
                run.context.request_abort("the BES server is shutting down")
            if run.thread is not None:
                run.thread.join(max(0.0, deadline - time.monotonic()))
            if run.callbacks is not None:
                run.callbacks.close(max(0.0, deadline - time.monotonic()))
