"""Crash recovery: ``kill -9`` of ``bes night`` and of ``bes serve`` (its queue started over
the REST API) at a random point of the night (a random sample, in a random phase: mounting,
mounted, running, unmounting; some way into the run for running), then a restart, in N runs
(default 20, the two commands taking turns).

- ``bes night --demo S``, killed; then ``bes night --resume`` until it exits 0.
- ``bes serve`` with S entries added and the queue started over ``/api/v1/queue``, killed;
  then ``bes serve`` again (it recovers the queue at start), ``POST /api/v1/queue/start``,
  and, once every entry is final, SIGTERM (it must stop cleanly, exit 0).

After each run every sample must be accounted for exactly once: each entry one final state
in the queue file (no entry DONE twice), the workflow database's sample transitions the
queue's one for one (one final transition per entry), the sample under way at the kill
recorded INTERRUPTED and run again. Prints a table of the runs and the totals; exit status
0 when every run is clean.

    python bench/crash_recovery.py [--runs 20] [--samples 4] [--seed 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project's tests.reliability helpers
from tests.reliability.accounting import FAST_PARAMETERS as FAST  # noqa: E402

TIMEOUT_S = 300.0


PHASES = ("MOUNTING", "MOUNTED", "RUNNING", "UNMOUNTING")


@dataclass
class Run:
    number: int
    process: str
    target: tuple[int, str, float]
    """Where to kill: entry (from 1), its phase, and the wall time to wait once there."""
    killed_at: str = ""
    """The entries under way when the kill came (``1:2 RUNNING``), or why none was."""
    killed: bool = False
    entries: int = 0
    interrupted: int = 0
    done: int = 0
    other_final: int = 0
    done_twice: int = 0
    transitions: tuple[int, int] = (0, 0)
    open_runs: int = 0
    """Workflow runs still ``running`` in the database after the restart (must be 0: the
    restart ends the run the kill cut short as ``aborted``, ``interrupted``)."""
    closed_runs: int = 0
    """Workflow runs the kill cut short that the restart recorded ended (``interrupted``)."""
    restart_s: float = 0.0
    problems: list[str] = field(default_factory=list)


def settings() -> list[str]:
    return [f"--set={name}={json.dumps(value)}" for name, value in FAST.items()]


def bes(*args: str) -> list[str]:
    return [sys.executable, "-m", "bes", *args]


def queue_now(data: Path) -> list[tuple[int, str, str]]:
    """(id, location, state) of every entry, read while a process writes the file."""
    path = data / "queue.sqlite"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT id, location, state FROM entries ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # being created
        return []


ACTIVE = PHASES
ORDER = {state: i for i, state in enumerate((*PHASES, "DONE"))}


def progress(entries: list[tuple[int, str, str]]) -> tuple[int, int]:
    """How far the night is: (entry number from 1, index of its state in ORDER) of the first
    entry not final yet; (0, -1) before the queue holds any."""
    if not entries:
        return 0, -1
    for number, (_, _, state) in enumerate(entries, 1):
        if state not in ("DONE", "FAILED", "ABORTED", "SKIPPED"):
            return number, ORDER.get(state, -1)
    return len(entries) + 1, 0


def kill_when_due(process: subprocess.Popen[Any], data: Path, run: Run) -> None:
    """SIGKILL ``process`` once its queue reached ``run.target`` (entry, phase; or later),
    plus the target's wait."""
    entry, phase, wait_s = run.target
    goal = (entry, ORDER[phase])
    deadline = time.monotonic() + TIMEOUT_S
    while progress(queue_now(data)) < goal:
        if process.poll() is not None or time.monotonic() > deadline:
            run.killed_at = f"never got there (exit {process.poll()})"
            return
        time.sleep(0.002)
    due = time.monotonic() + wait_s
    while time.monotonic() < due and process.poll() is None:
        time.sleep(0.002)
    under_way = [f"{loc} {state}" for _, loc, state in queue_now(data) if state in ACTIVE]
    if process.poll() is not None:
        run.killed_at = "ended before the kill"
        return
    os.kill(process.pid, signal.SIGKILL)
    process.wait(60)
    run.killed = True
    run.killed_at = ", ".join(under_way) or "between samples"


