"""How tasks get the run's context and inputs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ewokscore.inittask import instantiate_task

from bes.engine import Limits, RunContext, run_workflow
from bes.engine.registry import TaskRegistry
from tests.engine.builders import graph, node, task


def test_a_task_reaches_the_beamline_through_its_context(registry: TaskRegistry) -> None:
    beamline: Any = SimpleNamespace(name="SIM-MX1", clock=SimpleNamespace(now=lambda: 12.5))
    recipe = graph("who", [node("who", "UsesBeamline")], [])

    result = run_workflow(recipe, context=RunContext(beamline=beamline), registry=registry)

    assert result.outputs == {"name": "SIM-MX1"}


def test_a_task_that_needs_a_beamline_fails_clearly_without_one(registry: TaskRegistry) -> None:
    result = run_workflow(graph("who", [node("who", "UsesBeamline")], []), registry=registry)

    assert result.status == "failed"
    assert result.error is not None and "needs a beamline" in result.error.message


def test_a_task_run_outside_the_engine_has_no_context() -> None:
    attrs = {"task_type": "class", "task_identifier": task("UsesBeamline")}
    plain = instantiate_task("who", attrs)

    with pytest.raises(RuntimeError, match=r"runs without a bes\.engine context"):
        plain.context  # noqa: B018


def test_flat_inputs_go_to_every_node_that_takes_them(registry: TaskRegistry) -> None:
    recipe = graph("echo", [node("one", "Echo"), node("two", "Echo")], [])

    result = run_workflow(recipe, {"x": 7, "sessionId": 42}, registry=registry)

    assert result.node_outputs == {"one": {"x": 7, "y": None}, "two": {"x": 7, "y": None}}
    assert result.unused_inputs == ("sessionId",)


def test_ewoks_input_items_target_one_node(registry: TaskRegistry) -> None:
    recipe = graph("echo", [node("one", "Echo", x=1), node("two", "Echo", x=2)], [])

    result = run_workflow(recipe, [{"id": "two", "name": "y", "value": "b"}], registry=registry)

    assert result.node_outputs == {"one": {"x": 1, "y": None}, "two": {"x": 2, "y": "b"}}


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="task_timeout_s must be > 0"):
        Limits(task_timeout_s=0)
    with pytest.raises(ValueError, match="max_node_executions"):
        Limits(max_node_executions=0)


def test_check_abort_raises_once_abort_is_requested() -> None:
    from bes.engine import WorkflowAborted

    context = RunContext()
    context.check_abort()
    context.request_abort("night over")
    with pytest.raises(WorkflowAborted, match="night over"):
        context.check_abort()


def test_an_input_item_for_an_unknown_node_is_a_clear_error(registry: TaskRegistry) -> None:
    recipe = graph("echo", [node("one", "Echo", x=1)], [])

    with pytest.raises(ValueError, match="input for unknown node 'two'; nodes of 'echo': one"):
        run_workflow(recipe, [{"id": "two", "name": "y", "value": 1}], registry=registry)
