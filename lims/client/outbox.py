"""The durable outbox: LIMS writes in a local SQLite file (WAL), replayed in order.

A write the LIMS could not take when it was made is appended here, and every later write
queues behind it; each is deleted once the LIMS has answered it, so writes survive the LIMS
being down and the process being killed. The file is SQLite in WAL mode; commits survive a
crash of the process (``synchronous=NORMAL``; ``FULL`` also survives a power cut, at about
3 ms per write on this machine class). A write may name a
record that is itself still queued (a data collection in a group the LIMS has not seen):
it then holds the *local id* of that record, and replay puts the LIMS id in, from the
``ids`` table that every delivered creation fills (local id -> LIMS id). A write the LIMS
refused (4xx) is kept with state ``failed`` and its error; so are the writes that depend on
it. ``retry_failed()`` queues them again (after, say, loading a missing sample sheet).

Tables::

    entry(seq, key, method, path, path_refs, body, body_refs, creates, kind, id_field,
          state, attempts, last_error, created)
    ids(local_id, kind, server_id, created)
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entry (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    path_refs TEXT NOT NULL,
    body TEXT NOT NULL,
    body_refs TEXT NOT NULL,
    creates TEXT UNIQUE,
    kind TEXT,
    id_field TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entry_state ON entry (state, seq);
CREATE TABLE IF NOT EXISTS ids (
    local_id TEXT PRIMARY KEY,
    kind TEXT,
    server_id INTEGER NOT NULL,
    created REAL NOT NULL
);
"""

LocalRef = int | str
"""A LIMS id (int) or the local id (str) of a record still queued."""


@dataclass(frozen=True)
class Write:
    """One request to the LIMS, with the records it names by local id."""

    method: str
    path: str
    """Path template; ``{0}``, ``{1}`` .. take ``path_refs``."""
    key: str
    """Idempotency-Key; for a creation also the new record's local id."""
    body: Any = None
    path_refs: tuple[LocalRef, ...] = ()
    body_refs: Mapping[str, str] | None = None
    """Body field -> local id of a queued record whose LIMS id goes there."""
    creates: str | None = None
    kind: str | None = None
    id_field: str | None = None
    """Field of the answer holding the new record's id."""


@dataclass(frozen=True)
class Entry:
    seq: int
    write: Write
    state: str
    attempts: int
    last_error: str | None


class Outbox:
    """The outbox file; safe to share between threads (one connection, one lock)."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"outbox synchronous must be FULL or NORMAL, got {synchronous!r}")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise ValueError(
                f"outbox {self.path} has schema version {version}; this client reads "
                f"{SCHEMA_VERSION}: flush it with the mxbes version that wrote it"
            )
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def append(self, write: Write) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO entry (key, method, path, path_refs, body, body_refs, creates, kind,"
                " id_field, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    write.key,
                    write.method,
                    write.path,
                    json.dumps(list(write.path_refs)),
                    json.dumps(write.body),
                    json.dumps(dict(write.body_refs or {})),
                    write.creates,
                    write.kind,
                    write.id_field,
                    time.time(),
                ),
            )
            return int(cursor.lastrowid or 0)

    def next_pending(self) -> Entry | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM entry WHERE state = 'pending' ORDER BY seq LIMIT 1"
            ).fetchone()
        return _entry(row) if row else None

    def delivered(self, entry: Entry, server_id: int | None) -> None:
        """The LIMS has the write: forget it, and remember the id of what it created."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if entry.write.creates is not None and server_id is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO ids (local_id, kind, server_id, created)"
                        " VALUES (?, ?, ?, ?)",
                        (entry.write.creates, entry.write.kind, server_id, time.time()),
                    )
                self._db.execute("DELETE FROM entry WHERE seq = ?", (entry.seq,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def attempted(self, seq: int, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE entry SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                (error, seq),
            )

    def fail(self, seq: int, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE entry SET state = 'failed', attempts = attempts + 1, last_error = ?"
                " WHERE seq = ?",
                (error, seq),
            )

    def state(self, seq: int) -> tuple[str, str | None] | None:
        """(state, last error) of a write, None once delivered."""
        with self._lock:
            row = self._db.execute(
                "SELECT state, last_error FROM entry WHERE seq = ?", (seq,)
            ).fetchone()
        return (str(row[0]), row[1]) if row else None

    def server_id(self, local_id: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT server_id FROM ids WHERE local_id = ?", (local_id,)
            ).fetchone()
        return int(row[0]) if row else None

    def creator(self, local_id: str) -> Entry | None:
        """The queued (pending or failed) write that creates ``local_id``."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM entry WHERE creates = ?", (local_id,)
            ).fetchone()
        return _entry(row) if row else None

    def pending_count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM entry WHERE state = 'pending'").fetchone()
        return int(row[0])

    def failed(self) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM entry WHERE state = 'failed' ORDER BY seq"
            ).fetchall()
        return [_entry(row) for row in rows]

    def retry_failed(self) -> int:
        """Queue the refused writes again, in their first order; answers how many."""
        with self._lock:
            cursor = self._db.execute("UPDATE entry SET state = 'pending' WHERE state = 'failed'")
            return int(cursor.rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()


_COLUMNS = (
    "seq, key, method, path, path_refs, body, body_refs, creates, kind, id_field, state,"
    " attempts, last_error"
)


def _entry(row: tuple[Any, ...]) -> Entry:
    seq, key, method, path, path_refs, body, body_refs, creates, kind, id_field = row[:10]
    state, attempts, last_error = row[10:]
    write = Write(
        method=method,
        path=path,
        key=key,
        body=json.loads(body),
        path_refs=tuple(json.loads(path_refs)),
        body_refs=json.loads(body_refs),
        creates=creates,
        kind=kind,
        id_field=id_field,
    )
    return Entry(seq=seq, write=write, state=state, attempts=attempts, last_error=last_error)
