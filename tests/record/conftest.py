"""Workflow-database fixtures: a fresh SQLite file per test, PostgreSQL in a schema of its
own (skipped when no server answers on 127.0.0.1:5432)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bes.record.database import Database, open_database

PG_SERVER = "postgresql+psycopg://{user}@127.0.0.1:5432/test"
PG_USERS = ("postgres", "root")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'workflows.db'}"


@pytest.fixture
def database(sqlite_url: str) -> Iterator[Database]:
    """An empty workflow database at the newest schema, in a temporary SQLite file."""
    db = open_database(sqlite_url, upgrade=True)
    yield db
    db.dispose()


def _pg_server() -> tuple[str | None, str]:
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install '.[postgres]')"
    errors = []
    for user in PG_USERS:
        try:
            with psycopg.connect(
                host="127.0.0.1", port=5432, dbname="test", user=user, connect_timeout=2
            ):
                return PG_SERVER.format(user=user), ""
        except Exception as exc:  # no server, or no such role
            errors.append(f"{user}: {str(exc).strip().splitlines()[0]}")
    return None, "no PostgreSQL server on 127.0.0.1:5432 (database test): " + "; ".join(errors)


@pytest.fixture(scope="session")
def pg_server() -> str:
    url, why = _pg_server()
    if url is None:
        pytest.skip(why)
    return url


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A PostgreSQL URL whose tables live in a schema of this test's own, dropped after."""
    import psycopg

    schema = f"mxbes_test_{uuid.uuid4().hex[:12]}"
    dsn = pg_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{pg_server}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
