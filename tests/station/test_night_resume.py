"""``bes night`` killed with SIGKILL in the middle of a sample, then ``bes night --resume``:
every sample ends in a final state exactly once, the one that was under way is recorded
INTERRUPTED and run again (never silently), none is lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.station.test_night import NIGHT_PARAMETERS
from tests.workflows.helpers import GOOD_PIN

SAMPLES = 5


def bes(*args: str, data: Path, **popen: object) -> subprocess.Popen[str]:
    settings = [f"--set={name}={value}" for name, value in NIGHT_PARAMETERS.items()]
    command = [sys.executable, "-m", "bes", "night", *args, "--data-dir", str(data)]
    command += ["--sheet", str(data.parent / "world.json"), "--no-lims", "--quiet", "--no-report"]
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [*command, *settings],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def states(data: Path) -> list[tuple[int, str, int]]:
    """(id, state, attempts) of every entry, read while the night writes."""
    path = data / "queue.sqlite"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT id, state, attempts FROM entries ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the schema is being created
        return []


def test_kill_9_mid_sample_then_resume_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path,
) -> None:
    pins = [{**GOOD_PIN, "location": f"1:{i}"} for i in range(1, SAMPLES + 1)]
    (tmp_path / "world.json").write_text(json.dumps({"fill": "missing", "pins": pins}))
    data = tmp_path / "data"

    night = bes("--demo", str(SAMPLES), data=data)
    deadline = time.monotonic() + 120
    killed_in: str | None = None
    while time.monotonic() < deadline and night.poll() is None:
        now = states(data)
        done = sum(1 for _, state, _ in now if state == "DONE")
        running = [state for _, state, _ in now if state in ("RUNNING", "MOUNTED")]
        if done >= 1 and running:
            os.kill(night.pid, signal.SIGKILL)
            killed_in = running[0]
            break
        time.sleep(0.02)
    night.wait(30)
    assert killed_in is not None, f"never caught a sample under way: {night.communicate()}"
    assert night.returncode == -signal.SIGKILL

    again = bes("--demo", "2", data=data)  # a new night while one is unfinished: refused
    _, err = again.communicate(timeout=120)
    assert again.returncode == 2
    assert "--resume" in err

    resumed = bes("--resume", data=data)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err

    final = states(data)
    assert len(final) == SAMPLES
    assert {state for _, state, _ in final} == {"DONE"}
    with sqlite3.connect(data / "queue.sqlite") as db:
        history = db.execute("SELECT entry_id, to_state FROM entry_history ORDER BY id").fetchall()
    interrupted = [e for e, state in history if state == "INTERRUPTED"]
    assert len(interrupted) == 1  # the sample under way at the kill, recorded so
    for entry_id, _, attempts in final:
        done = [s for e, s in history if e == entry_id and s == "DONE"]
        assert len(done) == 1
        assert attempts == (2 if entry_id in interrupted else 1)
    with sqlite3.connect(data / "workflows.db") as db:
        finals = db.execute(
            "SELECT sample, COUNT(*) FROM sample_transitions"
            " WHERE to_state = 'DONE' GROUP BY sample"
        ).fetchall()
        interrupted_rows = db.execute(
            "SELECT COUNT(*) FROM sample_transitions WHERE to_state = 'INTERRUPTED'"
        ).fetchone()[0]
    assert sorted(finals) == [(f"1:{i}", 1) for i in range(1, SAMPLES + 1)]
    assert interrupted_rows == 1
