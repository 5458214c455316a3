"""Only registered tasks run: anything else is refused at load, before any import."""

from __future__ import annotations

import sys

import pytest

from bes.engine import RecipeRefused, run_workflow
from bes.engine.registry import DEFAULT_REGISTRY, ForbiddenTaskError, TaskRegistry
from tests.engine.builders import GRAPHS, graph, node, self_loop


def test_recipe_naming_a_task_outside_the_allowed_packages_is_refused_before_import(
    registry: TaskRegistry,
) -> None:
    sys.modules.pop("antigravity", None)

    with pytest.raises(RecipeRefused) as refused:
        run_workflow(GRAPHS / "forbidden.json", registry=registry)

    message = str(refused.value)
    assert "'antigravity.Fly' is not allowed" in message
    assert "[evil]" in message
    assert "antigravity" not in sys.modules
    assert isinstance(refused.value, ForbiddenTaskError)


@pytest.mark.parametrize(
    ("task_type", "identifier"),
    [
        ("method", "os.system"),
        ("script", "rm.py"),
        ("ppfmethod", "os.system"),
        ("class", "bes.tasks_evil.Task"),
        ("class", "bes.tasks"),
    ],
)
def test_code_running_task_types_and_lookalike_packages_are_refused(
    task_type: str, identifier: str
) -> None:
    recipe = {
        "graph": {"id": "evil"},
        "nodes": [{"id": "x", "task_type": task_type, "task_identifier": identifier}],
        "links": [],
    }

    with pytest.raises(RecipeRefused):
        run_workflow(recipe)


def test_the_default_registry_does_not_allow_the_test_tasks() -> None:
    with pytest.raises(RecipeRefused, match=r"tests\.engine\.tasks_for_tests\.Count"):
        run_workflow(self_loop(3))


def test_sub_recipe_must_be_a_recipe_name_not_a_path(registry: TaskRegistry) -> None:
    recipe = graph("sub", [], [])
    recipe["nodes"] = [{"id": "g", "task_type": "graph", "task_identifier": "../../etc/passwd"}]

    with pytest.raises(RecipeRefused, match="must be the name of a recipe"):
        run_workflow(recipe, registry=registry)


def test_registry_resolves_only_bes_task_classes(registry: TaskRegistry) -> None:
    assert registry.is_allowed("tests.engine.tasks_for_tests.Count")
    assert not DEFAULT_REGISTRY.is_allowed("tests.engine.tasks_for_tests.Count")
    count = registry.resolve("tests.engine.tasks_for_tests.Count")
    assert count.__name__ == "Count"
    with pytest.raises(ValueError, match="has no BesTask 'threading'"):
        registry.resolve("tests.engine.tasks_for_tests.threading")
    assert "bes.tasks.beamline_check.ReadBeamline" in DEFAULT_REGISTRY.known_tasks()


def test_a_test_node_runs_with_the_extended_registry(registry: TaskRegistry) -> None:
    assert run_workflow(graph("one", [node("e", "Echo", x=3)], []), registry=registry).outputs == {
        "x": 3,
        "y": None,
    }
