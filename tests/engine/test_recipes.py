"""Every recipe in workflows/: opens in ewoks unchanged, validates, and gives its expected
result (``graph.mxbes.expected``) on the simulated beamline (instant clock)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from ewokscore import load_graph

from bes.config import SIMULATED_BEAMLINE
from bes.engine import (
    EngineEvent,
    ListSubscriber,
    NodeEnded,
    NodeStarted,
    RunContext,
    load_recipe,
    run_workflow,
    validate_recipe,
)
from bes.engine.recipes import list_recipes
from bes.hal import Beamline

RECIPES = list_recipes()


def matches(actual: Any, expected: Any) -> bool:
    """Equality, with floats compared to 1e-6 relative, inside dicts and lists too."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and matches(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(expected)
            and all(matches(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, float) and not isinstance(actual, bool):
        return bool(actual == pytest.approx(expected, rel=1e-6))
    return bool(actual == expected)


def test_there_are_recipes() -> None:
    assert [p.stem for p in RECIPES], "workflows/ holds no recipe"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_opens_in_ewoks_and_validates(path: Path) -> None:
    taskgraph = load_graph(str(path), root_dir=str(path.parent))
    assert taskgraph.graph.nodes

    problems = validate_recipe(path)

    assert [p for p in problems if p.level == "error"] == []
    assert load_recipe(path).expected, f"{path.name}: add graph.mxbes.expected"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_gives_its_expected_result_on_the_simulated_beamline(
    path: Path, tmp_path: Path
) -> None:
    beamline = Beamline.from_config(SIMULATED_BEAMLINE, overrides={"clock": {"mode": "instant"}})
    recipe = load_recipe(path)
    expected = recipe.expected
    assert expected is not None
    inputs = dict(recipe.example_inputs)
    if any("data_root" in task.input_names() for task in recipe.task_classes.values()):
        inputs["data_root"] = str(tmp_path)  # the recipe writes files: none in the repo
    events = ListSubscriber()

    result = run_workflow(recipe, inputs, RunContext(beamline=beamline), subscribers=[events])

    assert result.status == expected.get("status", "finished"), result.error
    assert matches(result.outputs, expected.get("outputs", {})), result.outputs
    if "node_executions" in expected:
        assert result.node_executions == expected["node_executions"]
    assert events.kinds()[0] == "workflow_started" and events.kinds()[-1] == "workflow_ended"
    assert events.events[-1].beamline_time_s is not None


def test_abort_during_a_simulated_move_stops_the_goniometer() -> None:
    """Real clock: one 3600 deg omega move would take 10 s; the abort ends it at once."""
    beamline = Beamline.from_config(SIMULATED_BEAMLINE, overrides={"clock": {"mode": "real"}})
    context = RunContext(beamline=beamline)
    timers: list[threading.Timer] = []

    class AbortDuringRotate:
        def on_event(self, event: EngineEvent) -> None:
            if isinstance(event, NodeStarted) and event.node_id == "rotate":
                timers.append(threading.Timer(0.2, context.request_abort, ["operator abort"]))
                timers[-1].start()

    events = ListSubscriber()
    result = run_workflow(
        "beamline_check",
        {"step_deg": 3600.0, "turn_deg": 7200.0},
        context,
        subscribers=[AbortDuringRotate(), events],
    )
    for timer in timers:
        timer.join()

    assert result.status == "aborted"
    assert result.node_executions == {"read": 1, "rotate": 1}
    assert [e.status for e in events.of_type(NodeEnded)] == ["finished", "aborted"]
    assert beamline.goniometer.read("omega") < 3600.0
