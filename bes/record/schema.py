"""The workflow database's tables (SQLAlchemy 2 models).

Raw facts, written as the engine reports them: ``runs``, ``node_executions``, ``decisions``,
``metadata_items``, ``device_actions``, ``sample_transitions``, ``queue_events``.
Summaries, maintained by the recorder when a run ends so that mining never scans the raw
rows of a million samples: ``run_summary`` (one narrow row per run), ``step_stats`` and
``decision_stats`` (counts per day, beamline, recipe and step).

Times: ``*_time`` are wall-clock seconds since the epoch (UTC); ``*_beamline_s`` and
``beamline_s`` are beamline-clock seconds (simulated time on a simulated beamline), ``wall_s``
wall-clock durations. Every change here needs a migration in ``bes/record/migrations``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Id = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit keys; plain INTEGER on SQLite, where only that is the rowid alias."""
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _run_fk(nullable: bool = False) -> Mapped[Any]:
    return mapped_column(Id, ForeignKey("runs.id", ondelete="CASCADE"), nullable=nullable)


class Run(Base):
    """One workflow run: which recipe, with what, where, for whom, and how it ended."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True)
    """The engine's run id (a uuid4 hex unless the caller chose one)."""
    recipe: Mapped[str] = mapped_column(String(128))
    recipe_sha256: Mapped[str | None] = mapped_column(String(64))
    recipe_version: Mapped[str | None] = mapped_column(String(32))
    recipe_source: Mapped[str | None] = mapped_column(Text)
    bes_version: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    """``running`` until it ends: ``finished``, ``failed`` or ``aborted``."""
    start_time: Mapped[float] = mapped_column(Float)
    end_time: Mapped[float | None] = mapped_column(Float)
    wall_s: Mapped[float | None] = mapped_column(Float)
    start_beamline_s: Mapped[float | None] = mapped_column(Float)
    end_beamline_s: Mapped[float | None] = mapped_column(Float)
    beamline: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(128))
    user_name: Mapped[str | None] = mapped_column(String(64))
    sample: Mapped[str | None] = mapped_column(String(128))
    session: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    inputs: Mapped[Any] = mapped_column(Json, nullable=True)
    outputs: Mapped[Any] = mapped_column(Json, nullable=True)
    node_executions: Mapped[Any] = mapped_column(Json, nullable=True)
    """{node id: how often it ran}."""
    error_node: Mapped[str | None] = mapped_column(String(128))
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_traceback: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(None, "start_time"),
        Index(None, "beamline", "start_time"),
        Index(None, "sample"),
        Index(None, "status"),
    )


class NodeExecution(Base):
    """One execution of one node (a loop runs a node many times: ``execution`` 1, 2, ...)."""

    __tablename__ = "node_executions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    run_id: Mapped[int] = _run_fk()
    node_id: Mapped[str] = mapped_column(String(128))
    task_identifier: Mapped[str] = mapped_column(String(255))
    execution: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    """``finished``, ``failed``, ``timeout`` or ``aborted``."""
    start_time: Mapped[float] = mapped_column(Float)
    end_time: Mapped[float] = mapped_column(Float)
    wall_s: Mapped[float] = mapped_column(Float)
    start_beamline_s: Mapped[float | None] = mapped_column(Float)
    beamline_s: Mapped[float | None] = mapped_column(Float)
    inputs: Mapped[Any] = mapped_column(Json, nullable=True)
    outputs: Mapped[Any] = mapped_column(Json, nullable=True)
    handled: Mapped[bool] = mapped_column(Boolean, default=False)
    """A failure that went on to an ``on_error`` handler."""
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_traceback: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "run_id", "node_id", "execution"),)


class Decision(Base):
    """One conditional link evaluated after a node: its condition, the value seen, taken or not."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    run_id: Mapped[int] = _run_fk()
    node_id: Mapped[str] = mapped_column(String(128))
    """The link's source node."""
    execution: Mapped[int | None] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(128))
    condition: Mapped[str] = mapped_column(Text)
    """The link's condition as text, e.g. ``done == False``."""
    value: Mapped[Any] = mapped_column(Json, nullable=True)
    """{output: value the node gave}."""
    taken: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text)
    """Why: the ``reason`` the node reported, else the condition against the value."""
    time: Mapped[float] = mapped_column(Float)
    beamline_time_s: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index(None, "run_id"),)


class MetadataItem(Base):
    """A value a step reported with its unit (crystal size, max score, resolution, dose ...)."""

    __tablename__ = "metadata_items"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    run_id: Mapped[int] = _run_fk()
    node_id: Mapped[str | None] = mapped_column(String(128))
    execution: Mapped[int | None] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[Any] = mapped_column(Json, nullable=True)
    value_num: Mapped[float | None] = mapped_column(Float)
    """The value as a number when it is one (booleans as 0/1), for SQL."""
    unit: Mapped[str | None] = mapped_column(String(16))
    time: Mapped[float] = mapped_column(Float)
    beamline_time_s: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index(None, "run_id"),)


class DeviceActionRow(Base):
    """One thing a device did (``bes.hal.DeviceAction``): beamline time taken, wall time cost."""

    __tablename__ = "device_actions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    run_id: Mapped[int | None] = _run_fk(nullable=True)
    """The run going on when it happened; None between runs (e.g. the queue mounting)."""
    node_id: Mapped[str | None] = mapped_column(String(128))
    execution: Mapped[int | None] = mapped_column(Integer)
    beamline: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    start_beamline_s: Mapped[float] = mapped_column(Float)
    beamline_s: Mapped[float] = mapped_column(Float)
    """Beamline time it took (``DeviceAction.duration_s``; simulated time on a simulator)."""
    wall_s: Mapped[float] = mapped_column(Float)
    time: Mapped[float] = mapped_column(Float)
    """Wall clock when it was reported (its end)."""
    details: Mapped[Any] = mapped_column(Json, nullable=True)

    __table_args__ = (Index(None, "run_id"), Index(None, "beamline", "time"))


