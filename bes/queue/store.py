"""The persisted queue: entries and their state histories in a small SQLite file
(``<data_dir>/queue.sqlite``).

Every change is one transaction committed before the caller acts on it (WAL,
``synchronous=FULL``): a process killed at any moment leaves each entry in the last state it
committed. On the next start :meth:`QueueStore.recover` finds the entries that were on their
way to, on, or coming back from the goniometer, marks them INTERRUPTED and re-queues or skips
them by policy; their histories keep the interruption.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from bes.queue.entries import NewEntry, QueueEntry
from bes.queue.states import (
    ACTIVE,
    FINAL,
    SAMPLE_TRANSITIONS,
    QueueStateError,
    SampleState,
    StateChange,
    declared_moves,
)
from bes.queue.validate import validate_entry

QUEUE_FILE = "queue.sqlite"
SCHEMA_VERSION = 1
RecoveryPolicy = Literal["requeue", "skip"]
POLICIES: tuple[str, ...] = ("requeue", "skip")

EntryHook = Callable[[QueueEntry, StateChange], None]
"""Called after a committed state change: the entry as it is now, and the change."""

_MOVES = declared_moves(SAMPLE_TRANSITIONS)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the workflow database names it
    position INTEGER NOT NULL,
    location TEXT NOT NULL,
    sample_lims_id INTEGER,
    recipe TEXT NOT NULL,
    parameters TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    outcome TEXT,
    run_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_time REAL NOT NULL,
    updated_time REAL NOT NULL,
    started_time REAL,
    ended_time REAL
);
CREATE INDEX IF NOT EXISTS entries_state_position ON entries (state, position);
CREATE TABLE IF NOT EXISTS entry_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    time REAL NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT,
    run_id TEXT
);
CREATE INDEX IF NOT EXISTS entry_history_entry ON entry_history (entry_id, id);
"""


