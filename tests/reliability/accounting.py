"""Accounting for every sample and record after a night, a soak or a crash: the queue file,
the workflow database and the LIMS must tell the same story, and nothing may be left running.

:func:`read_books` reads ``DATA_DIR/queue.sqlite`` and ``DATA_DIR/workflows.db`` directly
(read only, so that it also works on what a killed process left); :func:`check_books`
compares them and :func:`check_lims` the LIMS with both, given what the station asked its
LIMS client to create (:class:`LimsTally`). Each returns the problems found, one line each:
an empty list means no record was lost and none was written twice.

Also here: :func:`leftovers` (threads and child processes that outlive a night), :func:`rss_mb`.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FINAL = ("DONE", "FAILED", "ABORTED", "SKIPPED")
ACTIVE = ("MOUNTING", "MOUNTED", "RUNNING", "UNMOUNTING")
RUN_STATUS = {"DONE": "finished", "FAILED": "failed", "ABORTED": "aborted", "SKIPPED": "aborted"}
"""The workflow run's status behind an entry that a run's end made final."""
ROBOT_MOVES = ("load", "exchange", "unload")
UPSERTS = frozenset({"Proposal", "BLSession", "Protein", "Crystal", "Container", "BLSample"})
"""LIMS records the writer finds or creates (a second create is the same row)."""
FAST_PARAMETERS: dict[str, Any] = {
    "mesh_rows": 3,
    "mesh_cols": 3,
    "mesh_min_points": 3,
    "loop_omegas_deg": [0.0, 90.0],
    "char_frames_per_wedge": 2,
    "oscillation_deg": 1.0,
    "total_range_deg": 5.0,
}
"""mxpresse made small for soaks, crash runs and the fault matrix: 3 x 3 meshes, two
reference frames per wedge, a 5-frame collection. Every phase with its device actions and
LIMS records, under a second of wall time a sample."""
THREADS_KEPT = ("bes-heatmap",)
"""Threads that outlive a night by design: the heat-map writer of the process."""


# -- the queue file and the workflow database ---------------------------------------------------


@dataclass
class Books:
    """What the queue file and the workflow database hold, read back."""

    entries: list[dict[str, Any]]
    history: dict[int, list[dict[str, Any]]]
    transitions: list[dict[str, Any]]
    """``sample_transitions`` of the workflow database (run ids as the engine's)."""
    runs: dict[str, dict[str, Any]]
    """Workflow runs by the engine's run id."""
    run_rows: dict[str, dict[str, int]]
    """Rows per child table of each run, and its ``run_summary`` counts."""
    robot_moves_ok: int
    """Successful robot moves (load, exchange, unload) the database recorded, within runs or
    outside them (the queue putting back the pin left mounted at its end)."""
    queue_events: int

    def states(self) -> collections.Counter[str]:
        return collections.Counter(e["state"] for e in self.entries)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    return db


def read_books(data_dir: Path) -> Books:
    """Read the queue file and the workflow database of ``data_dir``."""
    with _connect(data_dir / "queue.sqlite") as db:
        entries = [dict(r) for r in db.execute("SELECT * FROM entries ORDER BY id")]
        history: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
        for row in db.execute("SELECT * FROM entry_history ORDER BY id"):
            history[row["entry_id"]].append(dict(row))
    with _connect(data_dir / "workflows.db") as db:
        runs = {
            r["run_id"]: dict(r)
            for r in db.execute("SELECT id, run_id, recipe, status, sample, error_kind FROM runs")
        }
        keys = {r["id"]: r["run_id"] for r in runs.values()}
        transitions = [
            {**dict(r), "run_id": keys.get(r["run_id"])}
            for r in db.execute(
                "SELECT sample, from_state, to_state, reason, run_id FROM sample_transitions"
                " ORDER BY id"
            )
        ]
        run_rows: dict[str, dict[str, int]] = collections.defaultdict(dict)
        for table in ("node_executions", "device_actions", "metadata_items", "decisions"):
            query = f"SELECT run_id, COUNT(*) FROM {table} WHERE run_id IS NOT NULL GROUP BY run_id"
            for key, count in db.execute(query):
                run_rows[keys[key]][table] = count
        summary = (
            "SELECT run_id, n_nodes, n_device_actions, n_metadata, n_decisions FROM run_summary"
        )
        for row in db.execute(summary):
            counts = run_rows[keys[row["run_id"]]]
            names = row.keys()  # a sqlite3.Row iterates over its values, not its names
            counts.update({f"summary.{k}": row[k] for k in names if k != "run_id"})
        robot = db.execute(
            "SELECT details FROM device_actions WHERE device = 'sample_changer'"
            f" AND action IN {ROBOT_MOVES}"
        ).fetchall()
        robot_ok = sum(1 for (details,) in robot if "error" not in json.loads(details or "{}"))
        queue_events = db.execute("SELECT COUNT(*) FROM queue_events").fetchone()[0]
    return Books(entries, dict(history), transitions, runs, dict(run_rows), robot_ok, queue_events)


SUMMARY_OF = {
    "node_executions": "summary.n_nodes",
    "device_actions": "summary.n_device_actions",
    "metadata_items": "summary.n_metadata",
    "decisions": "summary.n_decisions",
}


def check_books(
    books: Books,
    *,
    all_final: bool = True,
    every_attempt_recorded: bool = True,
    queue_events: int | None = None,
) -> list[str]:
    """Problems between the queue file and the workflow database.

    - every entry is final (``all_final``) and its history ends in its state;
    - no entry reached DONE twice, no entry has two final states without a re-queue between;
    - every attempt (MOUNTING) counted in ``attempts``;
    - the database's sample transitions are the queue's, one for one;
    - every run that made an entry final is in the database with the matching status;
      ``every_attempt_recorded``: one run per attempt (not after a kill, whose run may not
      have reached the database);
    - no run is left ``running`` (a crash's is ended at the restart);
    - each run's rows (nodes, device actions, metadata, decisions) are as many as its summary
      counted from the engine's events;
    - ``queue_events``: the queue and entry events subscribers saw, all recorded.
    """
    problems: list[str] = []
    expected: collections.Counter[tuple[Any, ...]] = collections.Counter()
    attempts = 0
    for entry in books.entries:
        name = f"entry {entry['id']} ({entry['location']})"
        changes = books.history.get(entry["id"], [])
        states = [c["to_state"] for c in changes]
        if all_final and entry["state"] not in FINAL:
            problems.append(f"{name} is {entry['state']}, not final")
        if not states or states[-1] != entry["state"]:
            problems.append(f"{name}: history ends {states[-1:]} but the entry is {entry['state']}")
        if states.count("DONE") > 1:
            problems.append(f"{name} reached DONE {states.count('DONE')} times")
        for before, after in itertools.pairwise(states):
            if before in FINAL and after != "QUEUED":
                problems.append(f"{name}: {before} -> {after} (a final state left without requeue)")
        if states.count("MOUNTING") != entry["attempts"]:
            problems.append(
                f"{name}: {states.count('MOUNTING')} attempts in its history, "
                f"{entry['attempts']} counted"
            )
        attempts += entry["attempts"]
        for change in changes:
            if change["from_state"] is None:
                continue  # added: an entry event, not a transition
            expected[
                (entry["location"], change["from_state"], change["to_state"], change["reason"])
            ] += 1
            if change["to_state"] in FINAL and change["from_state"] in ACTIVE:
                run = books.runs.get(change["run_id"] or "")
                want = RUN_STATUS[change["to_state"]]
                if run is None:
                    problems.append(f"{name}: run {change['run_id']} ({want}) not in the database")
                elif run["status"] != want:
                    problems.append(
                        f"{name}: ended {change['to_state']} but run {change['run_id']} is "
                        f"{run['status']}"
                    )
    recorded = collections.Counter(
        (t["sample"], t["from_state"], t["to_state"], t["reason"]) for t in books.transitions
    )
    for key in expected - recorded:
        problems.append(
            f"transition lost in the workflow database: {key} x{(expected - recorded)[key]}"
        )
    for key in recorded - expected:
        problems.append(
            f"transition recorded but not in the queue: {key} x{(recorded - expected)[key]}"
        )
    recipes = {e["recipe"] for e in books.entries}
    runs = [r for r in books.runs.values() if r["recipe"] in recipes]
    if every_attempt_recorded and len(runs) != attempts:
        problems.append(f"{len(runs)} workflow runs recorded for {attempts} attempts")
    for run_id, counts in books.run_rows.items():
        for table, key in SUMMARY_OF.items():
            if key in counts and counts.get(table, 0) != counts[key]:
                problems.append(
                    f"run {run_id}: {counts.get(table, 0)} {table} rows, its summary counted "
                    f"{counts[key]}"
                )
    running = [r["run_id"] for r in runs if r["status"] == "running"]
    if running:
        problems.append(f"workflow runs left running: {running}")
    missing_summary = [
        r["run_id"]
        for r in runs
        if r["status"] in ("finished", "failed", "aborted")
        and r["error_kind"] != "interrupted"  # ended at a restart: no summary of its events
        and "summary.n_nodes" not in books.run_rows.get(r["run_id"], {})
    ]
    if missing_summary:
        problems.append(f"runs ended without a run_summary row: {missing_summary}")
    if queue_events is not None and books.queue_events != queue_events:
        problems.append(
            f"{books.queue_events} queue events recorded, {queue_events} sent to subscribers"
        )
    return problems


# -- the LIMS -------------------------------------------------------------------------------------


class LimsTally:
    """Counts, per ISPyB table, the records the station asks its LIMS client to create (sent
    at once or queued in the outbox), by wrapping the client's create calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.created: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        create, indicators = client._create, client.add_image_quality_indicators

        def counted_create(kind: str, *args: Any, **kwargs: Any) -> Any:
            handle = create(kind, *args, **kwargs)
            with self._lock:
                self.created[kind] += 1
            return handle

        def counted_indicators(collection: Any, rows: Any) -> None:
            indicators(collection, rows)
            with self._lock:
                self.created["ImageQualityIndicators"] += len(rows)

        client._create = counted_create
        client.add_image_quality_indicators = counted_indicators

    def settle(self, timeout_s: float = 30.0) -> bool:
        """Wait until the outbox is empty (replayed by the client's own thread); True then."""
        deadline = time.monotonic() + timeout_s
        while self.client.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def check_lims(tally: LimsTally, books: Books, *, samples: int | None = None) -> list[str]:
    """Problems between the LIMS, what the station asked it to create and the workflow
    database: nothing pending or refused in the outbox; every created record there once; one
    Workflow per run, none left ``Started``; one successful RobotAction per robot move the
    database recorded; ``samples``: BLSample rows (one per pin)."""
    client = tally.client
    problems: list[str] = []
    if client.pending():
        problems.append(f"{client.pending()} LIMS writes still pending in the outbox")
    refused = client.failed()
    if refused:
        problems.append(f"{len(refused)} LIMS writes refused: {refused[0].last_error}")
    counts = client.counts()
    for kind, created in sorted(tally.created.items()):
        if kind in UPSERTS:
            continue
        if counts.get(kind, 0) != created:
            problems.append(f"LIMS {kind}: {counts.get(kind, 0)} rows, {created} created")
    runs = [r for r in books.runs.values() if r["recipe"] in {e["recipe"] for e in books.entries}]
    if counts.get("Workflow", 0) != len(runs):
        problems.append(f"LIMS Workflow: {counts.get('Workflow', 0)} rows for {len(runs)} runs")
    started = [w["workflowId"] for w in client.records("workflows", status="Started")]
    if started:
        problems.append(f"LIMS workflows left Started: {started}")
    robot_ok = [a for a in client.records("robot-actions") if a.get("status") == "SUCCESS"]
    if len(robot_ok) != books.robot_moves_ok:
        problems.append(
            f"LIMS RobotAction SUCCESS: {len(robot_ok)} rows, {books.robot_moves_ok} robot moves "
            "in the workflow database"
        )
    if samples is not None and counts.get("BLSample", 0) != samples:
        problems.append(f"LIMS BLSample: {counts.get('BLSample', 0)} rows for {samples} pins")
    return problems


# -- what a night leaves behind ------------------------------------------------------------------


def child_pids() -> set[int]:
    """Processes whose parent is this one (from /proc)."""
    me, found = os.getpid(), set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == me and fields[0] != "Z":
            found.add(int(name))
    return found


@dataclass
class Snapshot:
    threads: set[threading.Thread] = field(default_factory=lambda: set(threading.enumerate()))
    children: set[int] = field(default_factory=child_pids)


def leftovers(before: Snapshot, timeout_s: float = 5.0) -> list[str]:
    """Threads and child processes that were not there at ``before`` and are still alive
    after ``timeout_s`` (threads that end by themselves get that long)."""
    deadline = time.monotonic() + timeout_s
    while True:
        threads = [
            t
            for t in threading.enumerate()
            if t not in before.threads and t.is_alive() and not t.name.startswith(THREADS_KEPT)
        ]
        children = child_pids() - before.children
        if (not threads and not children) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return [f"thread {t.name}" for t in threads] + [f"process {pid}" for pid in sorted(children)]


def rss_mb() -> float:
    """Resident memory of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def sheet_of_good_pins(path: Path, locations: Iterable[str], pin: Mapping[str, Any]) -> Path:
    """A simulator sample sheet with ``pin`` at each location (no other pin in the dewar)."""
    pins = [{**pin, "location": location} for location in locations]
    path.write_text(json.dumps({"fill": "missing", "pins": pins}))
    return path
