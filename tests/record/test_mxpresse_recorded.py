"""A whole MXPressE run on the simulated beamline, recorded: every node execution, decision,
metadata item and device action of the run is a row of the workflow database, the run's
summary holds what the run found, and ``bes runs show`` replays it. Also a sample without
diffraction and one whose detector fails, with their outcome and reason."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bes.cli import main
from bes.engine import (
    ConditionEvaluated,
    EngineEvent,
    ListSubscriber,
    MetadataReported,
    NodeEnded,
    NodeStarted,
    RunContext,
    WorkflowResult,
    run_workflow,
)
from bes.hal import DeviceAction
from bes.record.database import Database, open_database
from bes.record.recorder import Recorder
from bes.record.schema import (
    Decision,
    DeviceActionRow,
    MetadataItem,
    NodeExecution,
    Run,
    RunSummary,
)
from bes.record.summary import normalise_reason
from tests.conftest import make_sim_beamline

LOOP = {"centre_mm": [0.0, 0.08, -0.03]}
CRYSTAL = {"position_mm": [0.02, 0.09, -0.02], "size_um": [50, 40, 30]}
SHEET = {
    "pins": [
        {"location": "1:1", "loop": LOOP, "crystals": [CRYSTAL]},
        {"location": "1:2", "loop": LOOP},  # an empty loop
        {"location": "1:3", "loop": LOOP, "crystals": [CRYSTAL], "faults": ["detector_error"]},
    ]
}
FAST = {"oscillation_deg": 1.0}
"""180 frames instead of the strategy's 1800: the same path through the recipe, faster."""


