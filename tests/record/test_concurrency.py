"""Concurrent writers lose nothing: four threads on one SQLite file, one recorder shared by
four engine runs, and on PostgreSQL four threads and two processes."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from bes.engine import RunContext, run_workflow
from bes.record.database import Database, open_database
from bes.record.mining import Miner
from bes.record.recorder import Recorder
from bes.record.schema import Decision, MetadataItem, NodeExecution, Run, RunSummary, StepStats
from tests.conftest import make_sim_beamline
from tests.record.workers import NODES, write_runs

RUNS = 25


def counts(database: Database) -> dict[str, Any]:
    with database.engine.connect() as connection:

        def count(model: Any) -> int:
            return int(connection.execute(select(func.count()).select_from(model)).scalar() or 0)

        statuses = {
            status: n
            for status, n in connection.execute(
                select(Run.status, func.count()).group_by(Run.status)
            )
        }
        step_n = connection.execute(
            select(func.sum(StepStats.n)).where(func.length(StepStats.period) == 7)
        ).scalar()
        return {
            "runs": count(Run),
            "statuses": statuses,
            "nodes": count(NodeExecution),
            "decisions": count(Decision),
            "metadata": count(MetadataItem),
            "summaries": count(RunSummary),
            "step_stats_n": int(step_n or 0),
        }


def expected(writers: int) -> dict[str, Any]:
    runs = writers * RUNS
    return {
        "runs": runs,
        "statuses": {"finished": runs},
        "nodes": runs * NODES,
        "decisions": runs * NODES,
        "metadata": runs * NODES,
        "summaries": runs,
        "step_stats_n": runs * NODES,
    }


def write_in_threads(url: str, writers: int) -> list[int]:
    with ThreadPoolExecutor(writers) as pool:
        return list(pool.map(lambda w: write_runs(url, f"t{w}", RUNS), range(writers)))


def test_four_threads_with_their_own_recorders_on_one_sqlite_file(database: Database) -> None:
    dropped = write_in_threads(database.display_url, 4)

    assert dropped == [0, 0, 0, 0]
    assert counts(database) == expected(4)
    per_step = Miner(database).success_per_step()
    assert per_step["executions"].tolist() == [4 * RUNS] * NODES


def test_one_recorder_shared_by_four_engine_runs(database: Database) -> None:
    beamlines = [make_sim_beamline() for _ in range(4)]
    barrier = threading.Barrier(4)
    with Recorder(database) as recorder:

        def run(index: int) -> str:
            barrier.wait()
            result = run_workflow(
                "beamline_check",
                {"step_deg": 30.0, "sample_id": f"pin-{index}"},
                RunContext(beamline=beamlines[index], recorder=recorder),
            )
            return result.status

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(run, range(4)))

    assert statuses == ["finished"] * 4
    with database.engine.connect() as connection:
        per_run = connection.execute(
            select(Run.sample, func.count(NodeExecution.id))
            .join(NodeExecution, NodeExecution.run_id == Run.id)
            .group_by(Run.sample)
            .order_by(Run.sample)
        ).all()
    assert per_run == [(f"pin-{i}", 14) for i in range(4)]  # read, 12 rotations, summarise


@pytest.mark.postgres
def test_postgresql_four_threads_and_two_processes(pg_url: str) -> None:
    database = open_database(pg_url, upgrade=True)
    assert write_in_threads(pg_url, 4) == [0, 0, 0, 0]
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=write_runs, args=(pg_url, f"p{i}", RUNS)) for i in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)

    assert [p.exitcode for p in processes] == [0, 0]
    assert counts(database) == expected(6)
    database.dispose()
