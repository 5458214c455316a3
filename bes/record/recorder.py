"""The recorder: an engine-event subscriber that writes every run into the workflow database.

Give it to the engine as ``RunContext(recorder=Recorder(...))``; bind it to the beamline to
record device actions too::

    recorder = Recorder("sqlite:///bes-data/workflows.db", beamline=beamline)
    context = RunContext(beamline=beamline, recorder=recorder)
    run_workflow("beamline_check", {"step_deg": 45.0}, context)
    recorder.close()

It turns events into rows in the engine's thread (microseconds) and leaves the writing to
a :class:`~bes.record.writer.BatchWriter` thread. At each workflow end it writes the run's
summary and step counts and, by default, waits until the run is committed, so that a run
that ``run_workflow`` has returned is in the database. The queue and other callers add
sample state transitions, queue history and metadata through the methods below.
"""

from __future__ import annotations

import functools
import getpass
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bes
from bes.engine.context import check_metadata
from bes.engine.events import (
    ConditionEvaluated,
    EngineEvent,
    MetadataReported,
    NodeEnded,
    NodeError,
    NodeStarted,
    WorkflowEnded,
    WorkflowStarted,
    summarise,
)
from bes.hal import Beamline, DeviceAction
from bes.record.database import Database, open_database
from bes.record.rows import (
    LABEL_LIMITS,
    LABELS,
    decision_row,
    labels_from_inputs,
    metadata_row,
    state_name,
)
from bes.record.summary import RunTally, day_of
from bes.record.writer import RUN, RUN_END, BatchWriter, WriterStats

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    """What the recorder keeps of a run between its events."""

    run_id: str
    recipe: str
    start_time: float
    start_beamline_s: float | None
    labels: dict[str, str | None]
    tally: RunTally = field(default_factory=RunTally)
    open_nodes: dict[str, tuple[int, float, float | None, Any]] = field(default_factory=dict)
    """node id -> (execution, start time, start beamline time, inputs)."""
    last_execution: dict[str, int] = field(default_factory=dict)
    reasons: dict[tuple[str | None, int | None], str] = field(default_factory=dict)
    current: tuple[str, int] | None = None