def night_run(run: Run, data: Path, world: Path, samples: int) -> None:
    common = ["--data-dir", str(data), "--sheet", str(world), "--no-lims", "--quiet"]
    common += ["--no-report", "--clock", "instant", *settings()]
    with (data.parent / "night.log").open("w") as log:
        first = subprocess.Popen(
            bes("night", "--demo", str(samples), *common), stdout=log, stderr=log, text=True
        )
        kill_when_due(first, data, run)
        first.wait(TIMEOUT_S)
    if not run.killed:
        return
    start = time.monotonic()
    resumed = subprocess.run(
        bes("night", "--resume", *common), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    run.restart_s = time.monotonic() - start
    if resumed.returncode != 0:
        run.problems.append(
            f"bes night --resume: exit {resumed.returncode}: {resumed.stderr[-300:]}"
        )


class Served:
    """A ``bes serve`` process: its URL and API token once it has printed them."""

    def __init__(self, data: Path, world: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "BES_API_TOKEN"}
        command = bes("serve", "--port", "0", "--data-dir", str(data), "--sheet", str(world))
        command += ["--no-lims", "--clock", "instant"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.printed: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 120
        while not any(line.startswith("bes serve: http://") for line in self.printed):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"bes serve did not start: {self.printed[-5:]}")
            try:
                self.printed.append(self.lines.get(timeout=1))
            except queue.Empty:
                continue
        self.url = next(x for x in self.printed if x.startswith("bes serve: http://")).split()[-1]
        token = (data / "api-token").read_text().strip()
        self.headers = {"Authorization": f"Bearer {token}"}

    def _read(self) -> None:
        for line in self.process.stdout or ():
            self.lines.put(line.rstrip("\n"))

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        answer = requests.request(
            method, f"{self.url}/api/v1/queue{path}", headers=self.headers, timeout=30, **kwargs
        )
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:200]}")
        return answer.json()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(TIMEOUT_S)
        self._reader.join(10)
        return code


def serve_run(run: Run, data: Path, world: Path, samples: int) -> None:
    served = Served(data, world)
    for i in range(1, samples + 1):
        served.api(
            "POST",
            "/entries",
            json={"location": f"1:{i}", "recipe": "mxpresse", "parameters": FAST},
        )
    served.api("POST", "/start", json={"reason": "crash-recovery run"})
    kill_when_due(served.process, data, run)
    if not run.killed:
        served.stop()
        return
    start = time.monotonic()
    again = Served(data, world)
    try:
        if again.api("GET", "/status")["state"] == "IDLE" and any(
            state not in ("DONE", "FAILED", "ABORTED", "SKIPPED") for *_, state in queue_now(data)
        ):
            again.api("POST", "/start", json={"reason": "restarted after a crash"})
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            status = again.api("GET", "/status")
            waiting = sum(status["counts"].get(s, 0) for s in ("QUEUED", *ACTIVE, "INTERRUPTED"))
            if status["state"] == "IDLE" and not waiting:
                break
            if time.monotonic() > deadline:
                run.problems.append(f"bes serve: queue not done after the restart: {status}")
                break
            time.sleep(0.1)
        run.restart_s = time.monotonic() - start
    finally:
        code = again.stop()
    if code != 0:
        run.problems.append(f"bes serve after the restart: exit {code}: {again.printed[-3:]}")


