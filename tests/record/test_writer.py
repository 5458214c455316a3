"""The batch writer: batches, flushes, a full buffer never blocks the engine for long, a bad
row costs only itself, and the database must be at the code's schema."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from bes.record.database import (
    Database,
    DatabaseError,
    SchemaOutOfDate,
    open_database,
    parse_url,
)
from bes.record.recorder import Recorder
from bes.record.schema import QueueEvent, Run, SampleTransition
from bes.record.synthetic import run_events
from bes.record.writer import BatchWriter


def queue_row(index: int, action: Any = "added") -> dict[str, Any]:
    return {
        "time": 1.0e9 + index,
        "beamline": "BL",
        "action": action,
        "item_id": f"item-{index}",
        "sample": None,
        "recipe": None,
        "run_id": None,
        "position": index,
        "detail": None,
    }


def queue_count(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(QueueEvent)).scalar() or 0)


def test_rows_are_written_in_batches_and_on_flush(database: Database) -> None:
    writer = BatchWriter(database.writer_engine(), batch_size=100, linger_s=30.0)
    try:
        for index in range(250):
            writer.put("queue_events", queue_row(index))
        assert writer.flush(10.0)
        assert queue_count(database) == 250
        assert writer.stats.batches >= 3 and writer.stats.written == 250
    finally:
        writer.close()


def test_a_lone_row_is_written_after_the_linger_time(database: Database) -> None:
    writer = BatchWriter(database.writer_engine(), batch_size=100, linger_s=0.05)
    try:
        writer.put("queue_events", queue_row(1))
        deadline = time.monotonic() + 5
        while queue_count(database) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert queue_count(database) == 1
    finally:
        writer.close()


def test_a_bad_row_costs_only_itself(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    writer = BatchWriter(database.writer_engine(), batch_size=100, linger_s=30.0)
    try:
        with caplog.at_level(logging.WARNING, "bes.record.writer"):
            writer.put("queue_events", queue_row(1))
            writer.put("queue_events", queue_row(2, action=None))  # NOT NULL violated
            writer.put("node_executions", {"run_id": "never-started"})
            writer.put("queue_events", queue_row(3))
            assert writer.flush(10.0)
        assert queue_count(database) == 2
        assert writer.stats.dropped == 2
        assert "one by one" in caplog.text and "unknown run 'never-started'" in caplog.text
    finally:
        writer.close()


def test_a_full_buffer_drops_after_a_timeout_instead_of_hanging(database: Database) -> None:
    blocker = sqlite3.connect(database.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer waits for the database lock
    writer = BatchWriter(
        database.writer_engine(), batch_size=1, max_pending=2, linger_s=0.0, put_timeout_s=0.05
    )
    try:
        start = time.monotonic()
        for index in range(6):
            writer.put("queue_events", queue_row(index))
        assert time.monotonic() - start < 2.0
        assert writer.stats.dropped >= 1
        blocker.execute("COMMIT")
        assert writer.flush(35.0)
        assert queue_count(database) == 6 - writer.stats.dropped
    finally:
        blocker.close()
        writer.close()


def test_flush_and_close_from_several_threads(database: Database) -> None:
    writer = BatchWriter(database.writer_engine(), batch_size=7, linger_s=0.01)

    def produce(offset: int) -> None:
        for index in range(100):
            writer.put("queue_events", queue_row(offset + index))
            if index % 25 == 0:
                writer.flush(10.0)

    threads = [threading.Thread(target=produce, args=(1000 * k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert queue_count(database) == 400
    with pytest.raises(RuntimeError, match="writer is closed"):
        writer.put("queue_events", queue_row(0))


def test_sample_transitions_and_queue_history_name_their_run(database: Database) -> None:
    with Recorder(database, beamline="BL-Q") as recorder:
        recorder.queue_event("added", item_id="q1", sample="1:3", recipe="mxpresse", position=0)
        recorder.label_run("run-q1", sample="1:3", session="mx1-2", request_id="req-9")
        recorder.sample_transition("1:3", "MOUNTING", from_state="QUEUED", run_id="run-q1")
        for event in run_events("run-q1", nodes=2):
            recorder.on_event(event)
        recorder.sample_transition("1:3", "COLLECTED", from_state="MOUNTING", run_id="run-q1")
        recorder.queue_event("finished", item_id="q1", run_id="run-q1", detail={"ok": True})
        recorder.metadata("run-q1", "comment", "written after the end", node_id=None)
        with pytest.raises(ValueError, match="unknown run label"):
            recorder.label_run("x", colour="red")
    with database.engine.connect() as connection:
        transitions = connection.execute(
            select(SampleTransition.from_state, SampleTransition.to_state, SampleTransition.run_id)
        ).all()
        queue = connection.execute(select(QueueEvent.action, QueueEvent.run_id)).all()
        run = connection.execute(select(Run.__table__)).mappings().one()

    # the first transition names the run before its start: the same batch writes both
    assert [tuple(t) for t in transitions] == [
        ("QUEUED", "MOUNTING", 1),
        ("MOUNTING", "COLLECTED", 1),
    ]
    assert [tuple(q) for q in queue] == [("added", None), ("finished", 1)]
    assert (run["sample"], run["session"], run["request_id"]) == ("1:3", "mx1-2", "req-9")


def test_a_database_behind_the_code_is_refused_with_what_to_do(sqlite_url: str) -> None:
    old = Database(parse_url(sqlite_url))
    old.upgrade("0001")
    with pytest.raises(SchemaOutOfDate, match=r"revision 0001; .* run `bes db upgrade --url"):
        Recorder(sqlite_url)
    with pytest.raises(DatabaseError, match="in-memory SQLite"):
        open_database("sqlite://")
    with pytest.raises(DatabaseError, match="unsupported database 'mysql'"):
        open_database("mysql://localhost/x")
