"""Abort: from a task, from another thread, from a signal; the beamline is stopped."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from bes.engine import (
    ListSubscriber,
    NodeEnded,
    RunContext,
    install_signal_abort,
    run_workflow,
)
from bes.engine.registry import TaskRegistry
from tests.engine.builders import graph, link, node, self_loop
from tests.engine.tasks_for_tests import WaitForAbort


class StoppableBeamline:
    """Just what the engine touches on a beamline: the clock and stop()."""

    name = "FAKE"

    def __init__(self, context: RunContext | None = None) -> None:
        self.stops = 0
        self.clock = self

    def now(self) -> float:
        return 0.0

    def stop(self) -> None:
        self.stops += 1


def test_abort_mid_loop_ends_aborted_at_the_next_node_boundary(registry: TaskRegistry) -> None:
    recipe = graph(
        "abort_loop",
        [node("count", "CountThenAbort", start=True, limit=1000, abort_at=50)],
        [link("count", "count", "n", "limit", "abort_at", done=False)],
    )
    beamline: Any = StoppableBeamline()
    context = RunContext(beamline=beamline)

    result = run_workflow(recipe, context=context, registry=registry)

    assert result.status == "aborted"
    assert result.abort_reason == "operator pressed abort"
    assert result.node_executions == {"count": 50}
    assert result.error is None
    assert beamline.stops == 1


def _abort_when_started(context: RunContext, how: str) -> threading.Thread:
    def abort() -> None:
        WaitForAbort.started.wait(10)
        if how == "signal":
            os.kill(os.getpid(), signal.SIGINT)
        else:
            context.request_abort("stop from the GUI")

    WaitForAbort.started.clear()
    thread = threading.Thread(target=abort)
    thread.start()
    return thread


def test_abort_from_another_thread_stops_a_running_task(registry: TaskRegistry) -> None:
    recipe = graph("wait", [node("wait", "WaitForAbort", wait_s=60.0)], [])
    beamline: Any = StoppableBeamline()
    context = RunContext(beamline=beamline)
    events = ListSubscriber()

    thread = _abort_when_started(context, "api")
    result = run_workflow(recipe, context=context, registry=registry, subscribers=[events])
    thread.join()

    assert result.status == "aborted"
    assert result.abort_reason == "stop from the GUI"
    assert [e.status for e in events.of_type(NodeEnded)] == ["aborted"]
    assert events.kinds()[-1] == "workflow_ended"
    assert beamline.stops == 1
    assert not result.abandoned_thread


def test_sigint_aborts_the_workflow_when_signal_abort_is_installed(
    registry: TaskRegistry,
) -> None:
    recipe = graph("wait", [node("wait", "WaitForAbort", wait_s=60.0)], [])
    context = RunContext()

    with install_signal_abort(context):
        thread = _abort_when_started(context, "signal")
        result = run_workflow(recipe, context=context, registry=registry)
        thread.join()

    assert result.status == "aborted"
    assert result.abort_reason == "signal SIGINT"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_abort_requested_before_start_runs_nothing(registry: TaskRegistry) -> None:
    context = RunContext()
    context.request_abort("queue stopped")

    result = run_workflow(self_loop(10), context=context, registry=registry)

    assert result.status == "aborted"
    assert result.node_executions == {}


def test_fresh_context_clears_the_abort_flag_for_the_next_run(registry: TaskRegistry) -> None:
    context = RunContext()
    context.request_abort()

    result = run_workflow(self_loop(3), context=context.fresh(), registry=registry)

    assert result.status == "finished"
