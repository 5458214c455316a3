"""Summaries for mining: run_summary, step_stats, decision_stats; filled from the raw rows of
the runs already recorded.

The backfill below is a frozen copy of the rules of ``bes.record.summary`` as of this
revision (migrations must not change when the code does).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHUNK = 2000
NUMERIC = {
    "crystal_size_um": "um",
    "crystal_volume_um3": "um3",
    "max_score": None,
    "resolution_a": "A",
    "dose_mgy": "MGy",
    "mosaicity_deg": "deg",
}
TEXT = ("space_group", "outcome", "reason")
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def upgrade() -> None:
    op.create_table(
        "run_summary",
        sa.Column(
            "run_id",
            Id,
            sa.ForeignKey("runs.id", name="fk_run_summary_run_id_runs", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("night", sa.String(10), nullable=False),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("end_time", sa.Float(), nullable=False),
        sa.Column("wall_s", sa.Float(), nullable=False),
        sa.Column("beamline_s", sa.Float()),
        sa.Column("recipe", sa.String(128), nullable=False),
        sa.Column("beamline", sa.String(64)),
        sa.Column("session", sa.String(64)),
        sa.Column("sample", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(64)),
        sa.Column("reason", sa.Text()),
        sa.Column("error_node", sa.String(128)),
        sa.Column("n_nodes", sa.Integer(), nullable=False),
        sa.Column("n_failed_nodes", sa.Integer(), nullable=False),
        sa.Column("n_decisions", sa.Integer(), nullable=False),
        sa.Column("n_metadata", sa.Integer(), nullable=False),
        sa.Column("n_device_actions", sa.Integer(), nullable=False),
        sa.Column("crystal_size_um", sa.Float()),
        sa.Column("crystal_volume_um3", sa.Float()),
        sa.Column("max_score", sa.Float()),
        sa.Column("resolution_a", sa.Float()),
        sa.Column("dose_mgy", sa.Float()),
        sa.Column("mosaicity_deg", sa.Float()),
        sa.Column("space_group", sa.String(16)),
        sa.PrimaryKeyConstraint("run_id", name="pk_run_summary"),
    )
    for columns in (
        ["day"],
        ["beamline", "day"],
        ["recipe", "day"],
        ["session"],
        ["success", "reason"],
    ):
        op.create_index(f"ix_run_summary_{'_'.join(columns)}", "run_summary", columns)
    # covering indexes: per-recipe and per-night counts read the index, not the table
    op.create_index(
        "ix_run_summary_recipe_cover",
        "run_summary",
        ["recipe", "status", "success", "wall_s", "beamline_s"],
    )
    op.create_index(
        "ix_run_summary_night_cover",
        "run_summary",
        ["night", "beamline", "start_time", "end_time", "success", "sample"],
    )
    op.create_table(
        "step_stats",
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("beamline", sa.String(64), nullable=False),
        sa.Column("recipe", sa.String(128), nullable=False),
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("total_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "period", "beamline", "recipe", "node_id", "status", "bin", name="pk_step_stats"
        ),
    )
    op.create_table(
        "decision_stats",
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("beamline", sa.String(64), nullable=False),
        sa.Column("recipe", sa.String(128), nullable=False),
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("n_evaluated", sa.Integer(), nullable=False),
        sa.Column("n_taken", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "period", "beamline", "recipe", "node_id", "target", name="pk_decision_stats"
        ),
    )
    _backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("decision_stats")
    op.drop_table("step_stats")
    op.drop_table("run_summary")


# -- backfill (frozen rules) -----------------------------------------------------------------


def _backfill(connection: sa.Connection) -> None:
    meta = sa.MetaData()
    tables = {
        name: sa.Table(name, meta, autoload_with=connection)
        for name in (
            "runs",
            "node_executions",
            "decisions",
            "metadata_items",
            "device_actions",
            "run_summary",
            "step_stats",
            "decision_stats",
        )
    }
    runs = tables["runs"]
    steps: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0.0])
    links: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    last = 0
    while True:
        chunk = connection.execute(
            sa.select(runs)
            .where(runs.c.id > last, runs.c.status != "running", runs.c.end_time.is_not(None))
            .order_by(runs.c.id)
            .limit(CHUNK)
        ).all()
        if not chunk:
            break
        last = chunk[-1].id
        ids = [run.id for run in chunk]
        nodes = _by_run(connection, tables["node_executions"], ids)
        decisions = _by_run(connection, tables["decisions"], ids)
        metadata = _by_run(connection, tables["metadata_items"], ids)
        devices = _by_run(connection, tables["device_actions"], ids)
        summaries = []
        for run in chunk:
            summaries.append(
                _summary(run, nodes[run.id], decisions[run.id], metadata[run.id], devices[run.id])
            )
            day = _day(run.start_time)
            for period in (day, day[:7]):
                for node in nodes[run.id]:
                    step_s = node.beamline_s if node.beamline_s is not None else node.wall_s
                    key = (period, run.beamline or "", run.recipe, node.node_id, node.status)
                    counts = steps[(*key, _bin(step_s))]
                    counts[0] += 1
                    counts[1] += step_s
                for decision in decisions[run.id]:
                    where = (period, run.beamline or "", run.recipe, decision.node_id)
                    link = links[(*where, decision.target)]
                    link[0] += 1
                    link[1] += int(bool(decision.taken))
        connection.execute(sa.insert(tables["run_summary"]), summaries)
    names = ("period", "beamline", "recipe", "node_id")
    if steps:
        connection.execute(
            sa.insert(tables["step_stats"]),
            [
                {**dict(zip((*names, "status", "bin"), key, strict=True)), "n": n, "total_s": s}
                for key, (n, s) in steps.items()
            ],
        )
    if links:
        connection.execute(
            sa.insert(tables["decision_stats"]),
            [
                {**dict(zip((*names, "target"), key, strict=True)), "n_evaluated": e, "n_taken": t}
                for key, (e, t) in links.items()
            ],
        )


def _by_run(connection: sa.Connection, table: sa.Table, ids: list[int]) -> dict[int, list[Any]]:
    rows: dict[int, list[Any]] = defaultdict(list)
    for row in connection.execute(
        sa.select(table).where(table.c.run_id.in_(ids)).order_by(table.c.id)
    ):
        rows[row.run_id].append(row)
    return rows


def _summary(
    run: Any, nodes: list[Any], decisions: list[Any], metadata: list[Any], devices: list[Any]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    success_reported = None
    for item in metadata:
        if item.key in NUMERIC and item.value_num is not None and not isinstance(item.value, str):
            if item.unit in (None, "", NUMERIC[item.key]):
                values[item.key] = item.value_num
        elif item.key in TEXT and item.value is not None:
            values[item.key] = str(item.value)
        elif item.key == "success" and isinstance(item.value, bool):
            success_reported = item.value
    success = run.status == "finished" and success_reported is not False
    if run.status != "finished":
        reason = f"{run.error_kind}: {run.error_message}" if run.error_kind else run.status
    else:
        reason = values.get("reason")
    beamline_s = (
        run.end_beamline_s - run.start_beamline_s
        if run.end_beamline_s is not None and run.start_beamline_s is not None
        else None
    )
    return {
        "run_id": run.id,
        "day": _day(run.start_time),
        "night": _day(run.start_time - 12 * 3600),
        "start_time": run.start_time,
        "end_time": run.end_time,
        "wall_s": run.wall_s if run.wall_s is not None else run.end_time - run.start_time,
        "beamline_s": beamline_s,
        "recipe": run.recipe,
        "beamline": run.beamline,
        "session": run.session,
        "sample": run.sample,
        "status": run.status,
        "success": success,
        "outcome": (values.get("outcome") or run.status)[:64],
        "reason": None if success else _reason(reason),
        "error_node": run.error_node,
        "n_nodes": len(nodes),
        "n_failed_nodes": sum(1 for node in nodes if node.status != "finished"),
        "n_decisions": len(decisions),
        "n_metadata": len(metadata),
        "n_device_actions": len(devices),
        **{key: values.get(key) for key in NUMERIC},
        "space_group": values.get("space_group"),
    }


def _day(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_s))


def _bin(seconds: float) -> int:
    if not seconds > 1e-3:
        return 0
    return min(79, math.floor(10 * math.log10(seconds / 1e-3)))


def _reason(text: str | None) -> str | None:
    if not text or not str(text).strip():
        return None
    return NUMBER.sub("#", str(text).strip().splitlines()[0])[:200] or None
