"""Writing rows in batches, off the engine's thread.

Producers (the recorder, in the engine thread) append ``(table, row)`` items to a bounded
buffer; one writer thread takes them in batches and writes each batch in one transaction.
A batch is written when it is full, when ``linger_s`` has passed since its first item, or at
once when someone asks for a flush (the recorder does at each workflow end). A process
killed at any moment loses the rows not yet committed (at most the batch being written and
those behind it) and leaves a consistent database: every batch commits whole or not at all.

A database that is busy, locked or unreachable is waited for: the batch is tried again
(after ``RETRY_DELAYS_S``, then every last delay) for as long as it takes, rows queueing
behind it, until the writer is closed and its close timeout has passed; only then, or for a
row the database refuses, are rows dropped (counted in ``stats.dropped``, logged).

Rows name their run by the engine's run id (``run_id``: a uuid string); the writer turns it
into the ``runs.id`` key, which the database assigns when the run's row is inserted.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from bes.record.database import dumps_lenient as dumps
from bes.record.schema import Base

logger = logging.getLogger(__name__)

RUN = "runs"
RUN_END = "run_end"
FLUSH = "flush"
STOP = "stop"
CHILD_TABLES = (
    "node_executions",
    "decisions",
    "metadata_items",
    "device_actions",
    "sample_transitions",
    "queue_events",
)
"""Tables whose rows carry a run id to resolve; ``run_summary`` too, written after them."""
NULLABLE_RUN = ("device_actions", "sample_transitions", "queue_events")
STATS = {
    "step_stats": ("n", "total_s"),
    "decision_stats": ("n_evaluated", "n_taken"),
}
"""Counting tables: rows add to the row with the same key (upsert)."""
KINDS = (RUN, RUN_END, *CHILD_TABLES, "run_summary", *STATS)
RETRY_DELAYS_S = (0.1, 0.5, 2.0, 5.0)
"""Waits before the first retries of a batch the database could not take; then the last one
again, until it can (or the writer is closed)."""
RETRY_LOG_EVERY = 12
"""After the first retries, one warning per this many (one a minute at 5 s)."""

Item = tuple[str, Any]


@dataclass
class WriterStats:
    queued: int = 0
    written: int = 0
    """Rows committed."""
    batches: int = 0
    dropped: int = 0
    """Rows given up (refused by the database, left when the writer closed while it was
    unreachable, or a full buffer for longer than ``put_timeout_s``)."""
    retries: int = 0
    """Batches tried again because the database was busy, locked or unreachable."""
    last_error: str | None = None


class _Buffer:
    """A bounded FIFO with a cheap append: the consumer is woken only when it has work."""

    def __init__(self, capacity: int, wake_at: int) -> None:
        self.capacity = capacity
        self.wake_at = wake_at
        self.items: deque[Item] = deque()
        self.urgent = 0
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.space = threading.Condition(self.lock)

    def put(self, item: Item, urgent: bool, timeout: float | None) -> bool:
        with self.lock:  # the bare lock: a Condition's own `with` costs microseconds
            if len(self.items) >= self.capacity and not self.space.wait_for(
                lambda: len(self.items) < self.capacity, timeout
            ):
                return False
            self.items.append(item)
            if urgent:
                self.urgent += 1
            size = len(self.items)
            if urgent or size == 1 or size == self.wake_at:
                self.ready.notify()
            return True

    def take(self, max_items: int, linger_s: float) -> list[Item]:
        with self.ready:
            self.ready.wait_for(lambda: bool(self.items))
            if not self.urgent and len(self.items) < self.wake_at:
                self.ready.wait_for(
                    lambda: self.urgent > 0 or len(self.items) >= self.wake_at, linger_s
                )
            count = min(len(self.items), max_items)
            if count == len(self.items):
                batch = list(self.items)
                self.items.clear()
            else:
                batch = [self.items.popleft() for _ in range(count)]
            self.urgent -= sum(1 for kind, _ in batch if kind in (FLUSH, STOP))
            self.space.notify_all()
            return batch

    def __len__(self) -> int:
        return len(self.items)


class BatchWriter:
    """One writer thread for one database engine. Thread-safe :meth:`put`."""

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 5000,
        linger_s: float = 0.5,
        max_pending: int = 200_000,
        put_timeout_s: float = 30.0,
        name: str = "bes-record-writer",
    ) -> None:
        if batch_size < 1 or max_pending < batch_size:
            raise ValueError(
                f"need 1 <= batch_size <= max_pending, got {batch_size} and {max_pending}"
            )
        self.engine = engine
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.put_timeout_s = put_timeout_s
        self.stats = WriterStats()
        self._buffer = _Buffer(max_pending, wake_at=batch_size)
        self._tables: dict[str, Table] = {
            name: Base.metadata.tables[name] for name in (RUN, *CHILD_TABLES, "run_summary", *STATS)
        }
        self._json_columns = {
            name: frozenset(c.name for c in table.columns if isinstance(c.type, JSON))
            for name, table in self._tables.items()
        }
        self._ids: dict[str, int] = {}
        """Engine run id -> runs.id, for runs being written by this writer."""
        self._closed = False
        self._give_up = threading.Event()
        """Set when :meth:`close` has waited long enough: retries end, rows are dropped."""
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        _OPEN.add(self)

    # -- producer side ---------------------------------------------------------------------

    def put(self, kind: str, row: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        """Queue one row (``kind``: a table name, or ``run_end`` for a run's end update).
        ``row`` may be a function that makes the row: the writer thread calls it, which keeps
        formatting work off the caller's (the engine's) thread."""
        if self._closed:
            raise RuntimeError("the workflow-database writer is closed; no more rows")
        self.stats.queued += 1
        if not self._buffer.put((kind, row), False, self.put_timeout_s):
            self.stats.dropped += 1
            logger.error(
                "workflow database: %d rows waiting for %.0f s; a %s row was dropped "
                "(is the database reachable? %s)",
                len(self._buffer),
                self.put_timeout_s,
                kind,
                self.stats.last_error or "no error yet",
            )

    def flush(self, timeout: float | None = 30.0, *, wait: bool = True) -> bool:
        """Write everything queued so far now; True once committed (False: timed out).
        ``wait=False``: only ask for it (the writer does not wait for ``linger_s``)."""
        if self._closed or not self._thread.is_alive():
            return len(self._buffer) == 0
        done = threading.Event() if wait else None
        if not self._buffer.put((FLUSH, done), True, timeout):
            return False
        return done.wait(timeout) if done is not None else True

    def close(self, timeout: float | None = 30.0) -> None:
        """Write what is queued, stop the thread, release the connections."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._buffer.put((STOP, None), True, timeout)
            self._thread.join(timeout)
        if self._thread.is_alive():  # still waiting for the database: give the rows up
            self._give_up.set()
            self._thread.join(10.0)
        self.engine.dispose()
        _OPEN.discard(self)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    # -- writer thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            batch = self._buffer.take(self.batch_size, self.linger_s)
            rows = self._materialise([item for item in batch if item[0] not in (FLUSH, STOP)])
            if rows:
                self._write(rows)
            for kind, payload in batch:
                if kind == FLUSH and payload is not None:
                    payload.set()
            if any(kind == STOP for kind, _ in batch):
                return

    def _materialise(self, items: list[Item]) -> list[Item]:
        """Rows given as functions are made here, in the writer thread."""
        out = []
        for kind, row in items:
            if callable(row):
                try:
                    row = row()
                except Exception:
                    self.stats.dropped += 1
                    logger.exception("workflow database: making a %s row failed", kind)
                    continue
            out.append((kind, row))
        return out

    def _write(self, rows: list[Item], *, alone: bool = False) -> None:
        """One transaction; retried while the database is busy, locked or unreachable, until
        it takes the batch or the writer gives up at close. A batch the database refuses (a
        bad row) is written row by row, so that only that row is lost."""
        refused = False
        attempt = 0
        while True:
            try:
                with self.engine.begin() as connection:
                    new_ids, done_runs, written, lost = self._write_batch(connection, rows)
            except DBAPIError as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                if not _retryable(exc):
                    refused = True
                    break
                if self._give_up.is_set():
                    break
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                attempt += 1
                self.stats.retries += 1
                if attempt <= len(RETRY_DELAYS_S) or attempt % RETRY_LOG_EVERY == 0:
                    logger.warning(
                        "workflow database: batch of %d rows failed (%s); retry %d in %.1f s "
                        "(%d rows waiting behind it)",
                        len(rows),
                        self.stats.last_error,
                        attempt,
                        delay,
                        len(self._buffer),
                    )
                if self._give_up.wait(delay):
                    break
            except Exception as exc:  # a bug: never let it kill the writer thread
                self.stats.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                logger.exception("workflow database: writing a batch failed")
                break
            else:
                self._ids.update(new_ids)
                for run in done_runs:
                    self._ids.pop(run, None)
                self.stats.written += written
                self.stats.batches += 1
                self.stats.dropped += len(lost)
                for table, run in lost:
                    logger.warning(
                        "workflow database: %s row of unknown run %r dropped", table, run
                    )
                return
        if refused and len(rows) > 1:
            logger.warning(
                "workflow database: batch of %d rows refused (%s); writing them one by one",
                len(rows),
                self.stats.last_error,
            )
            for row in rows:
                self._write([row], alone=True)
            return
        self.stats.dropped += len(rows)
        logger.error(
            "workflow database: %d row(s) dropped (%s)%s",
            len(rows),
            self.stats.last_error,
            f": {rows[0][0]} {rows[0][1]}" if alone else "",
        )

    def _write_batch(
        self, connection: Connection, items: list[Item]
    ) -> tuple[dict[str, int], list[str], int, list[tuple[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for kind, row in items:
            grouped[kind].append(row)
        ids: dict[str, int] = {}
        written = 0
        if grouped[RUN]:
            runs = self._tables[RUN]
            result = connection.execute(
                insert(runs).returning(runs.c.id, runs.c.run_id), grouped[RUN]
            )
            ids.update({run_id: key for key, run_id in result})
            written += len(grouped[RUN])
        lost: list[tuple[str, Any]] = []
        resolve = self._resolver(connection, ids, items, lost)
        for table in (*CHILD_TABLES, "run_summary"):
            rows = resolve(table, grouped[table])
            if rows:
                self._insert_many(connection, table, rows)
                written += len(rows)
        ended = resolve(RUN_END, grouped[RUN_END])
        if ended:
            runs = self._tables[RUN]
            statement = update(runs).where(runs.c.id == bindparam("key"))
            connection.execute(
                statement, [{"key": row.pop("run_id"), **row} for row in map(dict, ended)]
            )
            written += len(ended)
        for table, counters in STATS.items():
            rows = _aggregate(grouped[table], counters)
            if rows:
                connection.execute(self._upsert(connection, table, counters), rows)
                written += len(rows)
        return ids, [row["run_id"] for row in grouped[RUN_END]], written, lost

    def _insert_many(
        self, connection: Connection, table_name: str, rows: list[dict[str, Any]]
    ) -> None:
        """Many rows at once, through the driver: ``COPY`` on PostgreSQL, ``executemany`` on
        SQLite (SQLAlchemy's per-row processing would halve the writer's rate)."""
        table = self._tables[table_name]
        columns = tuple(rows[0])
        json_columns = self._json_columns[table_name]
        values = [
            tuple(
                dumps(row[k]) if k in json_columns and row[k] is not None else row[k]
                for k in columns
            )
            for row in rows
        ]
        quote = connection.dialect.identifier_preparer.quote
        names = ", ".join(quote(name) for name in columns)
        if connection.dialect.name == "postgresql":
            cursor = connection.connection.cursor()
            with cursor.copy(f"COPY {quote(table.name)} ({names}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
        else:
            marks = ", ".join("?" * len(columns))
            connection.exec_driver_sql(
                f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})", values
            )

    def _resolver(
        self,
        connection: Connection,
        new_ids: dict[str, int],
        items: list[Item],
        lost: list[tuple[str, Any]],
    ) -> Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]]:
        """Turns rows' engine run ids into ``runs.id``; looks up runs this writer did not
        insert (e.g. a sample transition naming another process's run)."""
        known = {**self._ids, **new_ids}
        wanted = {
            row.get("run_id")
            for kind, row in items
            if kind in (*CHILD_TABLES, "run_summary", RUN_END) and row.get("run_id") is not None
        } - known.keys()
        if wanted:
            runs = self._tables[RUN]
            found = connection.execute(
                select(runs.c.run_id, runs.c.id).where(runs.c.run_id.in_(sorted(wanted)))
            )
            known.update({run_id: key for run_id, key in found})

        def resolve(table: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for row in rows:
                run = row.get("run_id")
                if run is None and table in NULLABLE_RUN:
                    out.append(row)
                    continue
                key = known.get(run) if run is not None else None
                if key is None:
                    if table in NULLABLE_RUN:
                        out.append({**row, "run_id": None})
                        continue
                    lost.append((table, run))
                    continue
                out.append({**row, "run_id": key})
            return out

        return resolve

    def _upsert(self, connection: Connection, table_name: str, counters: tuple[str, ...]) -> Any:
        table = self._tables[table_name]
        dialect = connection.dialect.name
        module: Any = postgresql if dialect == "postgresql" else sqlite
        statement = module.insert(table)
        keys = [column.name for column in table.primary_key.columns]
        return statement.on_conflict_do_update(
            index_elements=keys,
            set_={name: table.c[name] + statement.excluded[name] for name in counters},
        )


def _aggregate(rows: list[dict[str, Any]], counters: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows with the same key summed into one (one upsert may not touch a row twice), sorted
    by key so that concurrent writers lock rows in the same order (no deadlock)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(v for k, v in row.items() if k not in counters)
        if key in merged:
            for name in counters:
                merged[key][name] += row[name]
        else:
            merged[key] = dict(row)
    return [merged[key] for key in sorted(merged)]


def _retryable(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    return any(
        word in text for word in ("locked", "busy", "deadlock", "could not serialize", "connection")
    )


_OPEN: weakref.WeakSet[BatchWriter] = weakref.WeakSet()


@atexit.register
def _close_open_writers() -> None:
    """At interpreter exit, write what is still queued (the writer thread is a daemon)."""
    for writer in list(_OPEN):
        try:
            writer.close(timeout=10.0)
        except Exception:  # pragma: no cover - best effort at exit
            logger.exception("workflow database: closing the writer at exit failed")
