"""How tasks report metadata (``BesTask.report`` -> MetadataReported) and which reported
items fill the run summary."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bes.engine import ListSubscriber, MetadataReported, RunContext, run_workflow
from bes.engine.registry import DEFAULT_REGISTRY
from bes.record.database import Database
from bes.record.recorder import Recorder
from bes.record.schema import MetadataItem, RunSummary
from bes.record.summary import RunTally, duration_bin, normalise_reason
from bes.tasks.base import BesTask
from tests.engine.builders import graph, link

REGISTRY = DEFAULT_REGISTRY.with_packages(__name__)


class Measure(BesTask, optional_input_names=["size_um"], output_names=["size_um", "found"]):
    """Reports what a crystal-finding step would."""

    def run(self) -> None:
        size = float(self.input("size_um", 42.0))
        self.report("crystal_size_um", size, "um")
        self.report("max_score", 17.5)
        self.report("resolution_a", 0.18, "nm")  # wrong unit: stored, not summarised
        self.report("space_group", "P212121")
        self.report("reason", "crystal big enough")
        self.outputs.size_um = size
        self.outputs.found = size > 10


class Collect(BesTask, input_names=["size_um"], output_names=["dose_mgy"]):
    def run(self) -> None:
        self.context.report("dose_mgy", 4.5, "MGy")
        self.report("outcome", "collected")
        self.outputs.dose_mgy = 4.5


class BadKey(BesTask, output_names=["x"]):
    def run(self) -> None:
        self.report("", 1)


def step(node_id: str, task: type[BesTask]) -> dict[str, object]:
    return {"id": node_id, "task_type": "class", "task_identifier": f"{__name__}.{task.__name__}"}


def two_steps() -> dict[str, object]:
    return graph(
        "two_steps",
        [step("measure", Measure), step("collect", Collect)],
        [link("measure", "collect", "size_um", found=True)],
    )


def test_a_task_reports_metadata_as_an_engine_event_of_its_node() -> None:
    events = ListSubscriber()

    result = run_workflow(two_steps(), registry=REGISTRY, subscribers=[events])

    assert result.ok
    reported = events.of_type(MetadataReported)
    assert [(e.node_id, e.execution, e.key, e.value, e.unit) for e in reported] == [
        ("measure", 1, "crystal_size_um", 42.0, "um"),
        ("measure", 1, "max_score", 17.5, None),
        ("measure", 1, "resolution_a", 0.18, "nm"),
        ("measure", 1, "space_group", "P212121", None),
        ("measure", 1, "reason", "crystal big enough", None),
        ("collect", 1, "dose_mgy", 4.5, "MGy"),
        ("collect", 1, "outcome", "collected", None),
    ]
    kinds = events.kinds()
    assert kinds.index("metadata_reported") < kinds.index("node_ended")


def test_reporting_outside_a_run_does_nothing_and_a_bad_key_fails_the_task() -> None:
    Measure().run()  # no context: nothing to report to, no error
    RunContext().report("max_score", 1.0)
    with pytest.raises(ValueError, match="metadata unit of 'x' must be None or a string"):
        RunContext().report("x", 1.0, "a-very-long-unit-name")

    result = run_workflow(graph("bad", [step("bad", BadKey)], []), registry=REGISTRY)

    assert result.status == "failed"
    assert "metadata key must be a non-empty string" in (
        result.error.message if result.error else ""
    )


def test_well_known_keys_fill_the_run_summary(database: Database) -> None:
    with Recorder(database, beamline="BL-1") as recorder:
        result = run_workflow(two_steps(), context=RunContext(recorder=recorder), registry=REGISTRY)
    with database.engine.connect() as connection:
        summary = connection.execute(select(RunSummary.__table__)).mappings().one()
        items = connection.execute(select(MetadataItem.__table__)).mappings().all()

    assert result.ok
    assert summary["crystal_size_um"] == 42.0
    assert summary["max_score"] == 17.5
    assert summary["resolution_a"] is None  # reported in nm: not the summary's unit
    assert summary["dose_mgy"] == 4.5
    assert summary["space_group"] == "P212121"
    assert (summary["outcome"], summary["success"], summary["reason"]) == ("collected", True, None)
    assert {(i["key"], i["unit"], i["value_num"]) for i in items} >= {
        ("resolution_a", "nm", 0.18),
        ("space_group", None, None),
    }


def test_tally_rules() -> None:
    tally = RunTally()
    tally.metadata("success", False, None)
    tally.metadata("reason", "no spots in 12 of 12 images", None)
    tally.node("mesh", "finished", 3.0)
    tally.decision("mesh", "collect", False)

    summary = tally.summary(
        run_id=1,
        start_time=86400.0 * 365 + 6 * 3600,
        end_time=86400.0 * 365 + 6 * 3600 + 10,
        wall_s=10.0,
        beamline_s=None,
        recipe="r",
        beamline=None,
        session=None,
        sample=None,
        status="finished",
        error_node=None,
        error_text=None,
    )

    assert (summary["day"], summary["night"]) == ("1971-01-01", "1970-12-31")
    assert summary["success"] is False
    assert summary["reason"] == "no spots in # of # images"
    assert tally.step_rows("1971-01-01", None, "r")[1]["period"] == "1971-01"
    assert normalise_reason("a 1.5e-3 b\nsecond line") == "a # b"
    assert [duration_bin(s) for s in (0.0, 1e-3, 0.00126, 1.0, 1e9)] == [0, 0, 1, 30, 79]


def test_the_summary_keeps_the_best_of_the_max_scores_a_run_reports() -> None:
    """One max_score per mesh: the run's is the best of them, whichever mesh came last."""
    tally = RunTally()
    for score in (42.0, 7.5):
        tally.metadata("max_score", score, None)
    tally.metadata("resolution_a", 2.5, "A")
    tally.metadata("resolution_a", 1.9, "A")

    assert tally.values["max_score"] == 42.0
    assert tally.values["resolution_a"] == 1.9  # other keys: the last value
