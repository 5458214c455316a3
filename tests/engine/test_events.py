"""Events to subscribers: workflow and node start/end, conditions, summarised values."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from bes.engine import (
    ConditionEvaluated,
    EngineEvent,
    ListSubscriber,
    NodeEnded,
    NodeStarted,
    RunContext,
    WorkflowEnded,
    WorkflowStarted,
    run_workflow,
    summarise,
)
from bes.engine.registry import TaskRegistry
from tests.engine.builders import graph, node, two_node_loop


def test_events_of_a_loop_in_order(registry: TaskRegistry) -> None:
    events = ListSubscriber()

    result = run_workflow(two_node_loop(2), registry=registry, subscribers=[events])

    assert events.kinds() == [
        "workflow_started",
        "node_started",  # count 1
        "node_ended",
        "condition_evaluated",  # count -> relay taken
        "node_started",  # relay
        "node_ended",
        "node_started",  # count 2
        "node_ended",
        "condition_evaluated",  # count -> relay not taken: done
        "workflow_ended",
    ]
    assert {e.run_id for e in events.events} == {result.run_id}
    started = events.of_type(NodeStarted)
    assert [(e.node_id, e.execution) for e in started] == [("count", 1), ("relay", 1), ("count", 2)]
    assert started[2].inputs == {"limit": 2, "n": 1}
    assert events.of_type(NodeEnded)[2].outputs == {"n": 2, "limit": 2, "done": True}
    last = events.of_type(ConditionEvaluated)[-1]
    assert (last.source, last.target, last.taken) == ("count", "relay", False)
    assert [(c.output, c.expected, c.value, c.satisfied) for c in last.checks] == [
        ("done", False, True, False)
    ]
    ended = events.of_type(WorkflowEnded)[0]
    assert ended.status == "finished"
    assert ended.node_executions == {"count": 2, "relay": 1}


def test_large_arrays_are_summarised_never_sent(registry: TaskRegistry) -> None:
    events = ListSubscriber()

    run_workflow(
        graph("image", [node("make", "MakeImage")], []), registry=registry, subscribers=[events]
    )

    image = events.of_type(NodeEnded)[0].outputs["image"]
    assert image == {
        "shape": [1000, 1000],
        "dtype": "float32",
        "min": 0.0,
        "max": 999999.0,
        "mean": image["mean"],
    }
    assert abs(image["mean"] - 499999.5) < 1.0
    assert len(json.dumps([e.to_dict() for e in events.events], default=str)) < 5000


def test_summarise_keeps_small_values_and_shortens_big_ones() -> None:
    assert summarise({"a": 1, "b": [1.5, "x"], "c": None}) == {"a": 1, "b": [1.5, "x"], "c": None}
    assert summarise(list(range(1000)))["len"] == 1000
    assert summarise("x" * 1000).endswith("(1000 chars)")
    assert summarise(np.float32(2.5)) == 2.5
    assert summarise(float("nan")) == "nan"
    assert summarise(np.zeros((2, 3), dtype=bool))["shape"] == [2, 3]


def test_context_recorder_receives_events_and_a_failing_subscriber_is_ignored(
    registry: TaskRegistry,
) -> None:
    class Broken:
        def on_event(self, event: EngineEvent) -> None:
            raise RuntimeError("database down")

    recorder = ListSubscriber()
    context = RunContext(recorder=recorder)

    result = run_workflow(
        two_node_loop(3), context=context, registry=registry, subscribers=[Broken()]
    )

    assert result.status == "finished"
    assert isinstance(recorder.events[0], WorkflowStarted)
    assert isinstance(recorder.events[-1], WorkflowEnded)


def test_events_are_json_friendly(registry: TaskRegistry) -> None:
    events = ListSubscriber()

    run_workflow(two_node_loop(2), {"limit": 2}, registry=registry, subscribers=[events])

    records: list[dict[str, Any]] = [e.to_dict() for e in events.events]
    json.dumps(records)
    assert records[0]["kind"] == "workflow_started"
    assert records[0]["inputs"] == {"limit": 2}
