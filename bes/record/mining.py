"""Mining the workflow database: standard questions answered as pandas DataFrames.

Every query is SQL on the summary tables (``run_summary``, ``step_stats``,
``decision_stats``), which the recorder keeps up as runs end, so that each answers within a
second on a million samples. Filtering by session reads the raw rows of that session's runs
instead (sessions are small); both ways give the same numbers. Dates are UTC days of the
runs' starts, inclusive.

    miner = Miner("sqlite:///bes-data/workflows.db")
    miner.success_per_recipe(Filters(beamline="SIM-MX1", since="2025-01-01"))
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Executable, Integer, and_, case, cast, func, select

from bes.record.database import Database, open_database
from bes.record.periods import parse_day, period_clause
from bes.record.schema import (
    Decision,
    DecisionStats,
    NodeExecution,
    RunSummary,
    StepStats,
)
from bes.record.summary import N_BINS, bin_edges, duration_bin

QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Filters:
    """Which runs to mine: all of them by default. ``since``/``until``: dates (inclusive)."""

    beamline: str | None = None
    recipe: str | None = None
    session: str | None = None
    since: dt.date | str | None = None
    until: dt.date | str | None = None

    def __post_init__(self) -> None:
        since = parse_day(self.since, "since")
        until = parse_day(self.until, "until")
        if since is not None and until is not None and since > until:
            raise ValueError(f"since ({since}) is after until ({until})")
        object.__setattr__(self, "since", since)
        object.__setattr__(self, "until", until)

    @property
    def first_day(self) -> dt.date | None:
        return self.since if isinstance(self.since, dt.date) else None

    @property
    def last_day(self) -> dt.date | None:
        return self.until if isinstance(self.until, dt.date) else None

    def describe(self) -> str:
        parts = [
            f"{name}={value}"
            for name in ("beamline", "recipe", "session", "since", "until")
            if (value := getattr(self, name)) is not None
        ]
        return ", ".join(parts) or "all runs"


@dataclass(frozen=True)
class Query:
    name: str
    title: str
    method: Callable[[Miner, Filters], pd.DataFrame]
    description: str = ""


@dataclass
class Miner:
    """Standard mining queries on one workflow database."""

    database: Database | str | None = None
    use_stats: bool = True
    """False: always read the raw rows (slower; the tests compare both ways)."""
    db: Database = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.database, Database):
            self.database.require_current()
            self.db = self.database
        else:
            self.db = open_database(self.database, must_exist=True)

    # -- per run ---------------------------------------------------------------------------

    def success_per_recipe(self, filters: Filters | None = None) -> pd.DataFrame:
        """Runs, successes, failures and aborts, success rate and mean time, per recipe."""
        s = RunSummary
        statement = (
            select(
                s.recipe,
                func.count().label("runs"),
                func.sum(cast(s.success, Integer)).label("succeeded"),
                func.sum(case((s.status == "failed", 1), else_=0)).label("failed"),
                func.sum(case((s.status == "aborted", 1), else_=0)).label("aborted"),
                func.avg(s.wall_s).label("mean_wall_s"),
                func.avg(s.beamline_s).label("mean_beamline_s"),
            )
            .where(*self._runs_where(filters))
            .group_by(s.recipe)
            .order_by(func.count().desc())
        )
        frame = self._frame(statement)
        frame.insert(3, "success_rate", _ratio(frame["succeeded"], frame["runs"]))
        return frame

    def failure_reasons(self, filters: Filters | None = None, limit: int = 20) -> pd.DataFrame:
        """Why runs did not succeed, most frequent first (numbers in messages are ``#``)."""
        s = RunSummary
        statement = (
            select(
                func.coalesce(s.reason, "(no reason reported)").label("reason"),
                s.outcome,
                s.error_node,
                func.count().label("runs"),
            )
            .where(s.success == False, *self._runs_where(filters))  # noqa: E712
            .group_by(s.reason, s.outcome, s.error_node)
            .order_by(func.count().desc(), s.reason)
        )
        frame = self._frame(statement)
        frame["share"] = _ratio(frame["runs"], pd.Series(frame["runs"].sum()))
        return frame.head(limit).reset_index(drop=True)

    def samples_per_night(self, filters: Filters | None = None) -> pd.DataFrame:
        """Per night (noon to noon UTC) and beamline: runs, samples, successes, hours from
        the first start to the last end, and samples (and runs) per hour."""
        s = RunSummary
        statement = (
            select(
                s.night,
                func.coalesce(s.beamline, "").label("beamline"),
                func.count().label("runs"),
                func.count(s.sample).label("samples"),
                func.sum(cast(s.success, Integer)).label("succeeded"),
                func.min(s.start_time).label("first_start"),
                func.max(s.end_time).label("last_end"),
            )
            .where(*self._runs_where(filters))
            .group_by(s.night, s.beamline)
            .order_by(s.night, s.beamline)
        )
        frame = self._frame(statement)
        hours = (frame["last_end"] - frame["first_start"]) / 3600.0
        frame["hours"] = hours
        frame["samples_per_hour"] = _ratio(frame["samples"], hours)
        frame["runs_per_hour"] = _ratio(frame["runs"], hours)
        for column in ("first_start", "last_end"):
            frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
        return frame

    def crystal_size_vs_resolution(
        self, filters: Filters | None = None, max_points: int = 20_000
    ) -> pd.DataFrame:
        """Crystal size (largest extent, um) against resolution (A), one point per run;
        an even sample of ``max_points`` runs when there are more."""
        return self._pairs(filters, RunSummary.crystal_size_um, RunSummary.resolution_a, max_points)

    def max_score_vs_resolution(
        self, filters: Filters | None = None, max_points: int = 20_000
    ) -> pd.DataFrame:
        """Best mesh score against resolution (A), one point per run (sampled as above)."""
        return self._pairs(filters, RunSummary.max_score, RunSummary.resolution_a, max_points)

    # -- per step --------------------------------------------------------------------------

    def success_per_step(self, filters: Filters | None = None) -> pd.DataFrame:
        """Executions of each step (node of a recipe), how many finished, success rate."""
        filters = filters or Filters()
        statement: Any
        if self._stats(filters):
            t = StepStats
            statement = (
                select(t.recipe, t.node_id, t.status, func.sum(t.n).label("n"))
                .where(*self._stats_where(t, filters))
                .group_by(t.recipe, t.node_id, t.status)
            )
        else:
            n, s = NodeExecution, RunSummary
            statement = (
                select(s.recipe, n.node_id, n.status, func.count().label("n"))
                .join(s, s.run_id == n.run_id)
                .where(*self._runs_where(filters))
                .group_by(s.recipe, n.node_id, n.status)
            )
        counts = self._frame(statement)
        columns = ["recipe", "node_id", "executions", "finished", "failed", "success_rate"]
        if counts.empty:
            return pd.DataFrame(columns=columns)
        counts["finished"] = np.where(counts["status"] == "finished", counts["n"], 0)
        grouped = counts.groupby(["recipe", "node_id"], as_index=False).agg(
            executions=("n", "sum"), finished=("finished", "sum")
        )
        grouped["failed"] = grouped["executions"] - grouped["finished"]
        grouped["success_rate"] = _ratio(grouped["finished"], grouped["executions"])
        return grouped[columns].sort_values(["recipe", "node_id"]).reset_index(drop=True)

    def step_time_histogram(self, filters: Filters | None = None) -> pd.DataFrame:
        """Histogram of step times (beamline time) of finished executions: recipe, node,
        bin, its lower and upper time (s), count and total time."""
        filters = filters or Filters()
        statement: Any
        if self._stats(filters):
            t = StepStats
            statement = (
                select(
                    t.recipe,
                    t.node_id,
                    t.bin,
                    func.sum(t.n).label("n"),
                    func.sum(t.total_s).label("total_s"),
                )
                .where(t.status == "finished", *self._stats_where(t, filters))
                .group_by(t.recipe, t.node_id, t.bin)
            )
            frame = self._frame(statement)
        else:
            n, s = NodeExecution, RunSummary
            statement = (
                select(
                    s.recipe,
                    n.node_id,
                    func.coalesce(n.beamline_s, n.wall_s).label("step_s"),
                )
                .join(s, s.run_id == n.run_id)
                .where(n.status == "finished", *self._runs_where(filters))
            )
            raw = self._frame(statement)
            raw["bin"] = [duration_bin(v) for v in raw["step_s"]]
            frame = raw.groupby(["recipe", "node_id", "bin"], as_index=False).agg(
                n=("step_s", "size"), total_s=("step_s", "sum")
            )
        frame = frame.sort_values(["recipe", "node_id", "bin"]).reset_index(drop=True)
        edges = [bin_edges(int(b)) for b in frame["bin"]]
        frame.insert(3, "low_s", [e[0] for e in edges])
        frame.insert(4, "high_s", [e[1] for e in edges])
        return frame

    def step_times(self, filters: Filters | None = None) -> pd.DataFrame:
        """Time per step (beamline time, finished executions): count, mean, 10 %, median
        and 90 % (the quantiles from the histogram: within one bin, about 12 %)."""
        histogram = self.step_time_histogram(filters)
        rows = []
        for (recipe, node_id), group in histogram.groupby(["recipe", "node_id"], sort=True):
            total = float(group["n"].sum())
            p10, p50, p90 = histogram_quantiles(group["bin"], group["n"], QUANTILES)
            rows.append(
                {
                    "recipe": recipe,
                    "node_id": node_id,
                    "executions": int(total),
                    "mean_s": float(group["total_s"].sum()) / total if total else math.nan,
                    "p10_s": p10,
                    "median_s": p50,
                    "p90_s": p90,
                }
            )
        columns = ["recipe", "node_id", "executions", "mean_s", "p10_s", "median_s", "p90_s"]
        return pd.DataFrame(rows, columns=columns)

    def decisions_per_branch(self, filters: Filters | None = None) -> pd.DataFrame:
        """Each conditional link: how often evaluated, how often taken, and the fraction."""
        filters = filters or Filters()
        statement: Any
        if self._stats(filters):
            t = DecisionStats
            statement = (
                select(
                    t.recipe,
                    t.node_id,
                    t.target,
                    func.sum(t.n_evaluated).label("evaluated"),
                    func.sum(t.n_taken).label("taken"),
                )
                .where(*self._stats_where(t, filters))
                .group_by(t.recipe, t.node_id, t.target)
            )
        else:
            d, s = Decision, RunSummary
            statement = (
                select(
                    s.recipe,
                    d.node_id,
                    d.target,
                    func.count().label("evaluated"),
                    func.sum(cast(d.taken, Integer)).label("taken"),
                )
                .join(s, s.run_id == d.run_id)
                .where(*self._runs_where(filters))
                .group_by(s.recipe, d.node_id, d.target)
            )
        frame = self._frame(statement.order_by("recipe", "node_id", "target"))
        frame["taken_fraction"] = _ratio(frame["taken"], frame["evaluated"])
        return frame

    # -- helpers ---------------------------------------------------------------------------

    def _stats(self, filters: Filters) -> bool:
        return self.use_stats and filters.session is None

    @staticmethod
    def _runs_where(filters: Filters | None) -> list[Any]:
        filters = filters or Filters()
        s = RunSummary
        where: list[Any] = []
        if filters.beamline is not None:
            where.append(s.beamline == filters.beamline)
        if filters.recipe is not None:
            where.append(s.recipe == filters.recipe)
        if filters.session is not None:
            where.append(s.session == filters.session)
        if filters.first_day is not None:
            where.append(s.day >= filters.first_day.isoformat())
        if filters.last_day is not None:
            where.append(s.day <= filters.last_day.isoformat())
        return where

    @staticmethod
    def _stats_where(table: Any, filters: Filters) -> list[Any]:
        where: list[Any] = [period_clause(table.period, filters.first_day, filters.last_day)]
        if filters.beamline is not None:
            where.append(table.beamline == filters.beamline)
        if filters.recipe is not None:
            where.append(table.recipe == filters.recipe)
        return where

    def _pairs(self, filters: Filters | None, x: Any, y: Any, max_points: int) -> pd.DataFrame:
        s = RunSummary
        where = [x.is_not(None), y.is_not(None), *self._runs_where(filters)]
        with self.db.engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(s).where(*where)).scalar()
        stride = max(1, math.ceil((count or 0) / max(1, max_points)))
        if stride > 1:
            where.append(s.run_id % stride == 0)
        statement = (
            select(s.run_id, s.recipe, s.beamline, x, y)
            .where(and_(*where))
            .order_by(s.run_id)
            .limit(max_points)
        )
        return self._frame(statement)

    def _frame(self, statement: Executable) -> pd.DataFrame:
        with self.db.engine.connect() as connection:
            result = connection.execute(statement)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def histogram_quantiles(
    bins: Sequence[int] | pd.Series, counts: Sequence[float] | pd.Series, qs: Sequence[float]
) -> list[float]:
    """Quantiles of step times from a log-binned histogram, interpolated in log time within
    the bin where the cumulative count crosses each quantile."""
    order = np.argsort(np.asarray(bins))
    b = np.asarray(bins)[order].astype(int)
    n = np.asarray(counts, dtype=float)[order]
    total = n.sum()
    if total <= 0:
        return [math.nan for _ in qs]
    cumulative = np.cumsum(n)
    out = []
    for q in qs:
        target = q * total
        i = int(np.searchsorted(cumulative, target, side="left"))
        i = min(i, len(b) - 1)
        before = cumulative[i - 1] if i > 0 else 0.0
        fraction = (target - before) / n[i] if n[i] else 0.0
        low, high = bin_edges(int(b[i]))
        if b[i] in (0, N_BINS - 1):  # open-ended bins: no interpolation
            out.append(low if b[i] else high)
            continue
        out.append(float(low * (high / low) ** min(max(fraction, 0.0), 1.0)))
    return out


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    num = pd.to_numeric(numerator, errors="coerce").astype(float)
    den = pd.to_numeric(denominator, errors="coerce").astype(float)
    if len(den) == 1 and len(num) != 1:
        den = pd.Series([float(den.iloc[0])] * len(num), index=num.index)
    return num.div(den.where(den > 0))


STANDARD_QUERIES: dict[str, Query] = {
    query.name: query
    for query in (
        Query("success_per_recipe", "Success rate per recipe", Miner.success_per_recipe),
        Query("success_per_step", "Success rate per step", Miner.success_per_step),
        Query("step_times", "Time per step (beamline time)", Miner.step_times),
        Query("failure_reasons", "Reasons of failure, ranked", Miner.failure_reasons),
        Query(
            "crystal_size_vs_resolution",
            "Crystal size vs resolution",
            Miner.crystal_size_vs_resolution,
        ),
        Query("max_score_vs_resolution", "Max score vs resolution", Miner.max_score_vs_resolution),
        Query("samples_per_night", "Samples per hour, per night", Miner.samples_per_night),
        Query("decisions_per_branch", "Decisions taken per branch", Miner.decisions_per_branch),
    )
}
"""The questions ``bes mine`` answers, in report order."""