class QueueStore:
    """The queue's entries in ``path`` (created when missing). Thread-safe: one connection
    behind a lock. ``validate``: how :meth:`add` checks a new entry (default
    :func:`~bes.queue.validate.validate_entry`; raises ValueError, nothing stored)."""

    def __init__(
        self,
        path: str | Path,
        validate: Callable[[NewEntry], NewEntry] = validate_entry,
    ) -> None:
        self.path = Path(path)
        if str(path) == ":memory:":
            raise ValueError("the queue store needs a file: an in-memory queue does not survive")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._validate = validate
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"queue file {self.path} has schema {version}; this mxbes reads up to "
                f"{SCHEMA_VERSION}: use a newer mxbes or another data directory"
            )
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @classmethod
    def in_dir(cls, data_dir: str | Path, **options: Any) -> QueueStore:
        """The queue of a data directory: ``<data_dir>/queue.sqlite``."""
        return cls(Path(data_dir) / QUEUE_FILE, **options)

    # -- entries -----------------------------------------------------------------------

    def validate(self, entry: NewEntry) -> NewEntry:
        """``entry`` as :meth:`add` would store it; ValueError with the reason for a bad one."""
        return self._validate(entry)

    def add(self, entry: NewEntry, position: int | None = None) -> int:
        """Validate and store ``entry`` as QUEUED, at the end or at ``position`` (from 1);
        its id. ValueError with the reason for a bad entry (nothing stored)."""
        checked = self._validate(entry)
        now = time.time()
        with self._transaction():
            count = self._count()
            cursor = self._db.execute(
                "INSERT INTO entries (position, location, sample_lims_id, recipe, parameters,"
                " state, reason, created_time, updated_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    count + 1,
                    checked.location,
                    checked.sample_lims_id,
                    checked.recipe,
                    json.dumps(dict(checked.parameters), sort_keys=True),
                    SampleState.QUEUED.name,
                    "added",
                    now,
                    now,
                ),
            )
            entry_id = int(cursor.lastrowid or 0)
            self._history(entry_id, now, None, SampleState.QUEUED, "added", None)
            if position is not None:
                self._place(entry_id, position)
        return entry_id

    def get(self, entry_id: int) -> QueueEntry:
        """The entry; KeyError naming the id when there is none."""
        with self._lock:
            row = self._db.execute("SELECT * FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise KeyError(f"no queue entry {entry_id}")
        return _entry(row)

    def list(self, states: Iterable[SampleState] | None = None) -> builtins.list[QueueEntry]:
        """Every entry (or those in ``states``), in queue order."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM entries ORDER BY position").fetchall()
        entries = [_entry(row) for row in rows]
        if states is None:
            return entries
        wanted = set(states)
        return [e for e in entries if e.state in wanted]

    def next_queued(self) -> QueueEntry | None:
        """The first QUEUED entry in queue order, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM entries WHERE state = ? ORDER BY position LIMIT 1",
                (SampleState.QUEUED.name,),
            ).fetchone()
        return _entry(row) if row is not None else None

    def counts(self) -> dict[SampleState, int]:
        """Entries per state (every state, zeros included)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM entries GROUP BY state")
            found = {SampleState[state]: n for state, n in rows.fetchall()}
        return {state: found.get(state, 0) for state in SampleState}

    def history(self, entry_id: int) -> builtins.list[StateChange]:
        """The entry's state changes, oldest first (from ``None`` to QUEUED when added)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM entry_history WHERE entry_id = ? ORDER BY id", (entry_id,)
            ).fetchall()
        return [_change(row) for row in rows]

    def move(self, entry_id: int, position: int) -> QueueEntry:
        """Put the entry at ``position`` (1 is the first; past the end: the last)."""
        with self._transaction():
            self._require(entry_id)
            self._place(entry_id, position)
        return self.get(entry_id)

    def remove(self, entry_id: int) -> QueueEntry:
        """Delete a waiting or finished entry (and its history); QueueStateError for one the
        queue is working on."""
        with self._transaction():
            entry = self._require(entry_id)
            if entry.state in ACTIVE:
                raise QueueStateError(
                    f"cannot remove queue entry {entry_id}: it is {entry.state.name}; "
                    "skip or abort it first"
                )
            self._db.execute("DELETE FROM entries WHERE id = ?", (entry_id,))
            self._renumber(self._order())
        return entry

    def update_state(
        self,
        entry_id: int,
        state: SampleState,
        reason: str | None,
        run_id: str | None = None,
        outcome: str | None = None,
    ) -> QueueEntry:
        """Commit a state change the sample table allows (QueueStateError otherwise).

        To MOUNTING: a new attempt (``attempts`` + 1, ``started_time``, ``run_id`` reset).
        Back to QUEUED after an attempt: ``run_number`` + 1 so that the next run starts on
        a new run number. To a final state: ``ended_time`` (and ``outcome`` if given)."""
        now = time.time()
        with self._transaction():
            entry = self._require(entry_id)
            if (entry.state, state) not in _MOVES:
                raise QueueStateError(
                    f"cannot move queue entry {entry_id} from {entry.state.name} to {state.name}"
                )
            fields: dict[str, Any] = {"state": state.name, "reason": reason, "updated_time": now}
            if run_id is not None:
                fields["run_id"] = run_id
            if state is SampleState.MOUNTING:
                fields.update(
                    attempts=entry.attempts + 1,
                    started_time=now,
                    ended_time=None,
                    outcome=None,
                    run_id=run_id,
                )
            elif state is SampleState.QUEUED:
                fields["ended_time"] = None
                if entry.attempts and "run_number" in entry.parameters:
                    parameters = {
                        **entry.parameters,
                        "run_number": int(entry.parameters["run_number"]) + 1,
                    }
                    fields["parameters"] = json.dumps(parameters, sort_keys=True)
            elif state in FINAL:
                fields["ended_time"] = now
                if outcome is not None:
                    fields["outcome"] = outcome
            columns = ", ".join(f"{name} = ?" for name in fields)
            self._db.execute(
                f"UPDATE entries SET {columns} WHERE id = ?", (*fields.values(), entry_id)
            )
            if state is not SampleState.MOUNTING:
                run_id = run_id or entry.run_id
            self._history(entry_id, now, entry.state, state, reason, run_id)
        return self.get(entry_id)

    def recover(
        self, policy: RecoveryPolicy = "requeue", on_change: EntryHook | None = None
    ) -> builtins.list[QueueEntry]:
        """After a crash: every entry left MOUNTING, MOUNTED, RUNNING or UNMOUNTING becomes
        INTERRUPTED (``interrupted: bes stopped during RUNNING``), then every INTERRUPTED
        entry is re-queued (``requeue``: it runs again, on a new run number) or SKIPPED
        (``skip``). The entries so handled, as they are now; ``on_change`` sees each change."""
        if policy not in POLICIES:
            raise ValueError(f"unknown recovery policy {policy!r}; known: {', '.join(POLICIES)}")
        recovered = []
        for entry in self.list([*ACTIVE, SampleState.INTERRUPTED]):
            if entry.state in ACTIVE:
                reason = f"interrupted: bes stopped during {entry.state.name}"
                self._apply(entry, SampleState.INTERRUPTED, reason, on_change)
            if policy == "requeue":
                reason = "re-queued after an interruption; runs again on a new run number"
                entry = self._apply(entry, SampleState.QUEUED, reason, on_change)
            else:
                reason = "skipped after an interruption (recovery policy skip)"
                entry = self._apply(entry, SampleState.SKIPPED, reason, on_change)
            recovered.append(entry)
        return recovered

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> QueueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    def _apply(
        self, entry: QueueEntry, state: SampleState, reason: str, on_change: EntryHook | None
    ) -> QueueEntry:
        updated = self.update_state(entry.id, state, reason)
        if on_change is not None:
            on_change(updated, self.history(entry.id)[-1])
        return updated

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _require(self, entry_id: int) -> QueueEntry:
        row = self._db.execute("SELECT * FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise KeyError(f"no queue entry {entry_id}")
        return _entry(row)

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def _order(self) -> builtins.list[int]:
        rows = self._db.execute("SELECT id FROM entries ORDER BY position, id").fetchall()
        return [int(row[0]) for row in rows]

    def _place(self, entry_id: int, position: int) -> None:
        if isinstance(position, bool) or not isinstance(position, int) or position < 1:
            raise ValueError(f"bad queue position {position!r}: positions count from 1")
        order = [i for i in self._order() if i != entry_id]
        order.insert(min(position, len(order) + 1) - 1, entry_id)
        self._renumber(order)

    def _renumber(self, order: builtins.list[int]) -> None:
        self._db.executemany(
            "UPDATE entries SET position = ? WHERE id = ?",
            [(position, entry_id) for position, entry_id in enumerate(order, start=1)],
        )

    def _history(
        self,
        entry_id: int,
        now: float,
        from_state: SampleState | None,
        to_state: SampleState,
        reason: str | None,
        run_id: str | None,
    ) -> None:
        self._db.execute(
            "INSERT INTO entry_history (entry_id, time, from_state, to_state, reason, run_id)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                entry_id,
                now,
                from_state.name if from_state else None,
                to_state.name,
                reason,
                run_id,
            ),
        )


def _entry(row: sqlite3.Row) -> QueueEntry:
    return QueueEntry(
        id=row["id"],
        position=row["position"],
        location=row["location"],
        sample_lims_id=row["sample_lims_id"],
        recipe=row["recipe"],
        parameters=json.loads(row["parameters"]),
        state=SampleState[row["state"]],
        reason=row["reason"],
        outcome=row["outcome"],
        run_id=row["run_id"],
        attempts=row["attempts"],
        created_time=row["created_time"],
        updated_time=row["updated_time"],
        started_time=row["started_time"],
        ended_time=row["ended_time"],
    )


def _change(row: sqlite3.Row) -> StateChange:
    return StateChange(
        time=row["time"],
        from_state=SampleState[row["from_state"]] if row["from_state"] else None,
        to_state=SampleState[row["to_state"]],
        reason=row["reason"],
        run_id=row["run_id"],
    )
