"""A process killed (SIGKILL) while it records leaves a readable, consistent SQLite database
holding every run it had committed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bes.record.database import Database


def test_a_killed_writer_leaves_a_readable_database_with_its_committed_runs(
    database: Database,
) -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.record.workers", "crash", database.display_url],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    committed = -1
    deadline = time.monotonic() + 60
    try:
        assert process.stdout is not None
        while committed < 5 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            committed = int(line.split()[1])
        time.sleep(0.05)  # into the writes of the next run
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    assert process.returncode == -signal.SIGKILL
    assert committed >= 5, "the writer did not commit runs within 60 s"

    connection = sqlite3.connect(database.path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        runs = connection.execute(
            "SELECT r.run_id, r.status, count(n.id) FROM runs r "
            "LEFT JOIN node_executions n ON n.run_id = r.id GROUP BY r.id ORDER BY r.id"
        ).fetchall()
        summaries = connection.execute("SELECT count(*) FROM run_summary").fetchone()[0]
    finally:
        connection.close()
    done = [(f"crash-{i}", "finished", 200) for i in range(committed + 1)]
    assert runs[: committed + 1] == done
    for run_id, status, nodes in runs[committed + 1 :]:  # the run being written when killed
        assert status in ("running", "finished") and nodes <= 200, (run_id, status, nodes)
    assert summaries >= committed + 1
