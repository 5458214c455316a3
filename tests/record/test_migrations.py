"""Migrations: an empty database upgrades to head; a database at the first revision with runs
in it upgrades with its rows intact, and the summaries it gains are those the recorder
would have written."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, insert, inspect, select

from bes.engine import MetadataReported, RunContext, run_workflow
from bes.record import migrate
from bes.record.database import Database, SchemaOutOfDate, open_database, parse_url
from bes.record.recorder import Recorder
from bes.record.schema import RAW_TABLES, SUMMARY_TABLES
from bes.record.synthetic import run_events
from tests.conftest import make_sim_beamline


def test_migrations_are_linear_and_the_package_ships_them() -> None:
    assert migrate.revisions() == ["0001", "0002"]
    assert migrate.head_revision() == "0002"


def test_an_empty_database_upgrades_to_every_table(sqlite_url: str) -> None:
    database = Database(parse_url(sqlite_url))
    assert database.revision() is None
    with pytest.raises(SchemaOutOfDate, match="bes db upgrade"):
        database.require_current()

    assert database.upgrade() == "0002"

    tables = set(inspect(database.engine).get_table_names())
    assert tables >= {*RAW_TABLES, *SUMMARY_TABLES, "alembic_version"}
    database.require_current()
    assert database.upgrade() == "0002"  # idempotent


def record_history(database: Database) -> None:
    """A few real runs (one handled failure) and synthetic runs with summarised metadata."""
    beamline = make_sim_beamline()
    with Recorder(database, beamline=beamline) as recorder:
        context = RunContext(beamline=beamline, recorder=recorder)
        run_workflow("beamline_check", {"step_deg": 120.0, "sessionId": "s1"}, context)
        run_workflow("beamline_check", {"step_deg": -5.0}, context.fresh())
        for index in range(3):
            run_id = f"synthetic-{index}"
            for event in run_events(run_id, nodes=3, inputs={"sample_id": f"x{index}"}):
                recorder.on_event(event)
                if event.kind == "node_ended":
                    for key, value, unit in (
                        ("crystal_size_um", 20.0 + index, "um"),
                        ("resolution_a", 1.5 + index / 10, "A"),
                        ("space_group", "P43212", None),
                    ):
                        recorder.on_event(
                            MetadataReported(
                                run_id=run_id,
                                workflow="synthetic",
                                time=event.time,
                                node_id="step_0",
                                execution=1,
                                key=key,
                                value=value,
                                unit=unit,
                            )
                        )


def table_rows(database: Database, name: str) -> list[dict[str, Any]]:
    table = Table(name, MetaData(), autoload_with=database.engine)
    with database.engine.connect() as connection:
        statement = select(table).order_by(*table.primary_key.columns)
        return [dict(row) for row in connection.execute(statement).mappings()]


def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    def close(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
        return bool(x == y)

    return len(a) == len(b) and all(
        r.keys() == s.keys() and all(close(r[k], s[k]) for k in r)
        for r, s in zip(a, b, strict=True)
    )


def test_an_old_database_upgrades_with_data_intact(tmp_path: Path) -> None:
    current = open_database(f"sqlite:///{tmp_path / 'current.db'}", upgrade=True)
    record_history(current)
    old = Database(parse_url(f"sqlite:///{tmp_path / 'old.db'}"))
    old.upgrade("0001")
    assert old.revision() == "0001"
    assert not set(SUMMARY_TABLES) & set(inspect(old.engine).get_table_names())
    old_tables = MetaData()
    old_tables.reflect(old.engine)
    with old.engine.begin() as connection:
        for name in RAW_TABLES:
            rows = table_rows(current, name)
            if rows:
                connection.execute(insert(old_tables.tables[name]), rows)
    raw_before = {name: table_rows(old, name) for name in RAW_TABLES}
    assert len(raw_before["runs"]) == 5 and raw_before["node_executions"]

    assert old.upgrade() == "0002"

    for name in RAW_TABLES:
        assert table_rows(old, name) == raw_before[name], f"{name} changed in the upgrade"
    for name in SUMMARY_TABLES:
        assert same(table_rows(old, name), table_rows(current, name)), f"{name} differs"
    summaries = table_rows(old, "run_summary")
    assert [s["crystal_size_um"] for s in summaries[2:]] == [20.0, 21.0, 22.0]
    assert summaries[1]["success"] is False and summaries[1]["outcome"] == "fault"
    current.dispose()
    old.dispose()


def test_the_models_and_the_migrations_describe_the_same_schema(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from bes.record.schema import Base

    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []
