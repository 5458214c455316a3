"""Engine events of a run become the sample's phases and the queue's pause points."""

from __future__ import annotations

from typing import Any

from bes.engine.events import NodeEnded, NodeStarted, WorkflowStarted
from bes.queue import QueueEntry, RunControl, SampleState
from bes.queue.phases import PhaseReporter

ENTRY = QueueEntry(
    id=1,
    position=1,
    location="1:1",
    sample_lims_id=None,
    recipe="mxpresse",
    parameters={},
    state=SampleState.MOUNTING,
    reason=None,
    outcome=None,
    run_id=None,
    attempts=1,
    created_time=0.0,
    updated_time=0.0,
    started_time=0.0,
    ended_time=None,
)
TASKS = {
    "prepare": "bes.tasks.prepare.PrepareRun",
    "mount": "bes.tasks.sample.MountSample",
    "mesh": "bes.tasks.mesh.ScanMesh",
    "unmount": "bes.tasks.sample.UnmountSample",
}


def _node(kind: type[Any], node: str, **fields: Any) -> Any:
    return kind(
        run_id="run-7",
        workflow="mxpresse",
        time=0.0,
        node_id=node,
        task_identifier=TASKS[node],
        execution=1,
        **fields,
    )


def test_nodes_map_to_phases_and_finished_nodes_to_pause_points() -> None:
    seen: list[Any] = []
    control = RunControl(ENTRY, lambda _, state: seen.append(state), lambda _: seen.append("pause"))
    reporter = PhaseReporter(control)
    reporter.on_event(WorkflowStarted(run_id="run-7", workflow="mxpresse", time=0.0))
    for node in ("prepare", "mount", "mesh", "unmount"):
        reporter.on_event(_node(NodeStarted, node))
        status = "failed" if node == "unmount" else "finished"
        reporter.on_event(_node(NodeEnded, node, status=status))
    assert control.run_id == "run-7"
    assert seen == [
        "pause",  # after prepare
        SampleState.MOUNTED,
        "pause",
        SampleState.RUNNING,
        "pause",
        SampleState.UNMOUNTING,  # a failed node is no pause point
    ]


def test_pause_points_can_be_left_out() -> None:
    seen: list[Any] = []
    control = RunControl(ENTRY, lambda _, state: seen.append(state), lambda _: seen.append("pause"))
    PhaseReporter(control, pause_points=False).on_event(_node(NodeEnded, "mesh", status="finished"))
    assert seen == []
