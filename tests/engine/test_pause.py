"""The context's pause point: called between two node executions with no engine lock held;
the time paused does not count towards the workflow timeout; an abort while paused ends the
run at once."""

from __future__ import annotations

import threading
import time

from bes.engine import Limits, NodeStarted, RunContext, run_workflow
from bes.engine.events import EngineEvent
from bes.engine.registry import TaskRegistry
from tests.engine.builders import two_node_loop


def test_the_pause_point_runs_between_node_executions(registry: TaskRegistry) -> None:
    order: list[str] = []

    class Events:
        def on_event(self, event: EngineEvent) -> None:
            if isinstance(event, NodeStarted):
                order.append("node")

    context = RunContext()
    context.between_steps = lambda: order.append("pause")

    result = run_workflow(
        two_node_loop(3), context=context, registry=registry, subscribers=[Events()]
    )

    assert result.status == "finished"
    nodes = order.count("node")
    assert nodes >= 2
    assert order[0] == "node"
    assert order.count("pause") == nodes - 1
    assert "pause" not in (order[i] for i in range(len(order) - 1) if order[i + 1] == "pause")


def test_time_paused_does_not_count_towards_the_workflow_timeout(registry: TaskRegistry) -> None:
    context = RunContext(limits=Limits(workflow_timeout_s=0.5))
    paused = []

    def pause_once() -> None:
        if not paused:
            paused.append(True)
            time.sleep(1.0)  # twice the workflow timeout

    context.between_steps = pause_once

    result = run_workflow(two_node_loop(3), context=context, registry=registry)

    assert paused
    assert result.status == "finished", result.error


def test_an_abort_while_paused_ends_the_run_aborted(registry: TaskRegistry) -> None:
    context = RunContext()
    resume = threading.Event()
    entered = threading.Event()

    def pause() -> None:
        entered.set()
        resume.wait(10.0)

    context.between_steps = pause

    def abort_when_paused() -> None:
        entered.wait(10.0)
        context.request_abort("aborted while paused")
        resume.set()  # the queue wakes its pause point on abort

    threading.Thread(target=abort_when_paused).start()
    result = run_workflow(two_node_loop(10**6), context=context, registry=registry)

    assert result.status == "aborted"
    assert result.abort_reason == "aborted while paused"