class Recorder:
    """Writes engine events, device actions, sample transitions and queue history."""

    def __init__(
        self,
        database: Database | str | None = None,
        *,
        beamline: Beamline | str | None = None,
        host: str | None = None,
        user: str | None = None,
        flush_on_end: bool = True,
        wait_at_end: bool = False,
        end_timeout_s: float = 5.0,
        batch_size: int = 5000,
        linger_s: float = 0.5,
        max_pending: int = 200_000,
    ) -> None:
        """``database``: a Database or URL (default: the embedded SQLite file); it must be
        at the code's schema revision (``bes db upgrade``). ``beamline``: a Beamline, whose
        device actions are then recorded, or just its name. ``flush_on_end``: write a run
        as soon as it ends (not ``linger_s`` later); ``wait_at_end``: and make the engine
        wait (up to ``end_timeout_s``) until it is committed, so that a run that
        ``run_workflow`` returned is in the database (costs the engine a commit per run)."""
        if isinstance(database, Database):
            database.require_current()
            self.database = database
        else:
            self.database = open_database(database)
        self.writer = BatchWriter(
            self.database.writer_engine(),
            batch_size=batch_size,
            linger_s=linger_s,
            max_pending=max_pending,
        )
        self.flush_on_end = flush_on_end
        self.wait_at_end = wait_at_end
        self.end_timeout_s = end_timeout_s
        self.host = host if host is not None else socket.gethostname()
        self.user = user if user is not None else _login()
        self.beamline_name: str | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._runs: dict[str, _Run] = {}
        self._labels: dict[str, dict[str, Any]] = {}
        self._unknown: set[str] = set()
        self._active: list[str] = []
        self._lock = threading.RLock()
        self._handlers: dict[type[EngineEvent], Callable[[Any], None]] = {
            WorkflowStarted: self._workflow_started,
            NodeStarted: self._node_started,
            NodeEnded: self._node_ended,
            ConditionEvaluated: self._condition_evaluated,
            MetadataReported: self._metadata_reported,
            WorkflowEnded: self._workflow_ended,
        }
        if isinstance(beamline, Beamline):
            self.attach(beamline)
        elif beamline is not None:
            self.beamline_name = str(beamline)

    # -- wiring ----------------------------------------------------------------------------

    def attach(self, beamline: Beamline) -> None:
        """Record the device actions of ``beamline`` (and use its name for runs)."""
        self.detach()
        self.beamline_name = beamline.name
        self._unsubscribe = beamline.clock.subscribe(self.on_device_action)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Write everything recorded so far; True once it is committed."""
        return self.writer.flush(timeout)

    def close(self) -> None:
        """Stop recording device actions, write what is queued, release the database."""
        self.detach()
        self.writer.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> WriterStats:
        return self.writer.stats

    # -- the caller's API ------------------------------------------------------------------

    def label_run(self, run_id: str, **labels: Any) -> None:
        """Labels for a run about to start (``sample``, ``session``, ``user_name``,
        ``request_id``, ``beamline``); they win over the run's inputs. For the queue and the
        REST server, which choose the run id and know the sample and session."""
        unknown = sorted(set(labels) - set(LABELS))
        if unknown:
            raise ValueError(f"unknown run label(s) {unknown}; known: {', '.join(LABELS)}")
        with self._lock:
            self._labels.setdefault(run_id, {}).update(labels)

    def metadata(
        self,
        run_id: str,
        key: str,
        value: Any,
        unit: str | None = None,
        *,
        node_id: str | None = None,
        execution: int | None = None,
    ) -> None:
        """Record a metadata item for a run from outside its tasks (tasks use
        ``self.report``). Summarised keys count only while the run is going on."""
        check_metadata(key, unit)
        now = time.time()
        value = summarise(value)
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                run.tally.metadata(key, value, unit)
        self.writer.put(
            "metadata_items", metadata_row(run_id, node_id, execution, key, value, unit, now, None)
        )

    def sample_transition(
        self,
        sample: str,
        to_state: Any,
        *,
        from_state: Any = None,
        run_id: str | None = None,
        reason: str | None = None,
        beamline: str | None = None,
        time_s: float | None = None,
    ) -> None:
        """A sample's state machine moved (``QUEUED -> MOUNTING`` ...); states may be Enums."""
        if not sample:
            raise ValueError("sample_transition needs a sample (its LIMS id or location)")
        self.writer.put(
            "sample_transitions",
            {
                "time": time_s if time_s is not None else time.time(),
                "beamline": beamline or self.beamline_name,
                "sample": str(sample)[:128],
                "from_state": state_name(from_state),
                "to_state": state_name(to_state),
                "run_id": run_id,
                "reason": reason,
            },
        )

    def queue_event(
        self,
        action: str,
        *,
        item_id: str | None = None,
        sample: str | None = None,
        recipe: str | None = None,
        run_id: str | None = None,
        position: int | None = None,
        detail: Any = None,
        beamline: str | None = None,
        time_s: float | None = None,
    ) -> None:
        """Queue history: ``added``, ``moved``, ``removed``, ``started``, ``finished``,
        ``paused``, ``resumed``, ``stopped`` ... (any short word the queue uses)."""
        if not action or len(action) > 32:
            raise ValueError(f"queue action must be a word of 1-32 characters, got {action!r}")
        self.writer.put(
            "queue_events",
            {
                "time": time_s if time_s is not None else time.time(),
                "beamline": beamline or self.beamline_name,
                "action": action,
                "item_id": None if item_id is None else str(item_id)[:64],
                "sample": None if sample is None else str(sample)[:128],
                "recipe": recipe,
                "run_id": run_id,
                "position": position,
                "detail": summarise(detail) if detail is not None else None,
            },
        )

    # -- engine events ---------------------------------------------------------------------

    def on_event(self, event: EngineEvent) -> None:
        """The engine's Subscriber entry point (called from the engine's thread)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return
        with self._lock:
            if type(event) is not WorkflowStarted and event.run_id not in self._runs:
                if event.run_id not in self._unknown:
                    self._unknown.add(event.run_id)
                    logger.warning(
                        "recorder: events of run %s whose start it did not see are ignored",
                        event.run_id,
                    )
                return
            handler(event)
        if self.flush_on_end and type(event) is WorkflowEnded:
            self._end_flush(event.run_id)

    def _end_flush(self, run_id: str) -> None:
        if not self.wait_at_end:
            self.writer.flush(wait=False)
        elif not self.writer.flush(self.end_timeout_s):
            logger.warning(
                "run %s: its rows were not committed within %.0f s; they stay queued",
                run_id,
                self.end_timeout_s,
            )

    def on_device_action(self, action: DeviceAction) -> None:
        """Clock listener: the action goes to the run going on (the last one started).
        Never raises: a recording problem must not fail the device action."""
        try:
            self._device_action(action)
        except Exception:
            logger.exception(
                "recorder: device action %s.%s not recorded", action.device, action.action
            )

    def _device_action(self, action: DeviceAction) -> None:
        now = time.time()
        with self._lock:
            run = self._runs.get(self._active[-1]) if self._active else None
            node = run.current if run is not None else None
            if run is not None:
                run.tally.n_device_actions += 1
        self.writer.put(
            "device_actions",
            {
                "run_id": run.run_id if run is not None else None,
                "node_id": node[0] if node else None,
                "execution": node[1] if node else None,
                "beamline": self.beamline_name,
                "device": action.device,
                "action": action.action,
                "start_beamline_s": action.start_s,
                "beamline_s": action.duration_s,
                "wall_s": action.wall_s,
                "time": now,
                "details": summarise(action.details) if action.details else None,
            },
        )

    def _workflow_started(self, event: WorkflowStarted) -> None:
        labels = self._run_labels(event.run_id, event.inputs)
        run = _Run(
            run_id=event.run_id,
            recipe=event.workflow,
            start_time=event.time,
            start_beamline_s=event.beamline_time_s,
            labels=labels,
        )
        self._runs[event.run_id] = run
        self._active.append(event.run_id)
        self.writer.put(
            RUN,
            {
                "run_id": event.run_id,
                "recipe": event.workflow[:128],
                "recipe_sha256": event.recipe_sha256,
                "recipe_version": event.recipe_version,
                "recipe_source": event.source,
                "bes_version": bes.__version__,
                "status": "running",
                "start_time": event.time,
                "start_beamline_s": event.beamline_time_s,
                "host": self.host,
                "inputs": event.inputs,
                **labels,
            },
        )

    def _node_started(self, event: NodeStarted) -> None:
        run = self._runs[event.run_id]
        run.open_nodes[event.node_id] = (
            event.execution,
            event.time,
            event.beamline_time_s,
            event.inputs,
        )
        run.current = (event.node_id, event.execution)

    def _node_ended(self, event: NodeEnded) -> None:
        run = self._runs[event.run_id]
        opened = run.open_nodes.pop(event.node_id, None)
        if opened is None:
            opened = (event.execution, event.time - event.duration_s, None, None)
        _, start_time, start_bt, inputs = opened
        beamline_s = _difference(event.beamline_time_s, start_bt)
        run.last_execution[event.node_id] = event.execution
        if run.current == (event.node_id, event.execution):
            run.current = None
        run.tally.node(
            event.node_id, event.status, beamline_s if beamline_s is not None else event.duration_s
        )
        error = event.error
        self.writer.put(
            "node_executions",
            {
                "run_id": event.run_id,
                "node_id": event.node_id,
                "task_identifier": event.task_identifier,
                "execution": event.execution,
                "status": event.status,
                "start_time": start_time,
                "end_time": event.time,
                "wall_s": event.duration_s,
                "start_beamline_s": start_bt,
                "beamline_s": beamline_s,
                "inputs": inputs,
                "outputs": event.outputs or None,
                "handled": event.handled,
                "error_kind": error.kind if error else None,
                "error_message": error.message if error else None,
                "error_traceback": (error.traceback or None) if error else None,
            },
        )

    def _condition_evaluated(self, event: ConditionEvaluated) -> None:
        run = self._runs[event.run_id]
        execution = run.last_execution.get(event.source)
        run.tally.decision(event.source, event.target, event.taken)
        reason = run.reasons.get((event.source, execution))
        self.writer.put("decisions", functools.partial(decision_row, event, execution, reason))

    def _metadata_reported(self, event: MetadataReported) -> None:
        run = self._runs[event.run_id]
        run.tally.metadata(event.key, event.value, event.unit)
        if event.key == "reason" and event.value is not None:
            run.reasons[(event.node_id, event.execution)] = str(event.value)
        self.writer.put(
            "metadata_items",
            metadata_row(
                event.run_id,
                event.node_id,
                event.execution,
                event.key,
                event.value,
                event.unit,
                event.time,
                event.beamline_time_s,
            ),
        )

    def _workflow_ended(self, event: WorkflowEnded) -> None:
        run = self._runs.pop(event.run_id)
        self._active.remove(event.run_id)
        self._labels.pop(event.run_id, None)
        error: NodeError | None = event.error
        wall_s = max(0.0, event.time - run.start_time)
        beamline_s = _difference(event.beamline_time_s, run.start_beamline_s)
        for problem in run.tally.ignored_units:
            logger.warning("run %s: metadata %s: not summarised", run.run_id, problem)
        self.writer.put(
            RUN_END,
            {
                "run_id": run.run_id,
                "status": event.status,
                "end_time": event.time,
                "wall_s": wall_s,
                "end_beamline_s": event.beamline_time_s,
                "outputs": event.outputs or None,
                "node_executions": event.node_executions,
                "error_node": error.node_id if error else None,
                "error_kind": error.kind if error else None,
                "error_message": error.message if error else None,
                "error_traceback": (error.traceback or None) if error else None,
            },
        )
        beamline = run.labels.get("beamline")
        self.writer.put(
            "run_summary",
            run.tally.summary(
                run_id=run.run_id,
                start_time=run.start_time,
                end_time=event.time,
                wall_s=wall_s,
                beamline_s=beamline_s,
                recipe=run.recipe,
                beamline=beamline,
                session=run.labels.get("session"),
                sample=run.labels.get("sample"),
                status=event.status,
                error_node=error.node_id if error else None,
                error_text=f"{error.kind}: {error.message}" if error else None,
            ),
        )
        day = day_of(run.start_time)
        for row in run.tally.step_rows(day, beamline, run.recipe):
            self.writer.put("step_stats", row)
        for row in run.tally.decision_rows(day, beamline, run.recipe):
            self.writer.put("decision_stats", row)

    def _run_labels(self, run_id: str, inputs: Any) -> dict[str, str | None]:
        given = self._labels.pop(run_id, {})
        found = labels_from_inputs(inputs)
        labels: dict[str, str | None] = {}
        for name in LABELS:
            value = given.get(name)
            if value is None and name == "beamline":
                value = self.beamline_name
            if value is None:
                value = found.get(name)
            if value is None and name == "user_name":
                value = self.user
            labels[name] = None if value is None else str(value)[: LABEL_LIMITS[name]]
        return labels


def _difference(end: float | None, start: float | None) -> float | None:
    return None if end is None or start is None else end - start


def _login() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers)
        return None