class SampleTransition(Base):
    """A sample's state machine moved (QUEUED -> MOUNTING -> ... -> COLLECTED/FAILED/SKIPPED)."""

    __tablename__ = "sample_transitions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    time: Mapped[float] = mapped_column(Float)
    beamline: Mapped[str | None] = mapped_column(String(64))
    sample: Mapped[str] = mapped_column(String(128))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int | None] = _run_fk(nullable=True)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "sample", "time"), Index(None, "beamline", "time"))


class QueueEvent(Base):
    """What happened to the sample queue: an item added, moved, started, finished ...; paused."""

    __tablename__ = "queue_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    time: Mapped[float] = mapped_column(Float)
    beamline: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[str | None] = mapped_column(String(64))
    sample: Mapped[str | None] = mapped_column(String(128))
    recipe: Mapped[str | None] = mapped_column(String(128))
    run_id: Mapped[int | None] = _run_fk(nullable=True)
    position: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[Any] = mapped_column(Json, nullable=True)

    __table_args__ = (Index(None, "beamline", "time"), Index(None, "item_id"))


# -- summaries (revision 0002) ---------------------------------------------------------------


class RunSummary(Base):
    """One narrow row per ended run, written with its end: what mining reads."""

    __tablename__ = "run_summary"

    run_id: Mapped[int] = mapped_column(
        Id, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10))
    """UTC date of the run's start, ``YYYY-MM-DD``."""
    night: Mapped[str] = mapped_column(String(10))
    """The night it belongs to: the UTC date of (start - 12 h); a night runs noon to noon."""
    start_time: Mapped[float] = mapped_column(Float)
    end_time: Mapped[float] = mapped_column(Float)
    wall_s: Mapped[float] = mapped_column(Float)
    beamline_s: Mapped[float | None] = mapped_column(Float)
    recipe: Mapped[str] = mapped_column(String(128))
    beamline: Mapped[str | None] = mapped_column(String(64))
    session: Mapped[str | None] = mapped_column(String(64))
    sample: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    success: Mapped[bool] = mapped_column(Boolean)
    """Finished, and the recipe did not report ``success`` false."""
    outcome: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    """Why it did not succeed, numbers replaced by ``#`` so that alike failures group."""
    error_node: Mapped[str | None] = mapped_column(String(128))
    n_nodes: Mapped[int] = mapped_column(Integer)
    n_failed_nodes: Mapped[int] = mapped_column(Integer)
    n_decisions: Mapped[int] = mapped_column(Integer)
    n_metadata: Mapped[int] = mapped_column(Integer)
    n_device_actions: Mapped[int] = mapped_column(Integer)
    crystal_size_um: Mapped[float | None] = mapped_column(Float)
    crystal_volume_um3: Mapped[float | None] = mapped_column(Float)
    max_score: Mapped[float | None] = mapped_column(Float)
    resolution_a: Mapped[float | None] = mapped_column(Float)
    dose_mgy: Mapped[float | None] = mapped_column(Float)
    mosaicity_deg: Mapped[float | None] = mapped_column(Float)
    space_group: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        Index(None, "day"),
        Index(None, "beamline", "day"),
        Index(None, "recipe", "day"),
        Index(None, "session"),
        Index(None, "success", "reason"),
        # covering indexes: per-recipe and per-night counts read the index, not the table
        Index("ix_run_summary_recipe_cover", "recipe", "status", "success", "wall_s", "beamline_s"),
        Index(
            "ix_run_summary_night_cover",
            "night",
            "beamline",
            "start_time",
            "end_time",
            "success",
            "sample",
        ),
    )


PERIOD_DOC = """``YYYY-MM-DD`` (a day) or ``YYYY-MM`` (a month): every run counts in both, so
that a query over a long date range reads month rows and day rows only at its ends."""


class StepStats(Base):
    """How often each step ended how, and a histogram of its time, per period/beamline/recipe.

    ``bin``: step time (beamline time; wall time for runs without a beamline) in log bins,
    :data:`bes.record.summary.BINS_PER_DECADE` per decade from 1 ms (``duration_bin``).
    """

    __tablename__ = "step_stats"

    period: Mapped[str] = mapped_column(String(10), primary_key=True, doc=PERIOD_DOC)
    beamline: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipe: Mapped[str] = mapped_column(String(128), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    total_s: Mapped[float] = mapped_column(Float)


class DecisionStats(Base):
    """How often each conditional link was evaluated and taken, per period/beamline/recipe."""

    __tablename__ = "decision_stats"

    period: Mapped[str] = mapped_column(String(10), primary_key=True, doc=PERIOD_DOC)
    beamline: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipe: Mapped[str] = mapped_column(String(128), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    target: Mapped[str] = mapped_column(String(128), primary_key=True)
    n_evaluated: Mapped[int] = mapped_column(Integer)
    n_taken: Mapped[int] = mapped_column(Integer)


RAW_TABLES = (
    "runs",
    "node_executions",
    "decisions",
    "metadata_items",
    "device_actions",
    "sample_transitions",
    "queue_events",
)
SUMMARY_TABLES = ("run_summary", "step_stats", "decision_stats")
