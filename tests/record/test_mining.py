"""Mining: the standard queries on a small recorded history. The summary-table answers must
equal those computed from the raw rows, for every filter; date ranges cross months."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from bes.record.mining import STANDARD_QUERIES, Filters, Miner, histogram_quantiles
from bes.record.periods import covering
from bes.record.recorder import Recorder
from bes.record.summary import bin_edges, duration_bin
from bes.record.synthetic import run_events

FIRST_DAY = dt.date(2024, 1, 20)
DAYS = 45
"""2024-01-20 .. 2024-03-04: a part of January, all of February, a part of March."""


def history() -> Iterator[tuple[str, dict[str, object]]]:
    """(run id, run_events keywords) for 180 runs: two beamlines, two recipes, a session per
    beamline and day, failures, crystals with sizes and resolutions."""
    rng = np.random.default_rng(7)
    for index in range(180):
        day = FIRST_DAY + dt.timedelta(days=index % DAYS)
        beamline = ("BL-A", "BL-B")[index % 2]
        recipe = ("mxpresse", "screening")[(index // 2) % 2]
        start = calendar.timegm(day.timetuple()) + 20 * 3600 + index * 60
        size = float(rng.uniform(10, 150))
        yield (
            f"run-{index:03d}",
            {
                "workflow": recipe,
                "nodes": 3 if recipe == "mxpresse" else 2,
                "start": float(start),
                "step_s": float(rng.choice([0.5, 5.0, 60.0])),
                "fail_at": 1 if index % 9 == 0 else None,
                "inputs": {
                    "beamline": beamline,
                    "sessionId": f"{beamline}-{day.isoformat()}",
                    "sample_id": f"s{index}",
                },
                "metadata": {
                    "crystal_size_um": (size, "um"),
                    "resolution_a": (1.2 + 300.0 / size / 10, "A"),
                    "max_score": (size / 3, None),
                },
            },
        )


@pytest.fixture(scope="module")
def miner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Miner]:
    from bes.record.database import open_database

    path = tmp_path_factory.mktemp("mining") / "history.db"
    database = open_database(f"sqlite:///{path}", upgrade=True)
    with Recorder(database, flush_on_end=False) as recorder:
        for run_id, options in history():
            for event in run_events(run_id, **options):  # type: ignore[arg-type]
                recorder.on_event(event)
    yield Miner(database)
    database.dispose()


@pytest.fixture(scope="module")
def raw(miner: Miner) -> Miner:
    return Miner(miner.db, use_stats=False)


FILTERS = [
    Filters(),
    Filters(beamline="BL-A"),
    Filters(recipe="screening"),
    Filters(since="2024-01-28", until="2024-03-02"),  # January end, February, March start
    Filters(since="2024-02-01", until="2024-02-29"),  # one whole month
    Filters(since="2024-02-10", until="2024-02-12", beamline="BL-B"),  # days in one month
    Filters(until="2024-01-31", recipe="mxpresse"),
    Filters(since="2024-03-01"),
]


def frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False, rtol=1e-9
    )


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: f.describe())
def test_summary_tables_give_the_raw_rows_answers(
    miner: Miner, raw: Miner, filters: Filters
) -> None:
    for name in ("success_per_step", "step_time_histogram", "step_times", "decisions_per_branch"):
        fast = getattr(miner, name)(filters)
        slow = getattr(raw, name)(filters)
        assert not slow.empty, name
        frames_equal(fast, slow)


def test_success_per_recipe_counts_runs(miner: Miner) -> None:
    frame = miner.success_per_recipe().set_index("recipe")
    failed = [i for i in range(180) if i % 9 == 0]

    assert frame.loc["mxpresse", "runs"] == 90 and frame.loc["screening", "runs"] == 90
    assert frame["failed"].sum() == len(failed)
    assert frame["succeeded"].sum() == 180 - len(failed)
    assert frame["success_rate"].between(0.8, 1.0).all()
    assert frame.loc["mxpresse", "mean_beamline_s"] > 0


def test_filters_select_runs_by_beamline_day_and_session(miner: Miner) -> None:
    def runs(filters: Filters) -> int:
        return int(miner.success_per_recipe(filters)["runs"].sum())

    assert runs(Filters(beamline="BL-A")) == 90
    assert runs(Filters(since="2024-02-01", until="2024-02-29")) == 4 * 29
    assert runs(Filters(session="BL-A-2024-01-20")) == 2
    assert runs(Filters(session="BL-A-2024-01-20", recipe="screening")) == 1  # runs 0 and 90
    assert runs(Filters(session="BL-A-2024-01-20", beamline="BL-B")) == 0
    session = miner.success_per_step(Filters(session="BL-B-2024-01-21"))
    assert session["executions"].sum() > 0


def test_failure_reasons_are_ranked_and_grouped_without_numbers(miner: Miner) -> None:
    frame = miner.failure_reasons()

    assert frame["reason"].tolist() == ["exception: Boom: at #"]
    assert frame["runs"].tolist() == [20]
    assert frame["share"].tolist() == [1.0]
    assert frame["error_node"].tolist() == ["step_1"]


def test_scatter_queries_sample_evenly(miner: Miner) -> None:
    all_points = miner.crystal_size_vs_resolution()
    some = miner.crystal_size_vs_resolution(max_points=50)

    assert len(all_points) == 180
    assert 40 <= len(some) <= 50
    assert some["run_id"].is_monotonic_increasing
    assert (some["resolution_a"] > 1.2).all()
    assert len(miner.max_score_vs_resolution(Filters(beamline="BL-B"))) == 90


def test_samples_per_night(miner: Miner) -> None:
    frame = miner.samples_per_night(Filters(beamline="BL-A"))

    assert frame["runs"].sum() == 90
    assert (frame["samples"] == frame["runs"]).all()
    assert frame["night"].is_monotonic_increasing
    assert (frame["hours"] >= 0).all()


def test_every_standard_query_answers_quickly_on_a_small_database(miner: Miner) -> None:
    for query in STANDARD_QUERIES.values():
        frame = query.method(miner, Filters(since="2024-02-01"))
        assert isinstance(frame, pd.DataFrame) and not frame.empty, query.name


def test_filters_are_checked() -> None:
    with pytest.raises(ValueError, match="since must be a date YYYY-MM-DD, got 'yesterday'"):
        Filters(since="yesterday")
    with pytest.raises(ValueError, match="is after until"):
        Filters(since="2024-02-02", until="2024-02-01")


def test_date_ranges_read_whole_months_and_edge_days() -> None:
    assert covering(None, None) == (("1970-01", "9999-12"), [])
    assert covering(dt.date(2024, 1, 28), dt.date(2024, 3, 2)) == (
        ("2024-02", "2024-02"),
        [("2024-01-28", "2024-01-31"), ("2024-03-01", "2024-03-02")],
    )
    assert covering(dt.date(2024, 2, 10), dt.date(2024, 2, 12)) == (
        None,
        [("2024-02-10", "2024-02-12")],
    )
    assert covering(dt.date(2023, 12, 1), dt.date(2024, 2, 29)) == (("2023-12", "2024-02"), [])


def test_quantiles_from_the_histogram_are_within_a_bin() -> None:
    times = np.random.default_rng(1).lognormal(np.log(30.0), 0.5, 5000)
    bins = pd.Series([duration_bin(t) for t in times]).value_counts().sort_index()

    estimates = histogram_quantiles(bins.index, bins.to_numpy(), (0.1, 0.5, 0.9))

    ratio = bin_edges(1)[1] / bin_edges(1)[0]
    for estimate, exact in zip(estimates, np.quantile(times, (0.1, 0.5, 0.9)), strict=True):
        assert exact / ratio <= estimate <= exact * ratio
