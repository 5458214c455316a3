"""Opening the workflow database: the URL chooses the back end.

- ``sqlite:///path/workflows.db`` (default ``bes-data/workflows.db`` under the working
  directory): embedded, one file, WAL journal so that readers never block the writer and a
  killed process leaves a consistent file (``synchronous=NORMAL``: a committed batch survives
  a process crash; the last ones may be lost only if the machine itself loses power).
- ``postgresql+psycopg://user@host/db``: several beamlines writing at once.

The schema is created and upgraded by the migrations (``bes db upgrade``, :meth:`upgrade`);
everything else checks that the database is at the code's revision and says what to do if not.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError

from bes.record import migrate

DEFAULT_DATA_DIR = Path("bes-data")
"""The embedded data directory, relative to the working directory."""
DEFAULT_DB_NAME = "workflows.db"
SQLITE_BUSY_TIMEOUT_S = 30.0
SUPPORTED = ("sqlite", "postgresql")


class DatabaseError(RuntimeError):
    """The workflow database cannot be used as asked; the message says why and what to do."""


class SchemaOutOfDate(DatabaseError):
    """The database's schema revision is not the one this code writes."""


def default_url(data_dir: str | Path | None = None) -> str:
    """``sqlite:///<data_dir>/workflows.db`` (absolute), data_dir default ``./bes-data``."""
    directory = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    return f"sqlite:///{(directory / DEFAULT_DB_NAME).resolve()}"


def dumps(value: Any) -> str:
    """JSON for the database: anything not JSON-native becomes its ``str``."""
    return json.dumps(value, default=str, allow_nan=False)


def dumps_lenient(value: Any) -> str:
    """:func:`dumps`, with NaN and infinities as strings (PostgreSQL's JSON refuses them)."""
    try:
        return dumps(value)
    except ValueError:  # NaN or infinity somewhere: PostgreSQL's JSON refuses them
        return json.dumps(_finite(value), default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass
class Database:
    """One workflow database: its URL, a reading engine, and writing engines on demand."""

    url: URL
    engine: Engine = field(init=False)
    """For reading (mining, ``bes runs``) and migrations."""

    def __post_init__(self) -> None:
        self.engine = make_engine(self.url)

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    @property
    def path(self) -> Path | None:
        """The file of a SQLite database."""
        return Path(self.url.database) if self.backend == "sqlite" and self.url.database else None

    def writer_engine(self) -> Engine:
        """A separate engine for a writer (on SQLite its transactions take the write lock at
        BEGIN, so that concurrent writers wait their turn instead of failing)."""
        return make_engine(self.url, writer=True)

    def revision(self) -> str | None:
        """The schema revision the database is at (None: empty or no database yet)."""
        if self.path is not None and not self.path.exists():
            return None
        try:
            return migrate.current_revision(self.engine)
        except OperationalError as exc:
            raise DatabaseError(
                f"cannot open the workflow database {self.display_url}: {exc.orig}"
            ) from None

    def upgrade(self, revision: str = "head") -> str | None:
        """Create or upgrade the schema (Alembic migrations); returns the new revision."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        migrate.upgrade(self.engine, revision)
        return self.revision()

    def require_current(self) -> None:
        """Raise :class:`SchemaOutOfDate` unless the schema is at the code's head revision."""
        current, head = self.revision(), migrate.head_revision()
        if current != head:
            state = "empty" if current is None else f"at revision {current}"
            raise SchemaOutOfDate(
                f"workflow database {self.display_url} is {state}; this mxbes writes revision "
                f"{head}: run `bes db upgrade --url {self.display_url}`"
            )

    @property
    def display_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(
    url: str | URL | None = None, *, upgrade: bool = False, must_exist: bool = False
) -> Database:
    """The database at ``url`` (default: the embedded SQLite file, :func:`default_url`).

    ``upgrade``: create or upgrade the schema first; otherwise it must already be at the
    code's revision. ``must_exist``: a SQLite file that does not exist is an error (readers),
    not a new empty database.
    """
    parsed = parse_url(url if url is not None else default_url())
    database = Database(parsed)
    path = database.path
    if must_exist and path is not None and not path.exists():
        raise DatabaseError(
            f"no workflow database at {path}; create it with `bes db upgrade --url "
            f"{database.display_url}` (or give --url)"
        )
    if upgrade:
        database.upgrade()
    else:
        database.require_current()
    return database


def parse_url(url: str | URL) -> URL:
    """Check that ``url`` names a back end mxbes supports and a file (SQLite)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception as exc:
        raise DatabaseError(f"not a database URL: {url!r} ({exc})") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise DatabaseError(
            f"unsupported database {backend!r} in {url!s}; use sqlite:///path/workflows.db or "
            "postgresql+psycopg://user@host/dbname"
        )
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise DatabaseError(
                "an in-memory SQLite database cannot be shared by the recorder's writer thread "
                "and its readers; give a file: sqlite:///path/workflows.db"
            )
        parsed = parsed.set(database=str(Path(database).expanduser().resolve()))
    return parsed


def make_engine(url: str | URL, *, writer: bool = False) -> Engine:
    """An engine with the settings the workflow database needs on each back end."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            json_serializer=dumps_lenient,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        _configure_sqlite(engine, writer=writer)
        return engine
    try:
        return create_engine(parsed, json_serializer=dumps_lenient, pool_pre_ping=True)
    except ImportError as exc:
        raise DatabaseError(
            f"{parsed.drivername} needs a driver that is not installed ({exc}); for "
            "postgresql+psycopg: pip install 'mxbes[postgres]'"
        ) from None


def _configure_sqlite(engine: Engine, *, writer: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below, explicitly
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        if not writer:
            cursor.execute("PRAGMA cache_size=-131072")  # 128 MiB page cache for mining
            cursor.execute("PRAGMA mmap_size=1073741824")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer takes the write lock at once: a deferred transaction that upgrades to a
        # write while another connection commits fails with "database is locked" at once.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")