@dataclass
class Recorded:
    """One recorded mxpresse run: what the engine said, what the devices did, the run's row."""

    result: WorkflowResult
    events: list[EngineEvent]
    actions: list[tuple[DeviceAction, tuple[str, int] | None]]
    """Each device action with the node running when it happened."""
    run: dict[str, Any]
    database: Database

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def rows(self, model: Any) -> list[dict[str, Any]]:
        """The run's rows of ``model``'s table, in the order they were written."""
        table = model.__table__
        statement = (
            select(table).where(table.c.run_id == self.run["id"]).order_by(*table.primary_key)
        )
        with self.database.engine.connect() as connection:
            return [dict(row) for row in connection.execute(statement).mappings()]

    def reported(self, key: str) -> Any:
        """The last value the run reported for ``key``."""
        return [m.value for m in self.of_type(MetadataReported) if m.key == key][-1]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One workflow database for the three runs of this module (rows are told apart by run)."""
    path = tmp_path_factory.mktemp("record") / "workflows.db"
    db = open_database(f"sqlite:///{path}", upgrade=True)
    yield db
    db.dispose()


def record(database: Database, sample: str, data_root: Path) -> Recorded:
    beamline = make_sim_beamline(world={"sheet": SHEET})
    events = ListSubscriber()
    actions: list[tuple[DeviceAction, tuple[str, int] | None]] = []

    def running_node() -> tuple[str, int] | None:
        started = [e for e in events.events if isinstance(e, NodeStarted)]
        return (started[-1].node_id, started[-1].execution) if started else None

    beamline.clock.subscribe(lambda action: actions.append((action, running_node())))
    with Recorder(database, beamline=beamline, wait_at_end=True) as recorder:
        result = run_workflow(
            "mxpresse",
            {"sample": sample, "data_root": str(data_root), **FAST},
            RunContext(beamline=beamline, recorder=recorder),
            subscribers=[events],
        )
        with database.engine.connect() as connection:  # wait_at_end: committed already
            run = connection.execute(select(Run.__table__).where(Run.run_id == result.run_id))
            row = run.mappings().one()
        assert row["status"] == result.status
        stats = recorder.stats
    assert (stats.dropped, stats.last_error) == (0, None)
    return Recorded(result, list(events.events), actions, dict(row), database)


@pytest.fixture(scope="module")
def collected(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record(database, "1:1", tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def no_diffraction(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record(database, "1:2", tmp_path_factory.mktemp("empty"))


@pytest.fixture(scope="module")
def failed(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record(database, "1:3", tmp_path_factory.mktemp("fault"))


def assert_rows_match_events(recorded: Recorded) -> None:
    """Nodes, decisions, metadata and device actions: one row each, as the engine said."""
    started = recorded.of_type(NodeStarted)
    ended = recorded.of_type(NodeEnded)
    nodes = recorded.rows(NodeExecution)
    assert [(n["node_id"], n["execution"]) for n in nodes] == [
        (e.node_id, e.execution) for e in started
    ]
    assert [(n["node_id"], n["execution"], n["status"], n["handled"]) for n in nodes] == [
        (e.node_id, e.execution, e.status, e.handled) for e in ended
    ]
    assert [n["task_identifier"] for n in nodes] == [e.task_identifier for e in started]

    decisions = recorded.rows(Decision)
    expected = []
    last_execution: dict[str, int] = {}
    for event in recorded.events:  # a decision belongs to its source's last execution
        if isinstance(event, NodeEnded):
            last_execution[event.node_id] = event.execution
        elif isinstance(event, ConditionEvaluated):
            expected.append((event.source, last_execution[event.source], event.target, event.taken))
    assert [(d["node_id"], d["execution"], d["target"], d["taken"]) for d in decisions] == expected
    assert expected, "mxpresse has conditional links: some decisions must be recorded"

    metadata = recorded.of_type(MetadataReported)
    assert [
        (m["node_id"], m["execution"], m["key"], m["unit"], m["value"])
        for m in recorded.rows(MetadataItem)
    ] == [(e.node_id, e.execution, e.key, e.unit, e.value) for e in metadata]

    devices = recorded.rows(DeviceActionRow)
    assert [
        (a["device"], a["action"], a["beamline_s"], (a["node_id"], a["execution"])) for a in devices
    ] == [
        (action.device, action.action, pytest.approx(action.duration_s), node)
        for action, node in recorded.actions
    ]
    assert {a["beamline"] for a in devices} == {"SIM-MX1"}

    (summary,) = recorded.rows(RunSummary)
    assert (summary["n_nodes"], summary["n_decisions"], summary["n_metadata"]) == (
        len(ended),
        len(decisions),
        len(metadata),
    )
    assert summary["n_device_actions"] == len(devices) > 0


# -- a good crystal: collected -------------------------------------------------------------------


def test_the_collected_run_has_a_row_for_every_node_decision_metadata_item_and_device_action(
    collected: Recorded,
) -> None:
    assert collected.result.status == "finished"
    assert collected.result.outputs["outcome"] == "collected"
    run = collected.run
    assert (run["recipe"], run["status"], run["sample"], run["beamline"]) == (
        "mxpresse",
        "finished",
        "1:1",
        "SIM-MX1",
    )
    assert run["node_executions"] == collected.result.node_executions
    assert set(collected.result.node_executions) >= {
        "mesh_first",
        "mesh_second",
        "centre_crystal",
        "characterise",
        "collect",
        "unmount",
    }
    assert_rows_match_events(collected)


def test_the_decisions_of_the_collected_run_say_why(collected: Recorded) -> None:
    decisions = {(d["node_id"], d["target"]): d for d in collected.rows(Decision)}
    signal = decisions[("mesh_first", "mesh_second")]
    assert signal["taken"] and signal["condition"] == 'verdict == "signal"'
    assert signal["value"] == {"verdict": "signal"}
    assert signal["reason"].startswith("first mesh best score")
    assert not decisions[("mesh_first", "unmount")]["taken"]
    found = decisions[("centre_crystal", "move_to_crystal")]
    assert found["taken"] and "region(s); best" in found["reason"]
    assert decisions[("characterise", "collect")]["taken"]


def test_the_collected_run_summary_holds_what_the_run_found(collected: Recorded) -> None:
    (summary,) = collected.rows(RunSummary)
    found = collected.result.outputs["summary"]
    mesh_scores = [
        e.outputs["max_score"]
        for e in collected.of_type(NodeEnded)
        if e.node_id in ("mesh_first", "mesh_second")
    ]
    assert (summary["status"], summary["success"], summary["outcome"], summary["reason"]) == (
        "finished",
        True,
        "collected",
        None,
    )
    assert summary["crystal_size_um"] == max(found["crystal"]["size_um"]) > 0
    assert summary["max_score"] == max(mesh_scores) > 2.0
    assert summary["resolution_a"] == collected.reported("resolution_a")
    assert summary["resolution_a"] == found["characterisation"]["resolution_a"]
    assert summary["dose_mgy"] == found["dose_mgy"] > 0
    assert summary["mosaicity_deg"] == found["characterisation"]["mosaicity_deg"]
    assert (summary["sample"], summary["recipe"]) == ("1:1", "mxpresse")
    frames = collected.reported("frames_collected")
    assert frames == found["collections"][0]["n_frames"] == 180


def test_bes_runs_show_replays_the_collected_run(
    collected: Recorded, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line per timeline entry
    url = collected.database.display_url
    assert main(["runs", "show", collected.result.run_id[:8], "--url", url]) == 0
    shown = capsys.readouterr().out

    assert f"run {collected.run['id']} {collected.result.run_id}: mxpresse finished" in shown
    assert "outcome  collected (success: True)" in shown
    lines = shown.splitlines()
    for event in collected.of_type(NodeEnded):
        node = f"{event.node_id}#{event.execution}"
        assert any(node in line and "node end" in line for line in lines), node
    for decision in collected.rows(Decision):
        verdict = "taken" if decision["taken"] else "not taken"
        text = f"-> {decision['target']} {verdict}: {decision['condition']}"
        node = f"{decision['node_id']}#{decision['execution']}"
        assert any(node in line and text in line for line in lines), text
    assert "crystal_size_um = " in shown and "mesh_first#1" in shown


# -- an empty loop: no diffraction ---------------------------------------------------------------


def test_an_empty_loop_is_recorded_as_no_diffraction_after_the_enlarged_mesh(
    no_diffraction: Recorded,
) -> None:
    result = no_diffraction.result
    assert result.status == "finished" and result.outputs["outcome"] == "no_diffraction"
    assert result.node_executions["mesh_first"] == 2  # the mesh enlarged once, then no signal
    assert_rows_match_events(no_diffraction)

    taken = [
        (d["node_id"], d["execution"], d["target"])
        for d in no_diffraction.rows(Decision)
        if d["taken"]
    ]
    assert ("mesh_first", 1, "enlarge_mesh") in taken and ("mesh_first", 2, "unmount") in taken
    (summary,) = no_diffraction.rows(RunSummary)
    assert (summary["status"], summary["success"], summary["outcome"]) == (
        "finished",
        False,
        "no_diffraction",
    )
    assert summary["reason"] == normalise_reason(result.outputs["summary"]["reason"])
    assert summary["reason"].startswith("no diffraction: best mesh score #")
    assert summary["crystal_size_um"] is None and summary["resolution_a"] is None
    assert summary["max_score"] == no_diffraction.reported("max_score") <= 2.0


# -- a detector fault: failed --------------------------------------------------------------------


def test_a_detector_fault_is_recorded_as_a_failed_run_with_its_reason(failed: Recorded) -> None:
    result = failed.result
    assert result.status == "failed" and result.error is not None
    assert_rows_match_events(failed)

    nodes = {(n["node_id"], n["execution"]): n for n in failed.rows(NodeExecution)}
    mesh = nodes[("mesh_first", 1)]
    assert (mesh["status"], mesh["handled"]) == ("failed", True)  # went to the fault handler
    fault = nodes[("fault", 1)]
    assert (fault["status"], fault["handled"]) == ("failed", False)
    assert fault["error_message"] == result.error.message

    run = failed.run
    assert (run["status"], run["error_node"], run["error_kind"]) == ("failed", "fault", "exception")
    assert run["error_message"] == result.error.message
    assert "DetectorError: detector (pin 1:3): detector error at frame" in run["error_message"]
    assert run["error_message"].endswith("; sample unmounted")
    assert "Traceback" in run["error_traceback"]
    (summary,) = failed.rows(RunSummary)
    assert (summary["status"], summary["success"], summary["outcome"], summary["error_node"]) == (
        "failed",
        False,
        "failed",
        "fault",
    )
    assert summary["reason"] == normalise_reason(f"exception: {result.error.message}")
    assert "DetectorError: detector (pin #:#): detector error at frame # of #" in summary["reason"]
    assert failed.reported("unmounted_after_fault") is True
    assert [a.action for a, _ in failed.actions if a.device == "sample_changer"][-1] == "unload"
