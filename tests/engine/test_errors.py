"""Failures: on_error routing, unhandled errors, conditions on missing outputs, timeouts."""

from __future__ import annotations

import pytest

from bes.engine import Limits, ListSubscriber, NodeEnded, RecipeError, RunContext, run_workflow
from bes.engine.registry import TaskRegistry
from tests.engine.builders import GRAPHS, graph, link, node, two_node_loop


def test_on_error_link_routes_the_failure_to_its_handler_with_the_error(
    registry: TaskRegistry,
) -> None:
    events = ListSubscriber()

    result = run_workflow(GRAPHS / "on_error.json", registry=registry, subscribers=[events])

    assert result.status == "finished"
    assert result.node_executions == {"count": 1, "fail": 1, "handler": 1}
    assert result.outputs["handled"] is True
    assert "motor jammed at n=1" in result.outputs["message"]
    failed = [e for e in events.of_type(NodeEnded) if e.node_id == "fail"]
    assert failed[0].status == "failed" and failed[0].handled
    assert failed[0].error is not None and "motor jammed" in failed[0].error.message


def test_failure_without_handler_ends_failed_with_node_and_traceback(
    registry: TaskRegistry,
) -> None:
    recipe = graph("no_handler", [node("count", "Count", limit=1), node("fail", "Fail")], [])
    recipe["links"] = [link("count", "fail", "n")]

    result = run_workflow(recipe, registry=registry)

    assert result.status == "failed"
    assert result.detail == "failed: exception"
    assert result.error is not None
    assert result.error.node_id == "fail"
    assert result.error.task_identifier == "tests.engine.tasks_for_tests.Fail"
    assert "ValueError: motor jammed at n=1" in result.error.message
    assert "Traceback" in result.error.traceback and "motor jammed" in result.error.traceback
    assert result.outputs == {}


def test_condition_on_an_output_the_task_did_not_set_fails_with_a_clear_error(
    registry: TaskRegistry,
) -> None:
    result = run_workflow(GRAPHS / "missing_output.json", registry=registry)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error.kind == "missing_condition_output"
    assert result.error.node_id == "forgets"
    assert "'done'" in result.error.message and "did not set" in result.error.message
    assert "next" not in result.node_executions


def test_condition_on_an_output_the_task_does_not_declare_is_refused_at_load(
    registry: TaskRegistry,
) -> None:
    recipe = graph(
        "bad_condition",
        [node("a", "Echo", x=1), node("b", "Echo")],
        [link("a", "b", "x", finished=True)],
    )

    with pytest.raises(RecipeError) as refused:
        run_workflow(recipe, registry=registry)

    assert "condition on 'finished'" in str(refused.value)
    assert refused.value.problems[0].node_ids == ("a", "b")


def test_a_stuck_task_ends_failed_timeout_and_its_thread_ends(registry: TaskRegistry) -> None:
    recipe = graph("stuck", [node("wait", "WaitForAbort", wait_s=60.0)], [])
    context = RunContext(limits=Limits(task_timeout_s=0.2))
    events = ListSubscriber()

    result = run_workflow(recipe, context=context, registry=registry, subscribers=[events])

    assert result.status == "failed"
    assert result.detail == "failed: timeout"
    assert result.error is not None and result.error.node_id == "wait"
    assert "task_timeout_s" in result.error.message
    assert not result.abandoned_thread
    assert [e.status for e in events.of_type(NodeEnded)] == ["timeout"]
    assert context.aborted  # the engine asked the task to stop


def test_workflow_timeout_ends_a_long_loop_failed_timeout(registry: TaskRegistry) -> None:
    context = RunContext(limits=Limits(workflow_timeout_s=0.3))

    result = run_workflow(two_node_loop(10**9), context=context, registry=registry)

    assert result.status == "failed"
    assert result.detail == "failed: timeout"
    assert result.error is not None and "workflow_timeout_s" in result.error.message


def test_missing_required_input_fails_the_node_naming_the_input(registry: TaskRegistry) -> None:
    recipe = graph("needs_x", [node("echo", "Echo")], [])

    result = run_workflow(recipe, registry=registry)

    assert result.status == "failed"
    assert result.error is not None and result.error.node_id == "echo"
    assert "Missing inputs" in result.error.message and "'x'" in result.error.message
