"""Every recipe, run on the simulated beamline with a recorder: every node execution,
decision, metadata item and device action is in the database, with the run's summary, and
the run replays as a timeline (``bes runs show``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bes.cli import main
from bes.engine import (
    ConditionEvaluated,
    ListSubscriber,
    MetadataReported,
    NodeEnded,
    RunContext,
    WorkflowEnded,
    load_recipe,
    run_workflow,
)
from bes.engine.recipes import list_recipes
from bes.hal import DeviceAction
from bes.record.database import Database
from bes.record.recorder import Recorder
from bes.record.schema import (
    Decision,
    DeviceActionRow,
    MetadataItem,
    NodeExecution,
    Run,
    RunSummary,
)
from bes.record.timeline import load_timeline
from tests.conftest import make_sim_beamline

RECIPES = list_recipes()


def rows(database: Database, model: Any) -> list[dict[str, Any]]:
    table = model.__table__
    with database.engine.connect() as connection:
        return [
            dict(row)
            for row in connection.execute(select(table).order_by(*table.primary_key)).mappings()
        ]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_a_recorded_recipe_run_is_all_in_the_database(
    path: Path, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = load_recipe(path)
    beamline = make_sim_beamline()
    actions: list[DeviceAction] = []
    beamline.clock.subscribe(actions.append)
    events = ListSubscriber()
    with Recorder(database, beamline=beamline) as recorder:
        result = run_workflow(
            recipe,
            {**recipe.example_inputs, "sessionId": "mx2000-1", "sample_lims_id": 4711},
            RunContext(beamline=beamline, recorder=recorder),
            subscribers=[events],
        )
        assert recorder.stats.dropped == 0

    (run,) = rows(database, Run)
    assert run["run_id"] == result.run_id
    assert (run["recipe"], run["status"]) == (recipe.name, result.status)
    assert run["recipe_sha256"] and len(run["recipe_sha256"]) == 64
    assert (run["beamline"], run["session"], run["sample"]) == ("SIM-MX1", "mx2000-1", "4711")
    assert run["node_executions"] == result.node_executions
    assert run["end_beamline_s"] == pytest.approx(beamline.clock.now())

    ended = events.of_type(NodeEnded)
    assert [(n["node_id"], n["execution"], n["status"]) for n in rows(database, NodeExecution)] == [
        (e.node_id, e.execution, e.status) for e in ended
    ]
    decisions = events.of_type(ConditionEvaluated)
    assert [(d["node_id"], d["target"], bool(d["taken"])) for d in rows(database, Decision)] == [
        (e.source, e.target, e.taken) for e in decisions
    ]
    metadata = events.of_type(MetadataReported)
    assert metadata, f"{recipe.name}: its tasks report no metadata (BesTask.report)"
    assert [
        (m["node_id"], m["execution"], m["key"], m["value"], m["unit"])
        for m in rows(database, MetadataItem)
    ] == [(e.node_id, e.execution, e.key, e.value, e.unit) for e in metadata]
    recorded_actions = rows(database, DeviceActionRow)
    assert [(a["device"], a["action"], a["beamline_s"]) for a in recorded_actions] == [
        (a.device, a.action, pytest.approx(a.duration_s)) for a in actions
    ]
    assert all(a["run_id"] == run["id"] and a["node_id"] for a in recorded_actions)

    (summary,) = rows(database, RunSummary)
    workflow_ended = events.of_type(WorkflowEnded)[0]
    assert summary["status"] == workflow_ended.status
    assert summary["n_nodes"] == len(ended)
    assert summary["n_decisions"] == len(decisions)
    assert summary["n_metadata"] == len(metadata)
    assert summary["n_device_actions"] == len(actions)
    assert summary["beamline_s"] == pytest.approx(beamline.clock.now())

    timeline = load_timeline(database, result.run_id[:8])
    assert timeline.count("node start") == timeline.count("node end") == len(ended)
    assert timeline.count("decision") == len(decisions)
    assert timeline.count("metadata") == len(metadata)
    assert timeline.count("device") == len(actions)
    walls = [entry.wall_s for entry in timeline.entries]
    assert walls == sorted(walls)
    assert main(["runs", "show", str(run["id"]), "--url", database.display_url]) == 0
    shown = capsys.readouterr().out
    for event in ended:
        assert f"{event.node_id}#{event.execution}" in shown


def test_beamline_check_reports_its_verdict_as_metadata(database: Database) -> None:
    beamline = make_sim_beamline()
    with Recorder(database, beamline=beamline) as recorder:
        context = RunContext(beamline=beamline, recorder=recorder)
        run_workflow("beamline_check", {"step_deg": 90.0}, context)
        run_workflow("beamline_check", {"step_deg": -1.0}, context.fresh())

    good, bad = rows(database, RunSummary)
    assert (good["success"], good["outcome"], good["reason"]) == (True, "passed", None)
    assert (bad["status"], bad["success"], bad["outcome"]) == ("finished", False, "fault")
    assert "step_deg must be > #" in bad["reason"]


def test_a_failed_run_keeps_the_error_and_traceback(database: Database) -> None:
    from bes.engine.registry import DEFAULT_REGISTRY
    from tests.engine.builders import TEST_TASKS, graph, node

    with Recorder(database, beamline="TEST-BL") as recorder:
        result = run_workflow(
            graph("fails", [node("fail", "Fail", n=3)], []),
            context=RunContext(recorder=recorder),
            registry=DEFAULT_REGISTRY.with_packages(TEST_TASKS),
        )
    assert result.status == "failed"
    (run,) = rows(database, Run)
    (node_row,) = rows(database, NodeExecution)
    (summary,) = rows(database, RunSummary)
    assert (run["error_node"], run["error_kind"]) == ("fail", "exception")
    assert "Traceback" in run["error_traceback"]
    assert node_row["status"] == "failed" and node_row["error_message"] == run["error_message"]
    assert node_row["beamline_s"] is None and node_row["wall_s"] >= 0
    assert summary["beamline"] == "TEST-BL" and summary["success"] is False
    assert summary["reason"].startswith("exception: ")
