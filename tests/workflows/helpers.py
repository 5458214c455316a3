"""Running the MX recipes end to end on a simulated beamline built from a sample sheet, and
scoring what they did against the simulator's truth (the world the tests may read)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bes.engine import (
    ListSubscriber,
    NodeEnded,
    RunContext,
    Subscriber,
    WorkflowResult,
    run_workflow,
)
from bes.hal import Beamline
from bes.hal.sample_changer import Location
from tests.conftest import make_sim_beamline

SAMPLE = "1:1"
FAST_COLLECTION = {"oscillation_deg": 1.0, "total_range_deg": 30.0}
"""Collections of 30 frames instead of the strategy's 1800 (rendering frames is what takes the
time here) where the collection itself is not what a test looks at."""


def rotation(x_deg: float, y_deg: float, z_deg: float) -> list[list[float]]:
    """Crystal orientation: rotations about x, then y, then z (sample frame). A crystal whose
    axes lie along the beam at the mesh's omega shows few reflections (a zone axis), so the
    sheets below tilt theirs, as crystals in a loop are."""
    ax, ay, az = np.deg2rad([x_deg, y_deg, z_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    matrix: list[list[float]] = (rz @ ry @ rx).tolist()
    return matrix


GOOD_PIN: dict[str, Any] = {
    "location": SAMPLE,
    "loop": {"centre_mm": [0.05, 0.12, -0.08], "size_um": [130.0, 110.0]},
    "crystals": [
        {
            "position_mm": [0.07, 0.133, -0.076],
            "size_um": [50.0, 45.0, 40.0],
            "orientation": rotation(30.0, 20.0, 10.0),
        }
    ],
}
"""A 50 um crystal diffracting to 2 A, off the loop's centre, the loop 0.15 mm off the axis."""


def sheet_beamline(*pins: Mapping[str, Any]) -> Beamline:
    """The simulated beamline (instant clock, small detector) with only these pins."""
    return make_sim_beamline(world={"sheet": {"fill": "missing", "pins": list(pins)}})


@dataclass
class MxRun:
    """One recipe run: the engine's result, its events and the sample's summary."""

    result: WorkflowResult
    events: ListSubscriber

    @property
    def summary(self) -> dict[str, Any]:
        summary = self.result.outputs.get("summary")
        assert isinstance(summary, dict), f"no summary: {self.result.status} {self.result.error}"
        return summary

    def failed_nodes(self) -> list[str]:
        return [e.node_id for e in self.events.of_type(NodeEnded) if e.status == "failed"]


def run_mx(
    beamline: Beamline,
    recipe: str,
    data_root: Path,
    *,
    subscribers: Sequence[Subscriber] = (),
    **inputs: Any,
) -> MxRun:
    """Run ``recipe`` on ``beamline`` with ``inputs``, files below ``data_root``."""
    events = ListSubscriber()
    result = run_workflow(
        recipe,
        {"data_root": str(data_root), **inputs},
        RunContext(beamline=beamline),
        subscribers=[events, *subscribers],
    )
    return MxRun(result, events)


def crystal_truth(beamline: Beamline, location: str = SAMPLE) -> list[tuple[float, float, float]]:
    """Sample-frame centres (mm) of the crystals the simulator put on the pin."""
    pin = beamline.extras["world"].pins[Location.parse(location)]
    return [tuple(c.position_mm) for c in pin.crystals]


def centring_error_um(positions: Mapping[str, float], crystal_mm: Sequence[float]) -> float:
    """3D distance (um) between the crystal centre and the point of the rotation axis in the
    beam with the goniometer at ``positions``: the crystal at sample-frame (a, b, c) is centred
    when phiy = -a, sampx = -b, sampy = -c (docs/architecture.md, Geometry; phiz = 0)."""
    a, b, c = crystal_mm
    at = (positions["phiy"], positions["sampx"], positions["sampy"])
    return 1000.0 * math.dist(at, (-a, -b, -c))


def files_named(root: Path, prefix: str, suffix: str = "_master.h5") -> list[Path]:
    """Files below ``root`` whose names start with ``prefix`` and end with ``suffix``."""
    return sorted(p for p in root.rglob(f"{prefix}*{suffix}") if p.is_file())


def file_stats(root: Path) -> dict[Path, tuple[int, int]]:
    """(mtime_ns, size) of every file below ``root``."""
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


def run_number(master: Path) -> int:
    """``dc-1-1_3_master.h5`` -> 3."""
    return int(master.name.removesuffix("_master.h5").rsplit("_", 1)[1])
