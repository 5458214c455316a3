"""The engine's scheduler: the pypushflow pool of one run, and the loop that drives it.

pypushflow actors hand each task to ``pool.apply_async(fn, callback, error_callback)``.
Here that call only queues the task. The engine thread pops one task at a time, runs it,
then calls the callback from its loop, which triggers the downstream actors, which queue
the next tasks. So a node's successor is queued, never called from inside its predecessor:
the stack stays flat however long a loop runs, no actor lock is re-entered, and nodes run
one at a time in a reproducible order, in this process (tasks reach the in-memory
beamline).

The thread that called ``run_workflow`` supervises: it watches the abort flag and the
task and workflow deadlines, stops the beamline on abort or timeout so that a running
move or exposure ends, and gives up on a task that does not end within the grace time.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx
from ewokscore.graph import analysis
from ewokscore.missing_data import is_missing_data
from ewokscore.node import NodeIdType
from ewokscore.variable import value_from_transfer

from bes.engine.actors import INFOKEY, MissingConditionOutput
from bes.engine.context import RunContext
from bes.engine.events import (
    ConditionCheck,
    ConditionEvaluated,
    EngineEvent,
    MetadataReported,
    NodeEnded,
    NodeError,
    NodeStarted,
    Subscriber,
    emit,
    summarise,
)
from bes.engine.recipes import node_name

logger = logging.getLogger(__name__)

POLL_S = 0.05
"""How often a wait for a running task looks at the abort flag."""


@dataclass(frozen=True)
class _NodeInfo:
    name: str
    task_identifier: str
    default_inputs: dict[str, Any]
    condition_outputs: tuple[str, ...]
    has_error_handler: bool


@dataclass
class _Job:
    node: _NodeInfo
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    callback: Callable[[Any], Any] | None
    error_callback: Callable[[BaseException], Any] | None


@dataclass(frozen=True)
class _Running:
    node: _NodeInfo
    execution: int
    started: float
    """time.monotonic() when the task started."""


class Scheduler:
    """The pool of one workflow run (pypushflow's pool interface), its engine thread and
    the supervision of that thread."""

    def __init__(
        self,
        *,
        graph: networkx.DiGraph,
        context: RunContext,
        run_id: str,
        workflow: str,
        subscribers: list[Subscriber],
    ) -> None:
        self.context = context
        self.limits = context.limits
        self.run_id = run_id
        self.workflow = workflow
        self.subscribers = subscribers
        self.queue: deque[_Job] = deque()
        self.executions: Counter[str] = Counter()
        self.node_outputs: dict[str, dict[str, Any]] = {}
        self.status: str | None = None
        """``failed`` or ``aborted`` once decided; None while running or finished."""
        self.error: NodeError | None = None
        self.abandoned_thread = False
        self.deadline: float | None = None
        self._paused = False
        """The engine thread is in the context's pause point (no deadline runs meanwhile)."""
        self._nodes = {node_id: _node_info(graph, node_id) for node_id in graph.nodes}
        self._lock = threading.RLock()
        self._stopping = False
        self._muted = False
        self._running: _Running | None = None
        self._last_failure: tuple[BaseException, NodeError] | None = None
        self._beamline_stopped = False
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None

    # -- pypushflow pool interface ---------------------------------------------------------

    def apply_async(
        self,
        fn: Callable[..., Any],
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Queue a task; the engine thread runs it. Nothing new starts once the run stops."""
        if self._stopping:
            return
        kwargs = kwargs or {}
        node = self._nodes[kwargs[INFOKEY]["node_id"]]
        self.queue.append(_Job(node, fn, tuple(args), kwargs, callback, error_callback))

    def close(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def interrupt(self) -> None:
        self.context.request_abort("interrupted")

    def shutdown(self, block: bool = False, timeout: float | None = None, **_: Any) -> None:
        pass

    # -- hooks for the actors --------------------------------------------------------------

    def condition_evaluated(
        self, source: str, target: str, checks: list[tuple[str, Any, Any, bool]], taken: bool
    ) -> None:
        if not self.subscribers:
            return
        self._emit(
            ConditionEvaluated,
            source=source,
            target=target,
            checks=tuple(
                ConditionCheck(output=o, expected=e, value=summarise(v), satisfied=s)
                for o, e, v, s in checks
            ),
            taken=taken,
        )

    def report_metadata(self, key: str, value: Any, unit: str | None) -> None:
        """``RunContext.report`` while this run goes on: a MetadataReported event for the
        node running now."""
        if not self.subscribers:
            return
        running = self._running
        self._emit(
            MetadataReported,
            node_id=running.node.name if running else None,
            execution=running.execution if running else None,
            key=key,
            value=summarise(value),
            unit=unit,
        )

    def unhandled_error(self, data: dict[str, Any]) -> None:
        """A failure reached the workflow's error actor: no ``on_error`` link handles it."""
        exc = data.get("WorkflowExceptionInstance")
        if self._last_failure is not None and self._last_failure[0] is exc:
            self._fail(self._last_failure[1])
            return
        node_id = data.get(INFOKEY, {}).get("node_id")
        node = self._nodes.get(node_id) if node_id is not None else None
        self._fail(_node_error(node, exc if isinstance(exc, BaseException) else None))

    # -- running ---------------------------------------------------------------------------

    def run(self, start: Callable[[], None]) -> None:
        """Call ``start`` (trigger the start actor) and run the queued tasks in the engine
        thread until none is left, the run fails or is aborted; supervise from this thread."""
        self._thread = threading.Thread(
            target=self._drive, args=(start,), name=f"bes-engine-{self.run_id[:8]}", daemon=True
        )
        self.context.metadata_sink = self.report_metadata
        self._thread.start()
        try:
            self._supervise()
        finally:
            self._thread.join(0 if self.abandoned_thread else None)
            if self.context.metadata_sink == self.report_metadata:
                self.context.metadata_sink = None

    def _supervise(self) -> None:
        while True:
            try:
                if self._finished.wait(self._poll_s()):
                    return
                if self.context.abort.is_set():
                    self._stop_beamline()
                    if not self._finished.wait(self.limits.abort_grace_s):
                        self._abandon("aborted")
                    return
                now = time.monotonic()
                running = self._running
                timeout = self.limits.task_timeout_s
                if running is not None and timeout is not None and now - running.started >= timeout:
                    self._timeout(running, f"task ran longer than {timeout} s (task_timeout_s)")
                    return
                if self.deadline is not None and not self._paused and now >= self.deadline:
                    self._timeout(
                        running,
                        f"workflow ran longer than {self.limits.workflow_timeout_s} s "
                        "(workflow_timeout_s)",
                    )
                    return
            except KeyboardInterrupt:
                self.context.request_abort("interrupted (KeyboardInterrupt)")

    def _poll_s(self) -> float:
        wait = POLL_S
        now = time.monotonic()
        running = self._running
        if running is not None and self.limits.task_timeout_s is not None:
            wait = min(wait, running.started + self.limits.task_timeout_s - now)
        if self.deadline is not None:
            wait = min(wait, self.deadline - now)
        return max(wait, 0.0)

    def _timeout(self, running: _Running | None, message: str) -> None:
        node = running.node if running is not None else None
        self._fail(
            NodeError(
                node.name if node else None,
                node.task_identifier if node else None,
                "timeout",
                message,
            )
        )
        self.context.request_abort(f"timeout in node {node.name!r}" if node else "workflow timeout")
        self._stop_beamline()
        if not self._finished.wait(self.limits.abort_grace_s):
            self._abandon("timeout")

    def _abandon(self, status: str) -> None:
        """The engine thread did not end within the grace time: report and leave it."""
        with self._lock:
            if status == "aborted" and not self._stopping:
                self._stopping = True
                self.status = "aborted"
            running = self._running
            if running is not None:
                self._emit(
                    NodeEnded,
                    node_id=running.node.name,
                    task_identifier=running.node.task_identifier,
                    execution=running.execution,
                    status=status,
                    error=self.error if status == "timeout" else None,
                    duration_s=time.monotonic() - running.started,
                )
            self._muted = True
            self.abandoned_thread = True
        logger.warning(
            "workflow %s: task %s still running %.1f s after %s; its thread is left behind",
            self.workflow,
            running.node.name if running else "?",
            self.limits.abort_grace_s,
            status,
        )

    def _drive(self, start: Callable[[], None]) -> None:
        first = True
        try:
            start()
            while self.queue and not self._stopping:
                if self.context.abort.is_set():
                    self._abort()
                    break
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    self._fail(
                        NodeError(
                            None,
                            None,
                            "timeout",
                            f"workflow ran longer than {self.limits.workflow_timeout_s} s "
                            "(workflow_timeout_s)",
                        )
                    )
                    break
                if first:
                    first = False
                elif self.context.between_steps is not None:
                    self._between_steps(self.context.between_steps)
                    if self.context.abort.is_set() or self._stopping:
                        continue
                self._run_job(self.queue.popleft())
        except BaseException as exc:
            logger.exception("workflow %s: engine error", self.workflow)
            self._fail(_node_error(None, exc, kind="engine"))
        finally:
            self._finished.set()

    def _between_steps(self, hook: Callable[[], None]) -> None:
        """The context's pause point; the time it takes moves the workflow deadline."""
        started = time.monotonic()
        self._paused = True
        try:
            hook()
        finally:
            if self.deadline is not None:
                self.deadline += time.monotonic() - started
            self._paused = False

    def _run_job(self, job: _Job) -> None:
        node = job.node
        execution = self.executions[node.name] + 1
        if execution > self.limits.max_node_executions:
            self._fail(
                NodeError(
                    node.name,
                    node.task_identifier,
                    "loop_limit",
                    f"node {node.name!r} would run a {execution}th time; the limit is "
                    f"{self.limits.max_node_executions} (Limits.max_node_executions)",
                )
            )
            return
        self.executions[node.name] = execution
        if self.subscribers:
            inputs = {**node.default_inputs, **_values(job.kwargs)}
            self._emit(
                NodeStarted,
                node_id=node.name,
                task_identifier=node.task_identifier,
                execution=execution,
                inputs=summarise(inputs),
            )
        result, error, duration = self._call(job, node, execution)
        ended = {
            "node_id": node.name,
            "task_identifier": node.task_identifier,
            "execution": execution,
            "duration_s": duration,
        }
        with self._lock:
            if self._stopping:  # the supervisor ended the run while the task ran
                if self.status == "failed" and self.error and self.error.kind == "timeout":
                    self._emit(NodeEnded, status="timeout", error=self.error, **ended)
                else:
                    self._emit(NodeEnded, status="aborted", **ended)
                return
        if self.context.abort.is_set():
            self._emit(NodeEnded, status="aborted", **ended)
            self._abort()
            return
        if error is None:
            missing = [
                name
                for name in node.condition_outputs
                if name not in result or is_missing_data(value_from_transfer(result[name]))
            ]
            if missing:
                error = MissingConditionOutput(
                    f"node {node.name!r} ({node.task_identifier}) did not set output(s) "
                    f"{', '.join(map(repr, missing))}, which its conditional links test; "
                    "set them in run() or change the recipe's conditions"
                )
        if error is not None:
            failure = _node_error(node, error)
            self._last_failure = (error, failure)
            self._emit(
                NodeEnded, status="failed", error=failure, handled=node.has_error_handler, **ended
            )
            self._callback(job.error_callback, error, node)
            return
        outputs = _values(result)
        self.node_outputs[node.name] = outputs
        if self.subscribers:
            self._emit(NodeEnded, status="finished", outputs=summarise(outputs), **ended)
        self._callback(job.callback, result, node)

    def _call(
        self, job: _Job, node: _NodeInfo, execution: int
    ) -> tuple[Any, BaseException | None, float]:
        started = time.monotonic()
        self._running = _Running(node, execution, started)
        try:
            return job.fn(*job.args, **job.kwargs), None, time.monotonic() - started
        except Exception as exc:
            return None, exc, time.monotonic() - started
        finally:
            self._running = None

    def _callback(self, callback: Callable[[Any], Any] | None, value: Any, node: _NodeInfo) -> None:
        if callback is None:
            return
        try:
            callback(value)
        except Exception as exc:  # actors catch their own errors; this is a bug in the binding
            logger.exception("engine callback after node %s failed", node.name)
            self._fail(_node_error(node, exc, kind="engine"))

    def _stop_beamline(self) -> None:
        beamline = self.context.beamline
        with self._lock:
            if beamline is None or self._beamline_stopped:
                return
            self._beamline_stopped = True
        try:
            beamline.stop()
        except Exception:
            logger.exception("beamline.stop() failed during abort")

    def _abort(self) -> None:
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self.status = "aborted"
        self._stop_beamline()

    def _fail(self, error: NodeError) -> None:
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self.status = "failed"
                self.error = error

    def _emit(self, event_type: type[EngineEvent], **fields: Any) -> None:
        if not self.subscribers:
            return
        with self._lock:
            if self._muted:
                return
            emit(
                self.subscribers,
                event_type(
                    run_id=self.run_id,
                    workflow=self.workflow,
                    time=time.time(),
                    beamline_time_s=beamline_time(self.context),
                    **fields,
                ),
            )


def beamline_time(context: RunContext) -> float | None:
    if context.beamline is None:
        return None
    try:
        return float(context.beamline.clock.now())
    except Exception:
        return None


def _values(data: dict[str, Any]) -> dict[str, Any]:
    return {
        str(k): value_from_transfer(v)
        for k, v in data.items()
        if k != INFOKEY and k not in ("WorkflowExceptionInstance", "_NewWorkflowException")
    }


def _node_info(graph: networkx.DiGraph, node_id: NodeIdType) -> _NodeInfo:
    attrs = graph.nodes[node_id]
    return _NodeInfo(
        name=node_name(node_id),
        task_identifier=str(attrs.get("task_identifier", "")),
        default_inputs={d["name"]: d["value"] for d in attrs.get("default_inputs") or []},
        condition_outputs=tuple(sorted(analysis.node_condition_values(graph, node_id))),
        has_error_handler=analysis.node_has_error_handlers(graph, node_id),
    )


def _node_error(
    node: _NodeInfo | None, exc: BaseException | None, kind: str | None = None
) -> NodeError:
    if exc is None:
        message, text = "failed (no exception recorded)", ""
    else:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        message = f"{type(cause).__name__}: {cause}"
        text = "".join(traceback.format_exception(exc))
    if kind is None:
        kind = (
            "missing_condition_output" if isinstance(exc, MissingConditionOutput) else "exception"
        )
    return NodeError(
        node.name if node else None, node.task_identifier if node else None, kind, message, text
    )
