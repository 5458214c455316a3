"""Loops and conditional links: self-loops, long loops, nested loops, sub-graphs, and the
ewokscore example graphs (the results ewoks specifies; ewoksppf skips ``self_trigger`` as
inconsistent, ewoksppf issue 16, which our engine runs deterministically)."""

from __future__ import annotations

import pytest
from ewokscore import load_graph
from ewokscore.tests.examples.graphs import get_graph
from ewokscore.tests.utils.results import assert_execute_graph_default_result

from bes.engine import Limits, RunContext, run_workflow
from bes.engine.registry import TaskRegistry
from tests.engine.builders import GRAPHS, graph, link, node, self_loop, task, two_node_loop


def test_self_loop_of_10000_iterations_completes(registry: TaskRegistry) -> None:
    result = run_workflow(self_loop(10_000), registry=registry)

    assert result.status == "finished"
    assert result.node_executions == {"count": 10_000}
    assert result.outputs == {"n": 10_000, "limit": 10_000, "done": True}


def test_two_node_loop_of_10000_iterations_completes(registry: TaskRegistry) -> None:
    result = run_workflow(two_node_loop(10_000), registry=registry)

    assert result.status == "finished"
    assert result.node_executions == {"count": 10_000, "relay": 9_999}
    assert result.outputs["n"] == 10_000


def test_nested_loops_run_the_inner_loop_for_each_outer_turn(registry: TaskRegistry) -> None:
    result = run_workflow(GRAPHS / "nested_loops.json", registry=registry)

    assert result.status == "finished"
    assert result.node_executions == {"outer": 4, "inner": 12, "finish": 1}
    assert result.outputs == {"total": 12, "finished": True}


def test_sub_graph_loop_runs_inside_its_parent(registry: TaskRegistry) -> None:
    result = run_workflow(GRAPHS / "with_subgraph.json", registry=registry)

    assert result.status == "finished"
    assert result.node_executions == {"loop:count": 5, "after": 1}
    assert result.node_outputs["after"] == {"n": 5, "limit": 5}


def test_a_loop_that_never_exits_ends_at_the_node_execution_limit(
    registry: TaskRegistry,
) -> None:
    context = RunContext(limits=Limits(max_node_executions=50))

    result = run_workflow(self_loop(1_000_000), context=context, registry=registry)

    assert result.status == "failed"
    assert result.detail == "failed: loop_limit"
    assert result.error is not None and result.error.node_id == "count"
    assert result.node_executions == {"count": 50}


def _ewoks_example(name: str) -> tuple[dict, dict]:
    """An ewokscore example graph with its tasks replaced by our equivalents."""
    ours = {
        "ewokscore.tests.examples.tasks.sumtask.SumTask": task("Sum"),
        "ewokscore.tests.examples.tasks.errorsumtask.ErrorSumTask": task("ErrorSum"),
        "ewokscore.tests.examples.tasks.condsumtask.CondSumTask": task("CondSum"),
    }
    example, expected = get_graph(name)
    for attrs in example["nodes"]:
        attrs["task_identifier"] = ours[attrs["task_identifier"]]
    return example, expected


@pytest.mark.parametrize("name", ["acyclic1", "acyclic2", "cyclic1", "self_trigger", "triangle1"])
def test_ewokscore_example_graphs_give_the_results_ewoks_specifies(
    name: str, registry: TaskRegistry
) -> None:
    example, expected = _ewoks_example(name)

    result = run_workflow(example, registry=registry)

    assert result.status == "finished"
    # ewoks' own check: the workflow result is the merged output of the end nodes
    assert_execute_graph_default_result(example, result.outputs, expected)
    if not load_graph(example).is_cyclic:
        for node_id, outputs in expected.items():
            if outputs is None:
                assert node_id not in result.node_outputs, f"{node_id} should not have finished"
            else:
                assert result.node_outputs[node_id] == outputs, node_id


def test_loop_iterations_do_not_deepen_the_stack(registry: TaskRegistry) -> None:
    """Successors are queued, not called from their predecessor: iteration 5000 runs at the
    same stack depth as iteration 1 (so per-node cost cannot grow with the loop)."""
    recipe = graph(
        "depth",
        [node("count", "CountWithDepth", start=True, limit=5000)],
        [link("count", "count", "n", "limit", "min_depth", "max_depth", done=False)],
    )

    result = run_workflow(recipe, registry=registry)

    assert result.status == "finished"
    assert result.outputs["min_depth"] == result.outputs["max_depth"]
