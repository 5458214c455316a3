"""The workflow database locked (or unreachable) for longer than the writer's retry delays:
the recorder waits and retries, rows queue behind the batch, none is dropped; only a writer
closed while the database is still locked gives its rows up, after its close timeout, and
counts them."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bes.record.database import open_database
from bes.record.recorder import Recorder
from tests.reliability.accounting import Snapshot, leftovers


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy timeout of 0.1 s and retries after 0.05, 0.1 and 0.2 s: a whole retry budget
    of well under a second, which the locks below outlast."""
    monkeypatch.setattr("bes.record.database.SQLITE_BUSY_TIMEOUT_S", 0.1)
    monkeypatch.setattr("bes.record.writer.RETRY_DELAYS_S", (0.05, 0.1, 0.2))


def queue_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM queue_events").fetchone()[0])


def test_a_lock_longer_than_the_retries_loses_no_row(tmp_path: Path) -> None:
    before = Snapshot()
    path = tmp_path / "workflows.db"
    recorder = Recorder(open_database(f"sqlite:///{path}", upgrade=True), beamline="SIM")
    lock = sqlite3.connect(path, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        for i in range(30):  # the writer takes them in several batches, each waiting
            recorder.queue_event("added", item_id=str(i))
            assert recorder.writer.flush(0.05) is False  # not committed while locked
        time.sleep(1.5)
        lock.execute("COMMIT")
        assert recorder.flush(30.0)
        assert queue_rows(path) == 30
        assert recorder.stats.dropped == 0
        assert recorder.stats.retries > len((0.05, 0.1, 0.2))  # past the old give-up point
    finally:
        lock.close()
        recorder.close()
    assert leftovers(before) == []


def test_a_writer_closed_while_the_database_stays_locked_gives_up_and_counts(
    tmp_path: Path,
) -> None:
    before = Snapshot()
    path = tmp_path / "workflows.db"
    recorder = Recorder(open_database(f"sqlite:///{path}", upgrade=True), beamline="SIM")
    lock = sqlite3.connect(path, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        for i in range(5):
            recorder.queue_event("added", item_id=str(i))
        recorder.writer.flush(0.3)
        start = time.monotonic()
        recorder.writer.close(timeout=0.5)
        assert time.monotonic() - start < 5.0  # bounded: gave up after its timeout
        assert recorder.stats.dropped == 5
    finally:
        lock.execute("COMMIT")
        lock.close()
        recorder.close()
    assert queue_rows(path) == 0
    assert not [t for t in threading.enumerate() if t.name == "bes-record-writer"]
    assert leftovers(before) == []