def account(run: Run, data: Path, samples: int) -> None:
    from tests.reliability.accounting import FINAL, check_books, read_books

    books = read_books(data)
    run.problems += check_books(books, every_attempt_recorded=False)
    run.entries = len(books.entries)
    if run.entries != samples:
        run.problems.append(f"{run.entries} entries in the queue file for {samples} samples")
    for entry in books.entries:
        states = [c["to_state"] for c in books.history.get(entry["id"], [])]
        finals = [s for s in states if s in FINAL]
        if len(finals) != 1:
            run.problems.append(f"entry {entry['id']}: final states {finals}")
        run.done_twice += states.count("DONE") > 1
        run.interrupted += states.count("INTERRUPTED")
        run.done += entry["state"] == "DONE"
        run.other_final += entry["state"] in FINAL and entry["state"] != "DONE"
    finals_db: dict[str, int] = {}
    for change in books.transitions:
        if change["to_state"] in FINAL:
            finals_db[change["sample"]] = finals_db.get(change["sample"], 0) + 1
    for entry in books.entries:
        if finals_db.get(entry["location"], 0) != 1:
            run.problems.append(
                f"{entry['location']}: {finals_db.get(entry['location'], 0)} final transitions "
                "in the workflow database"
            )
    queued = sum(len(h) for h in books.history.values()) - len(books.entries)
    run.transitions = (queued, len(books.transitions))
    run.open_runs = sum(1 for r in books.runs.values() if r["status"] == "running")
    run.closed_runs = sum(1 for r in books.runs.values() if r["error_kind"] == "interrupted")
    if run.open_runs:
        run.problems.append(f"{run.open_runs} workflow runs left running")
    if run.killed and run.interrupted != (0 if run.killed_at == "between samples" else 1):
        run.problems.append(f"{run.interrupted} entries INTERRUPTED for a kill at {run.killed_at}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=4, help="samples per run")
    parser.add_argument(
        "--sample-s", type=float, default=1.0, help="about the wall time of a sample"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments")
    parser.add_argument("--keep", type=Path, default=None, help="keep the data in this folder")
    args = parser.parse_args(argv)
    from tests.reliability.accounting import sheet_of_good_pins
    from tests.workflows.helpers import GOOD_PIN

    rng = random.Random(args.seed)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bes-crash-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"crash recovery: {args.runs} runs of {args.samples} samples (mxpresse, good pins, "
        f"instant clock, no LIMS), kill -9 at a random point: a random sample in a random "
        f"phase (in RUNNING up to {0.5 * args.sample_s:g} s into it); seed {args.seed}",
        flush=True,
    )
    print(f"parameters: {FAST}", flush=True)
    runs: list[Run] = []
    started = time.monotonic()
    try:
        for number in range(1, args.runs + 1):
            process = "night" if number % 2 else "serve"
            phase = rng.choice(PHASES)
            wait_s = rng.uniform(0.0, 0.5 * args.sample_s) if phase == "RUNNING" else 0.0
            run = Run(number, process, (rng.randint(1, args.samples), phase, wait_s))
            data = folder / f"run-{number:02d}"
            data.mkdir(parents=True, exist_ok=True)
            locations = [f"1:{i}" for i in range(1, args.samples + 1)]
            world = sheet_of_good_pins(data / "world.json", locations, GOOD_PIN)
            try:
                (night_run if process == "night" else serve_run)(
                    run, data / "data", world, args.samples
                )
                account(run, data / "data", args.samples)
            except Exception as exc:  # one broken run is reported, the others still run
                run.problems.append(f"{type(exc).__name__}: {exc}")
            runs.append(run)
            print(_row(run), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    wall = time.monotonic() - started
    killed = [r for r in runs if r.killed]
    mid = [r for r in killed if r.killed_at != "between samples"]
    bad = [r for r in runs if r.problems]
    print("\ntotals:")
    nights = sum(r.process == "night" for r in runs)
    print(
        f"  runs                            {len(runs):5d} ({nights} bes night, "
        f"{len(runs) - nights} bes serve)"
    )
    print(
        f"  killed with SIGKILL             {len(killed):5d} ({len(mid)} with a sample under way)"
    )
    print(f"  samples                         {sum(r.entries for r in runs):5d}")
    print(f"  recorded INTERRUPTED, run again {sum(r.interrupted for r in runs):5d}")
    print(f"  DONE                            {sum(r.done for r in runs):5d}")
    print(f"  other final states              {sum(r.other_final for r in runs):5d}")
    print(f"  DONE twice (must be 0)          {sum(r.done_twice for r in runs):5d}")
    lost = sum(max(r.transitions[0] - r.transitions[1], 0) for r in runs)
    print(f"  transitions lost (must be 0)    {lost:5d}")
    print(f"  runs with a problem (must be 0) {len(bad):5d}")
    print(f"  runs left running (must be 0)   {sum(r.open_runs for r in runs):5d}")
    closed = sum(r.closed_runs for r in runs)
    print(f"  runs cut short, ended at restart {closed:4d} (aborted, error kind interrupted)")
    for run in bad:
        for problem in run.problems[:5]:
            print(f"  run {run.number}: {problem}")
    print(f"wall time: {wall:.1f} s")
    return 0 if not bad and len(killed) == len(runs) else 1


HEADER = (
    f"{'run':>3}  {'process':7}  {'kill at':18}  {'under way at the kill':24}  {'entries':>7}  "
    f"{'INTERR':>6}  {'DONE':>4}  {'other':>5}  {'DONE x2':>7}  {'transitions q/db':>16}  "
    f"{'restart s':>9}  ok"
)


def _target(run: Run) -> str:
    entry, phase, wait_s = run.target
    return f"#{entry} {phase}" + (f" +{wait_s:.2f}s" if wait_s else "")


def _row(run: Run) -> str:
    line = (
        f"{run.number:3d}  {run.process:7}  {_target(run):18}  {run.killed_at[:24]:24}  "
        f"{run.entries:7d}  {run.interrupted:6d}  {run.done:4d}  {run.other_final:5d}  "
        f"{run.done_twice:7d}  {f'{run.transitions[0]}/{run.transitions[1]}':>16}  "
        f"{run.restart_s:9.1f}  {'yes' if not run.problems and run.killed else 'NO'}"
    )
    return (HEADER + "\n" + line) if run.number == 1 else line


if __name__ == "__main__":
    sys.exit(main())
