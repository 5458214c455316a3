"""Raw tables: runs, node executions, decisions, metadata, device actions, sample transitions,
queue events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def _id() -> sa.Column:
    return sa.Column("id", Id, primary_key=True)


def _fk(table: str, nullable: bool = False) -> sa.Column:
    return sa.Column(
        "run_id",
        Id,
        sa.ForeignKey("runs.id", name=f"fk_{table}_run_id_runs", ondelete="CASCADE"),
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "runs",
        _id(),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("recipe", sa.String(128), nullable=False),
        sa.Column("recipe_sha256", sa.String(64)),
        sa.Column("recipe_version", sa.String(32)),
        sa.Column("recipe_source", sa.Text()),
        sa.Column("bes_version", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("end_time", sa.Float()),
        sa.Column("wall_s", sa.Float()),
        sa.Column("start_beamline_s", sa.Float()),
        sa.Column("end_beamline_s", sa.Float()),
        sa.Column("beamline", sa.String(64)),
        sa.Column("host", sa.String(128)),
        sa.Column("user_name", sa.String(64)),
        sa.Column("sample", sa.String(128)),
        sa.Column("session", sa.String(64)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("inputs", Json),
        sa.Column("outputs", Json),
        sa.Column("node_executions", Json),
        sa.Column("error_node", sa.String(128)),
        sa.Column("error_kind", sa.String(32)),
        sa.Column("error_message", sa.Text()),
        sa.Column("error_traceback", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("run_id", name="uq_runs_run_id"),
    )
    op.create_index("ix_runs_start_time", "runs", ["start_time"])
    op.create_index("ix_runs_beamline_start_time", "runs", ["beamline", "start_time"])
    op.create_index("ix_runs_sample", "runs", ["sample"])
    op.create_index("ix_runs_status", "runs", ["status"])

    op.create_table(
        "node_executions",
        _id(),
        _fk("node_executions"),
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("task_identifier", sa.String(255), nullable=False),
        sa.Column("execution", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("end_time", sa.Float(), nullable=False),
        sa.Column("wall_s", sa.Float(), nullable=False),
        sa.Column("start_beamline_s", sa.Float()),
        sa.Column("beamline_s", sa.Float()),
        sa.Column("inputs", Json),
        sa.Column("outputs", Json),
        sa.Column("handled", sa.Boolean(), nullable=False),
        sa.Column("error_kind", sa.String(32)),
        sa.Column("error_message", sa.Text()),
        sa.Column("error_traceback", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_node_executions"),
    )
    op.create_index(
        "ix_node_executions_run_id_node_id_execution",
        "node_executions",
        ["run_id", "node_id", "execution"],
    )

    op.create_table(
        "decisions",
        _id(),
        _fk("decisions"),
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("execution", sa.Integer()),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("condition", sa.Text(), nullable=False),
        sa.Column("value", Json),
        sa.Column("taken", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("beamline_time_s", sa.Float()),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_run_id", "decisions", ["run_id"])

    op.create_table(
        "metadata_items",
        _id(),
        _fk("metadata_items"),
        sa.Column("node_id", sa.String(128)),
        sa.Column("execution", sa.Integer()),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", Json),
        sa.Column("value_num", sa.Float()),
        sa.Column("unit", sa.String(16)),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("beamline_time_s", sa.Float()),
        sa.PrimaryKeyConstraint("id", name="pk_metadata_items"),
    )
    op.create_index("ix_metadata_items_run_id", "metadata_items", ["run_id"])

    op.create_table(
        "device_actions",
        _id(),
        _fk("device_actions", nullable=True),
        sa.Column("node_id", sa.String(128)),
        sa.Column("execution", sa.Integer()),
        sa.Column("beamline", sa.String(64)),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("start_beamline_s", sa.Float(), nullable=False),
        sa.Column("beamline_s", sa.Float(), nullable=False),
        sa.Column("wall_s", sa.Float(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("details", Json),
        sa.PrimaryKeyConstraint("id", name="pk_device_actions"),
    )
    op.create_index("ix_device_actions_run_id", "device_actions", ["run_id"])
    op.create_index("ix_device_actions_beamline_time", "device_actions", ["beamline", "time"])

    op.create_table(
        "sample_transitions",
        _id(),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("beamline", sa.String(64)),
        sa.Column("sample", sa.String(128), nullable=False),
        sa.Column("from_state", sa.String(32)),
        sa.Column("to_state", sa.String(32), nullable=False),
        _fk("sample_transitions", nullable=True),
        sa.Column("reason", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_sample_transitions"),
    )
    op.create_index("ix_sample_transitions_sample_time", "sample_transitions", ["sample", "time"])
    op.create_index(
        "ix_sample_transitions_beamline_time", "sample_transitions", ["beamline", "time"]
    )

    op.create_table(
        "queue_events",
        _id(),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("beamline", sa.String(64)),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("item_id", sa.String(64)),
        sa.Column("sample", sa.String(128)),
        sa.Column("recipe", sa.String(128)),
        _fk("queue_events", nullable=True),
        sa.Column("position", sa.Integer()),
        sa.Column("detail", Json),
        sa.PrimaryKeyConstraint("id", name="pk_queue_events"),
    )
    op.create_index("ix_queue_events_beamline_time", "queue_events", ["beamline", "time"])
    op.create_index("ix_queue_events_item_id", "queue_events", ["item_id"])


def downgrade() -> None:
    for table in (
        "queue_events",
        "sample_transitions",
        "device_actions",
        "metadata_items",
        "decisions",
        "node_executions",
        "runs",
    ):
        op.drop_table(table)
