"""A short soak: a night of runs recorded one after the other (``--run-slow``)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bes.engine import RunContext, run_workflow
from bes.record.database import Database
from bes.record.recorder import Recorder
from bes.record.schema import DeviceActionRow, NodeExecution, RunSummary
from tests.conftest import make_sim_beamline


@pytest.mark.slow
def test_two_hundred_recorded_runs_lose_nothing(database: Database) -> None:
    beamline = make_sim_beamline()
    with Recorder(database, beamline=beamline) as recorder:
        context = RunContext(beamline=beamline, recorder=recorder)
        for index in range(200):
            result = run_workflow(
                "beamline_check", {"step_deg": 90.0, "sample_id": index}, context.fresh()
            )
            assert result.ok
        assert recorder.flush()
        assert recorder.stats.dropped == 0
        assert not recorder.writer._ids, "run ids of ended runs are kept"
    with database.engine.connect() as connection:

        def count(model: object) -> int:
            return int(connection.execute(select(func.count()).select_from(model)).scalar() or 0)

        assert count(RunSummary) == 200
        assert count(NodeExecution) == 200 * 6  # read, 4 rotations, summarise
        assert count(DeviceActionRow) == 200 * 8  # a move and a snapshot per rotation
