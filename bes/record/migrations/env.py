"""Alembic environment of the workflow database. ``bes.record.migrate`` passes the connection;
``alembic -x url=...`` style use is not needed (run ``bes db upgrade --url URL``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from bes.record.schema import Base

config = context.config
target_metadata = Base.metadata  # for `alembic revision --autogenerate` by developers


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no connection given; run migrations with `bes db upgrade`")
        with create_engine(url).begin() as own:
            _run(own)
    else:
        _run(connection)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
