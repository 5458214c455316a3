"""``bes workflows list | show | validate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bes.cli import main
from tests.engine.builders import GRAPHS, TEST_TASKS


def test_list_shows_every_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflows", "list"]) == 0
    out = capsys.readouterr().out
    assert "beamline_check" in out and "valid" in out


def test_show_prints_nodes_links_conditions_and_loops(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflows", "show", "beamline_check"]) == 0
    out = capsys.readouterr().out
    for text in ("Nodes", "Links", "Loops", "rotate -> rotate if done == false", "on error"):
        assert text in out


def test_show_unknown_recipe_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflows", "show", "nope"]) == 1
    assert "unknown workflow 'nope'; known: beamline_check" in capsys.readouterr().out


def test_validate_passes_a_good_file_and_reports_bad_ones_with_node_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "graph": {"id": "bad"},
                "nodes": [
                    {"id": "a", "task_type": "class", "task_identifier": f"{TEST_TASKS}.Relay"},
                    {"id": "b", "task_type": "class", "task_identifier": f"{TEST_TASKS}.Relay"},
                ],
                "links": [
                    {"source": "a", "target": "b", "map_all_data": True},
                    {"source": "b", "target": "a", "map_all_data": True},
                ],
            }
        )
    )
    good = GRAPHS / "nested_loops.json"

    status = main(["workflows", "validate", str(good), str(bad), "--allow-package", TEST_TASKS])

    out = capsys.readouterr().out
    assert status == 1
    assert f"{good}: valid" in out.replace("\n", "")
    assert "loop-without-exit" in out and "a, b" in out


def test_validate_refuses_forbidden_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflows", "validate", str(GRAPHS / "forbidden.json")]) == 1
    assert "forbidden-task" in capsys.readouterr().out
