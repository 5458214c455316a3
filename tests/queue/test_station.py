"""The queue on the embedded station: real recipes on the simulated beamline, recorded in the
workflow database, with the engine's events turned into sample phases."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from bes.queue import NewEntry, QueueEntry, QueueManager, QueueStore, RunControl, SampleState
from bes.queue.phases import PhaseReporter
from bes.station import open_station

SHEET = {
    "pins": [
        {
            "location": "1:1",
            "loop": {"centre_mm": [0.0, 0.08, -0.03]},
            "crystals": [{"position_mm": [0.02, 0.09, -0.02], "size_um": [50, 40, 30]}],
        },
    ]
}
"""1:1 holds a good crystal."""
SMALL = {"mesh_rows": 5, "mesh_cols": 5, "oscillation_deg": 0.5, "total_range_deg": 5.0}
"""Small meshes and a 5 deg collection: the run takes seconds, not minutes."""


def test_a_pin_through_mxpresse_is_recorded_phase_by_phase(tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.json"
    sheet.write_text(json.dumps(SHEET))
    data = tmp_path / "data"
    with open_station(data_dir=data, no_lims=True, clock="instant", sample_sheet=sheet) as station:

        def runner(entry: QueueEntry, control: RunControl) -> Any:
            inputs = {**entry.inputs(), "data_root": str(data)}
            return station.run(
                entry.recipe,
                inputs,
                subscribers=[PhaseReporter(control)],
                labels={"sample": entry.sample},
                handle_signals=False,
            )

        with QueueStore.in_dir(data) as store:
            manager = QueueManager(
                store, runner, recorder=station.recorder, beamline=station.beamline
            )
            manager.add(NewEntry("1:1", "mxpresse", SMALL))
            manager.start()
            assert manager.wait_idle(60)
            entries = store.list()
            histories = [[c.to_state for c in store.history(e.id)] for e in entries]
        station.recorder.flush()

    assert [(e.state, e.outcome) for e in entries] == [(SampleState.DONE, "collected")]
    assert histories[0] == [
        SampleState.QUEUED,
        SampleState.MOUNTING,
        SampleState.MOUNTED,
        SampleState.RUNNING,
        SampleState.UNMOUNTING,
        SampleState.DONE,
    ]
    with sqlite3.connect(data / "workflows.db") as db:
        rows = db.execute(
            "SELECT t.sample, t.to_state, r.run_id FROM sample_transitions t"
            " LEFT JOIN runs r ON r.id = t.run_id ORDER BY t.id"
        ).fetchall()
        actions = [a for (a,) in db.execute("SELECT action FROM queue_events ORDER BY id")]
    assert [(s, state) for s, state, _ in rows if s == "1:1"] == [
        ("1:1", state.name) for state in histories[0][1:]
    ]
    assert {run for s, state, run in rows if s == "1:1" and state != "MOUNTING"} == {
        entries[0].run_id
    }
    assert actions == ["added", "running", "idle"]
