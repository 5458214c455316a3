"""A night on the embedded station: a seeded mix of good, weak, empty and faulty pins run from
the queue ends with every sample in a final state and the verdicts the simulator's truth
calls for; the pins are exchanged and prefetched; nothing is left mounted."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bes.queue import SampleState
from bes.station import open_station
from bes.station.night import Night, NightError, plan_demo
from tests.workflows.helpers import FAST_COLLECTION, GOOD_PIN, rotation

MIN_RESOLUTION_A = 3.5
NIGHT_PARAMETERS = {**FAST_COLLECTION, "min_resolution_a": MIN_RESOLUTION_A}

KINDS = {
    "good": 8,
    "weak": 4,
    "empty": 5,
    "pin_missing": 3,
    "load_fails": 2,
    "detector_error": 2,
}
"""24 pins: the night's seeded mix."""

EXPECTED: dict[str, tuple[str, tuple[str, ...] | None, tuple[str, ...]]] = {
    "good": ("DONE", ("collected",), ()),
    "weak": ("DONE", ("poor_diffraction", "no_diffraction"), ("reference images", "threshold")),
    "empty": ("DONE", ("no_diffraction",), ("mesh",)),
    "pin_missing": ("FAILED", None, ("PinMissingError",)),
    "load_fails": ("FAILED", None, ("LoadError",)),
    "detector_error": ("FAILED", None, ("DetectorError",)),
}
"""What each kind of pin must end as: state, outcomes, words of the reason. A 4 A crystal is
found by the meshes and stopped by the characterisation: worse than the threshold, or too few
spots in the reference images to measure it (both mean: not worth collecting)."""

WEAK_CRYSTAL = {
    "position_mm": [-0.02, -0.09, 0.065],
    "size_um": [60.0, 48.0, 36.0],
    "orientation": rotation(35.0, 20.0, 10.0),
    "resolution_limit_a": 4.0,
}
WEAK_LOOP = {"centre_mm": [-0.03, -0.1, 0.06], "size_um": [130.0, 110.0]}


def night_sheet(seed: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The simulator's sheet of a 24-pin night (puck 1 and half of puck 2) and the truth:
    location -> kind."""
    kinds = [kind for kind, n in KINDS.items() for _ in range(n)]
    np.random.default_rng(seed).shuffle(kinds)
    pins, truth = [], {}
    for i, kind in enumerate(kinds):
        location = f"{i // 16 + 1}:{i % 16 + 1}"
        truth[location] = kind
        if kind == "weak":
            pin: dict[str, Any] = {"loop": WEAK_LOOP, "crystals": [WEAK_CRYSTAL]}
        elif kind == "empty":
            pin = {"loop": GOOD_PIN["loop"], "crystals": []}
        else:
            pin = {"loop": GOOD_PIN["loop"], "crystals": GOOD_PIN["crystals"]}
            if kind != "good":
                pin["faults"] = [kind]
        pins.append({"location": location, **pin})
    return {"fill": "missing", "pins": pins}, truth


@pytest.mark.parametrize("seed", [7])
def test_a_24_sample_night_ends_with_every_sample_as_the_truth_says(
    tmp_path: Path, seed: int
) -> None:
    sheet, truth = night_sheet(seed)
    sheet_file = tmp_path / "world.json"
    sheet_file.write_text(json.dumps(sheet))
    data = tmp_path / "data"
    with open_station(data_dir=data, clock="instant", sample_sheet=sheet_file) as station:
        with Night(station, poll_s=0.05) as night:
            entries = night.add(plan_demo(24, parameters=NIGHT_PARAMETERS))
            report = night.run(entries, handle_signals=False)
        changer = station.beamline.sample_changer
        mounted_at_end = changer.mounted
        actions = [a.action for a in _changer_actions(station)]

    assert report.complete, report.unfinished
    assert len(report.entries) == 24
    for entry in report.entries:
        state, outcome, error = EXPECTED[truth[entry.location]]
        assert entry.state.name == state, (entry.location, truth[entry.location], entry.reason)
        if outcome is not None:
            assert entry.outcome in outcome, (entry.location, entry.reason)
        if error:
            assert any(word in (entry.reason or "") for word in error), (
                entry.location,
                entry.reason,
            )
        assert entry.attempts == 1
    counts = report.counts()
    assert counts["DONE collected"] == KINDS["good"]
    assert counts["FAILED"] == KINDS["pin_missing"] + KINDS["load_fails"] + KINDS["detector_error"]
    not_collected = counts.get("DONE no_diffraction", 0) + counts.get("DONE poor_diffraction", 0)
    assert not_collected == KINDS["empty"] + KINDS["weak"]
    assert mounted_at_end is None
    assert "exchange" in actions
    assert "prefetch" in actions
    assert report.samples_per_beamline_hour is not None and report.samples_per_beamline_hour > 24

    with sqlite3.connect(data / "workflows.db") as db:
        finals = db.execute(
            "SELECT sample, to_state FROM sample_transitions"
            " WHERE to_state IN ('DONE', 'FAILED', 'SKIPPED', 'ABORTED')"
        ).fetchall()
    assert sorted(sample for sample, _ in finals) == sorted(truth)  # one final state each


def test_a_bad_entry_queues_nothing(tmp_path: Path) -> None:
    station = open_station(data_dir=tmp_path, clock="instant", no_lims=True)
    with station, Night(station) as night:
        good = plan_demo(2)
        bad = plan_demo(1, parameters={"oscilation_deg": 0.1})
        with pytest.raises(NightError, match="oscilation_deg"):
            night.add([*good, *bad])
        assert night.queue.store.list() == []


def _changer_actions(station: Any) -> list[Any]:
    with sqlite3.connect(station.data_dir / "workflows.db") as db:
        rows = db.execute(
            "SELECT action FROM device_actions WHERE device = 'sample_changer' ORDER BY id"
        ).fetchall()
    return [_Action(a) for (a,) in rows]


class _Action:
    def __init__(self, action: str) -> None:
        self.action = action


def test_demo_plans_are_checked() -> None:
    with pytest.raises(NightError, match="1 to 384"):
        plan_demo(0)
    assert [e.location for e in plan_demo(18)][15:] == ["1:16", "2:1", "2:2"]
    assert SampleState.QUEUED.name == "QUEUED"
