"""The LIMS database connection: SQLite (WAL, immediate write transactions) or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from lims.service.models import Base


def make_engine(database_url: str, schema: str | None = None) -> Engine:
    """An engine for ``database_url`` with the tables created (``schema``: PostgreSQL only)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=False
        )
        _sqlite_settings(engine)
    elif url.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {"connect_timeout": 5}
        if schema:
            connect_args["options"] = f"-csearch_path={schema}"
        engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        if schema:
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    else:
        raise ValueError(
            f"LIMS database {url.render_as_string(hide_password=True)!r} is not supported; "
            "use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB"
        )
    Base.metadata.create_all(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _sqlite_settings(engine: Engine) -> None:
    """WAL and foreign keys; every transaction starts IMMEDIATE so concurrent writers wait
    for each other (busy timeout) instead of failing on a stale read snapshot."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def get_db(request: Request) -> Iterator[Session]:
    """One session (one transaction) per request; rolled back unless the route commits."""
    with request.app.state.sessions() as session:
        yield session


Db = Annotated[Session, Depends(get_db)]
