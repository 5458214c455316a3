"""Small graph builders for the engine tests (ewoks JSON dicts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEST_TASKS = "tests.engine.tasks_for_tests"
GRAPHS = Path(__file__).with_name("graphs")


def task(name: str) -> str:
    return f"{TEST_TASKS}.{name}"


def node(node_id: str, task_name: str, start: bool = False, **inputs: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "id": node_id,
        "task_type": "class",
        "task_identifier": task(task_name),
    }
    if start:
        attrs["force_start_node"] = True
    if inputs:
        attrs["default_inputs"] = [{"name": k, "value": v} for k, v in inputs.items()]
    return attrs


def link(source: str, target: str, *names: str, **conditions: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "source": source,
        "target": target,
        "data_mapping": [{"source_output": n, "target_input": n} for n in names],
    }
    if conditions:
        attrs["conditions"] = [{"source_output": k, "value": v} for k, v in conditions.items()]
    return attrs


def graph(
    graph_id: str, nodes: list[dict[str, Any]], links: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"graph": {"id": graph_id, "schema_version": "1.2"}, "nodes": nodes, "links": links}


def self_loop(limit: int) -> dict[str, Any]:
    """One Count node linked to itself while not done."""
    return graph(
        "self_loop",
        [node("count", "Count", start=True, limit=limit)],
        [link("count", "count", "n", "limit", done=False)],
    )


def two_node_loop(limit: int) -> dict[str, Any]:
    """count -> relay (while not done) -> count."""
    return graph(
        "two_node_loop",
        [node("count", "Count", start=True, limit=limit), node("relay", "Relay")],
        [link("count", "relay", "n", "limit", done=False), link("relay", "count", "n", "limit")],
    )
