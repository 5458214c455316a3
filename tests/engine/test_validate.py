"""Recipe validation: each problem reported with the node ids concerned."""

from __future__ import annotations

from pathlib import Path

import pytest

from bes.engine import Problem, RecipeError, RecipeNotFoundError, load_recipe, validate_recipe
from bes.engine.recipes import find_loops, list_recipes
from bes.engine.registry import TaskRegistry
from tests.engine.builders import GRAPHS, graph, link, node, task, two_node_loop


def codes(problems: list[Problem]) -> dict[str, tuple[str, ...]]:
    return {p.code: p.node_ids for p in problems}


def test_a_clean_recipe_has_no_problems(registry: TaskRegistry) -> None:
    assert validate_recipe(GRAPHS / "nested_loops.json", registry) == []


def test_unreachable_nodes_are_reported(registry: TaskRegistry) -> None:
    recipe = two_node_loop(3)
    recipe["nodes"].append(node("island", "Relay"))
    recipe["nodes"].append(node("lagoon", "Relay"))
    recipe["links"].append(link("island", "lagoon", "n", "limit"))
    recipe["links"].append(link("lagoon", "island", "n", "limit", done=False))

    problems = validate_recipe(recipe, registry)

    assert codes(problems)["unreachable"] == ("island", "lagoon")


def test_loops_without_an_exit_condition_are_reported(registry: TaskRegistry) -> None:
    recipe = graph(
        "endless",
        [node("start", "Count", limit=3), node("a", "Relay"), node("b", "Relay")],
        [
            link("start", "a", "n", "limit"),
            link("a", "b", "n", "limit"),
            link("b", "a", "n", "limit"),
        ],
    )

    problems = validate_recipe(recipe, registry)

    assert codes(problems)["loop-without-exit"] == ("a", "b")
    with pytest.raises(RecipeError, match="never ends"):
        load_recipe(recipe, registry)


def test_unconditional_self_loop_is_a_loop_without_exit(registry: TaskRegistry) -> None:
    recipe = graph("spin", [node("a", "Count", start=True, limit=3)], [link("a", "a", "n")])

    assert codes(validate_recipe(recipe, registry))["loop-without-exit"] == ("a",)


def test_schema_errors_name_the_node(registry: TaskRegistry) -> None:
    recipe = {
        "graph": {},
        "nodes": [{"id": "a", "task_type": "class"}],
        "links": [{"source": "a", "target": "ghost"}],
    }

    problems = validate_recipe(recipe, registry)

    assert all(p.level == "error" and p.code == "schema" for p in problems)
    texts = [str(p) for p in problems]
    assert any("graph.id" in t for t in texts)
    assert any("[a]" in t and "task_identifier" in t for t in texts)
    assert any("[ghost]" in t and "no node 'ghost'" in t for t in texts)


def test_unknown_tasks_in_allowed_packages_are_reported(registry: TaskRegistry) -> None:
    recipe = graph("typo", [node("a", "Cuont", limit=1)], [])

    problems = validate_recipe(recipe, registry)

    assert codes(problems) == {"unknown-task": ("a",)}
    assert "has no BesTask 'Cuont'" in problems[0].message


def test_data_mapping_to_unknown_names_is_reported(registry: TaskRegistry) -> None:
    recipe = graph("typo", [node("a", "Count", limit=1), node("b", "Relay")], [])
    recipe["links"] = [
        {
            "source": "a",
            "target": "b",
            "data_mapping": [
                {"source_output": "count", "target_input": "n"},
                {"source_output": "limit", "target_input": "limits"},
            ],
        }
    ]

    problems = validate_recipe(recipe, registry)

    messages = [p.message for p in problems if p.code == "data-mapping"]
    assert any("no output 'count'" in m for m in messages)
    assert any("no input 'limits'" in m for m in messages)


def test_required_inputs_left_to_the_run_are_a_warning(registry: TaskRegistry) -> None:
    recipe = graph("needs_x", [node("echo", "Echo")], [])

    problems = validate_recipe(recipe, registry)

    assert [(p.level, p.code, p.node_ids) for p in problems] == [
        ("warning", "run-input", ("echo",))
    ]
    assert load_recipe(recipe, registry).warnings == tuple(problems)


def test_unknown_recipe_names_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "mesh_scan.json").write_text("{}")

    with pytest.raises(RecipeNotFoundError, match="unknown workflow 'mesh'; known: mesh_scan"):
        load_recipe("mesh", dirs=[tmp_path])


def test_a_file_that_is_not_json_is_a_schema_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{nodes: [")

    problems = validate_recipe(path)

    assert [p.code for p in problems] == ["schema"]


def test_find_loops_lists_cycles_with_their_exit_conditions(registry: TaskRegistry) -> None:
    graph_ = load_recipe(GRAPHS / "nested_loops.json", registry).task_graph().graph

    loops = {lp.nodes: lp.exits for lp in find_loops(graph_)}

    assert loops[("inner",)] == ("inner -> inner if inner_done == false",)
    assert set(loops) == {("inner",), ("outer", "inner")} or set(loops) == {
        ("inner",),
        ("inner", "outer"),
    }


def test_recipes_ship_in_the_workflows_folder() -> None:
    names = [p.stem for p in list_recipes()]
    assert "beamline_check" in names
    assert task("Count").startswith("tests.engine")
