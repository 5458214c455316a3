"""Beamline time per sample for ``mxpresse`` on the simulated beamline, step by step.

Runs N samples one after the other through ``bes.engine.run_workflow("mxpresse", ...)`` on
one simulated beamline (instant clock, default timing profile, small detector); the sample
changer exchanges pins between samples (``unmount_at_end`` only for the last one). Every
node's beamline time comes from its NodeStarted/NodeEnded events; the software wait
counted inside a node (the hardware idling for analysis, see
bes/acquisition/software_time.py) is taken out of that node's step and shown on its own
line, ``analysis wait``. Prints mean/median/p90 seconds per step with its share of the
total, then samples per hour, the software-wait share and the targets (<= 2.5 min per
sample, software wait <= 5 %), with the MASSIF-1 anchor (about 6 min per sample,
shared/REFERENCE.md section 3).

Samples: a seeded sheet of good crystals (30-80 um, near the centre of random loops whose
centre is off the pin axis by up to 0.1 mm), or ``--world``: the first N places of the
default random dewar (seed 1: empty pins, weak, multiple, icy crystals, missing pins).

    python bench/sample_time.py [--samples 20] [--seed 1] [--world] [--actions] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STEPS = (
    "mount",
    "loop centring",
    "meshes",
    "analysis wait",
    "centring",
    "characterisation",
    "collection",
    "unmount",
    "other",
)
"""Rows of the breakdown; ``analysis wait`` is the software wait taken out of the others."""

WAIT = "analysis wait"

NODE_STEPS = {
    "mount": "mount",
    "centre_loop": "loop centring",
    "plan_mesh": "meshes",
    "mesh_first": "meshes",
    "mesh_second": "meshes",
    "attenuate": "meshes",
    "enlarge_mesh": "meshes",
    "centre_crystal": "centring",
    "move_to_crystal": "centring",
    "characterise": "characterisation",
    "collect": "collection",
    "unmount": "unmount",
    "prepare": "other",
    "summarise": "other",
}
"""mxpresse node id -> step; any other node (the fault handler) counts as ``other``."""

TARGET_MIN_PER_SAMPLE = 2.5
TARGET_WAIT_PERCENT = 5.0
MASSIF1_MIN_PER_SAMPLE = 6.0
"""ESRF MASSIF-1, fully automatic: about 6 min per sample (shared/REFERENCE.md section 3)."""

DEWAR_PUCKS = 24
PINS_PER_PUCK = 16


# -- samples ---------------------------------------------------------------------------


def good_crystal_sheet(n_samples: int, seed: int) -> dict[str, Any]:
    """A sample sheet of ``n_samples`` pins, each a random loop holding one good crystal.

    Loop: 200-400 um long, 0.7-1.0 as wide, random plane angle, centre off the pin axis by
    up to 0.1 mm per axis. Crystal: 30-80 um (the two other extents 0.6-1.0 and 0.4-0.8 of
    it), in the loop's film within a quarter of its half-size from the centre, default
    protein and quality (strength 1, 2 A, 0.2 deg mosaicity).
    """
    rng = np.random.RandomState(seed)
    pins = []
    for i in range(n_samples):
        puck, pin = divmod(i, PINS_PER_PUCK)
        centre = rng.uniform(-0.1, 0.1, size=3)
        length_um = rng.uniform(200.0, 400.0)
        width_um = length_um * rng.uniform(0.7, 1.0)
        plane_deg = rng.uniform(0.0, 180.0)
        size_um = rng.uniform(30.0, 80.0)
        extents = [size_um, size_um * rng.uniform(0.6, 1.0), size_um * rng.uniform(0.4, 0.8)]
        theta = np.deg2rad(plane_deg)  # loop axes as simulators.world_builder.loop_axes
        along = np.array([1.0, 0.0, 0.0])
        across = np.array([0.0, np.cos(theta), np.sin(theta)])
        normal = np.array([0.0, -np.sin(theta), np.cos(theta)])
        radius = 0.25 * np.sqrt(rng.uniform())
        phase = rng.uniform(0.0, 2.0 * np.pi)
        position = (
            centre
            + radius * np.cos(phase) * length_um * 5e-4 * along
            + radius * np.sin(phase) * width_um * 5e-4 * across
            + rng.uniform(-0.01, 0.01) * normal
        )
        pins.append(
            {
                "location": f"{puck + 1}:{pin + 1}",
                "loop": {
                    "centre_mm": [round(float(v), 4) for v in centre],
                    "size_um": [round(float(length_um), 1), round(float(width_um), 1)],
                    "plane_angle_deg": round(float(plane_deg), 1),
                },
                "crystals": [
                    {
                        "position_mm": [round(float(v), 4) for v in position],
                        "size_um": [round(float(v), 1) for v in extents],
                    }
                ],
            }
        )
    return {"fill": "missing", "pins": pins}


def locations(n_samples: int) -> list[str]:
    """The first ``n_samples`` dewar places, puck by puck."""
    return [f"{i // PINS_PER_PUCK + 1}:{i % PINS_PER_PUCK + 1}" for i in range(n_samples)]


def make_beamline(world: bool, n_samples: int, seed: int) -> Any:
    """The simulated beamline: instant clock, default profile, small detector; the random
    seed-1 dewar (``world``) or the good-crystal sheet."""
    from bes.config import SIMULATED_BEAMLINE
    from bes.hal import Beamline

    overrides: dict[str, dict[str, Any]] = {
        "clock": {"mode": "instant"},
        "detector": {"model": "small"},
    }
    if n_samples > DEWAR_PUCKS * PINS_PER_PUCK:
        raise ValueError(
            f"--samples {n_samples} exceeds the dewar ({DEWAR_PUCKS} x {PINS_PER_PUCK} pins)"
        )
    if not world:
        overrides["world"] = {"sheet": good_crystal_sheet(n_samples, seed)}
    return Beamline.from_config(SIMULATED_BEAMLINE, overrides=overrides)


# -- timing one run --------------------------------------------------------------------


@dataclass
class StepTimer:
    """Engine subscriber (and clock listener): beamline time per step of one run, with the
    software wait counted inside each node moved to ``analysis wait``."""

    context: Any
    steps: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEPS, 0.0))
    wait_by_step: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    actions: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    start_s: float | None = None
    end_s: float | None = None
    _node: str | None = None
    _node_start_s: float = 0.0
    _wait_start_s: float = 0.0

    def software_s(self) -> float:
        run = self.context.state.get("sample_run")
        return float(run.software.total_s) if run is not None else 0.0

    def on_event(self, event: Any) -> None:
        from bes.engine import NodeEnded, NodeStarted, WorkflowEnded, WorkflowStarted

        now = event.beamline_time_s
        if isinstance(event, WorkflowStarted):
            self.start_s = now
        elif isinstance(event, NodeStarted):
            self._node, self._node_start_s = event.node_id, now
            self._wait_start_s = self.software_s()
        elif isinstance(event, NodeEnded):
            step = NODE_STEPS.get(event.node_id, "other")
            wait_s = self.software_s() - self._wait_start_s
            self.steps[step] += now - self._node_start_s - wait_s
            self.steps[WAIT] += wait_s
            self.wait_by_step[step] += wait_s
            self._node = None
        elif isinstance(event, WorkflowEnded):
            self.end_s = now
            between_nodes_s = self.total_s - sum(self.steps.values())
            self.steps["other"] += between_nodes_s

    def on_action(self, action: Any) -> None:
        """Device actions by (step, device.action): where the device time of a step goes."""
        step = NODE_STEPS.get(self._node, "other") if self._node else "between nodes"
        self.actions[(step, f"{action.device}.{action.action}")] += action.duration_s

    @property
    def total_s(self) -> float:
        if self.start_s is None or self.end_s is None:
            return 0.0
        return self.end_s - self.start_s


@dataclass
class SampleTime:
    """One sample's run: beamline seconds per step, software wait, outcome, wall time."""

    location: str
    status: str
    outcome: str
    steps: dict[str, float]
    total_s: float
    software_wait_s: float
    software_wait_by_label_s: dict[str, float]
    wait_by_step_s: dict[str, float]
    actions: dict[tuple[str, str], float]
    wall_s: float
    summary_beamline_s: float | None


def run_sample(
    beamline: Any,
    location: str,
    data_root: Path,
    unmount: bool,
    parameters: dict[str, Any] | None = None,
) -> SampleTime:
    """One mxpresse run with a fresh RunContext; its beamline time split by step.
    ``parameters``: more recipe parameters (bes.tasks.parameters.MxParameters names)."""
    from bes.engine import Limits, RunContext, run_workflow

    context = RunContext(
        beamline=beamline, limits=Limits(task_timeout_s=600.0, workflow_timeout_s=3600.0)
    )
    timer = StepTimer(context)
    unsubscribe = beamline.clock.subscribe(timer.on_action)
    inputs = {
        **(parameters or {}),
        "sample": location,
        "data_root": str(data_root),
        "unmount_at_end": unmount,
    }
    start = time.perf_counter()
    try:
        result = run_workflow("mxpresse", inputs, context, subscribers=[timer])
    finally:
        unsubscribe()
    wall_s = time.perf_counter() - start
    summary = (result.outputs or {}).get("summary")
    run = context.state.get("sample_run")
    if summary is not None:  # the run summary's own account of the software wait
        by_label = dict(summary["software_wait_by_step_s"])
        wait_s = float(summary["software_wait_s"])
        summary_s: float | None = float(summary["beamline_time_s"])
    else:  # failed before the summary: the same account, read from the run's state
        by_label = dict(run.software.by_label) if run is not None else {}
        wait_s, summary_s = sum(by_label.values()), None
    if abs(wait_s - timer.steps[WAIT]) > 0.01:
        raise RuntimeError(
            f"sample {location}: software wait per node adds up to {timer.steps[WAIT]:.3f} s "
            f"but the run counted {wait_s:.3f} s; is some of it counted outside the nodes?"
        )
    outcome = (run.outcome if run is not None else None) or result.detail
    return SampleTime(
        location=location,
        status=result.status,
        outcome=str(outcome),
        steps=dict(timer.steps),
        total_s=timer.total_s,
        software_wait_s=wait_s,
        software_wait_by_label_s=by_label,
        wait_by_step_s=dict(timer.wait_by_step),
        actions=dict(timer.actions),
        wall_s=wall_s,
        summary_beamline_s=summary_s,
    )


# -- statistics and printing -----------------------------------------------------------


@dataclass(frozen=True)
class StepStats:
    step: str
    mean_s: float
    median_s: float
    p90_s: float
    share_percent: float


def breakdown(samples: list[SampleTime]) -> list[StepStats]:
    """Mean, median and 90th percentile per step; share = the step's part of the summed
    beamline time of all samples (the shares add up to 100 %)."""
    if not samples:
        raise ValueError("no samples to break down")
    grand_s = sum(s.total_s for s in samples)
    rows = []
    for step in STEPS:
        values = np.array([s.steps[step] for s in samples])
        rows.append(
            StepStats(
                step=step,
                mean_s=float(values.mean()),
                median_s=float(np.median(values)),
                p90_s=float(np.percentile(values, 90)),
                share_percent=100.0 * float(values.sum()) / grand_s if grand_s > 0 else 0.0,
            )
        )
    return rows


def print_per_sample(samples: list[SampleTime]) -> None:
    print(
        f"{'sample':>7} {'outcome':<18} {'beamline s':>10} {'wait s':>7} {'wall s':>7}  "
        "software wait by label (s)"
    )
    for s in samples:
        labels = ", ".join(f"{k} {v:.2f}" for k, v in s.software_wait_by_label_s.items())
        print(
            f"{s.location:>7} {s.outcome[:18]:<18} {s.total_s:10.1f} {s.software_wait_s:7.2f} "
            f"{s.wall_s:7.1f}  {labels}"
        )
    print()


def print_breakdown(samples: list[SampleTime]) -> list[StepStats]:
    rows = breakdown(samples)
    header = f"{'step':<18} {'mean s':>8} {'median s':>9} {'p90 s':>8} {'share %':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.step:<18} {r.mean_s:8.1f} {r.median_s:9.1f} {r.p90_s:8.1f} {r.share_percent:8.1f}"
        )
    print("-" * len(header))
    totals = np.array([s.total_s for s in samples])
    print(
        f"{'total':<18} {totals.mean():8.1f} {np.median(totals):9.1f} "
        f"{np.percentile(totals, 90):8.1f} {sum(r.share_percent for r in rows):8.1f}"
    )
    print()
    return rows


def print_wait_origin(samples: list[SampleTime]) -> None:
    """Where the software wait sits: per step (node) and per label of the run summary."""
    n = len(samples)
    by_step: Counter[str] = Counter()
    by_label: Counter[str] = Counter()
    for s in samples:
        by_step.update(s.wait_by_step_s)
        by_label.update(s.software_wait_by_label_s)
    steps = ", ".join(f"{k} {v / n:.2f}" for k, v in by_step.most_common() if v > 0)
    labels = ", ".join(f"{k} {v / n:.2f}" for k, v in by_label.most_common() if v > 0)
    print(f"analysis wait by step, mean s/sample: {steps or 'none'}")
    print(f"analysis wait by label (run summary), mean s/sample: {labels or 'none'}")


def print_actions(samples: list[SampleTime], top: int = 25) -> None:
    """Device time by step and action, mean s/sample (actions may overlap in time)."""
    n = len(samples)
    total: Counter[tuple[str, str]] = Counter()
    for s in samples:
        total.update(s.actions)
    print(f"\n{'step':<18} {'device.action':<32} {'mean s':>8}")
    for (step, action), seconds in total.most_common(top):
        print(f"{step:<18} {action:<32} {seconds / n:8.2f}")
    print("device seconds per sample; overlapping actions (detector and motion) both count")


def print_summary(samples: list[SampleTime]) -> dict[str, Any]:
    n = len(samples)
    total_s = sum(s.total_s for s in samples)
    mean_min = total_s / n / 60.0
    wait_percent = 100.0 * sum(s.steps[WAIT] for s in samples) / total_s if total_s else 0.0
    walls = [s.wall_s for s in samples]
    outcomes = Counter(s.outcome for s in samples)
    met_time = mean_min <= TARGET_MIN_PER_SAMPLE
    met_wait = wait_percent <= TARGET_WAIT_PERCENT
    print(f"beamline time per sample: {mean_min:.2f} min (mean of {n})")
    print(f"samples per beamline hour: {60.0 / mean_min:.1f}")
    print(f"software wait share: {wait_percent:.2f} %")
    print(
        f"wall time per sample: {statistics.mean(walls):.1f} s mean, "
        f"{statistics.median(walls):.1f} s median"
    )
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    print(
        f"target <= {TARGET_MIN_PER_SAMPLE:g} min per sample: "
        f"{'met' if met_time else 'NOT met'} ({mean_min:.2f} min)"
    )
    print(
        f"target software wait <= {TARGET_WAIT_PERCENT:g} %: "
        f"{'met' if met_wait else 'NOT met'} ({wait_percent:.2f} %)"
    )
    print(
        f"MASSIF-1 anchor ~{MASSIF1_MIN_PER_SAMPLE:g} min per sample: this run takes "
        f"{mean_min / MASSIF1_MIN_PER_SAMPLE:.2f} x of it "
        f"({MASSIF1_MIN_PER_SAMPLE / mean_min:.1f} x as many samples per hour)"
    )
    return {
        "min_per_sample": mean_min,
        "wait_percent": wait_percent,
        "met_time": met_time,
        "met_wait": met_wait,
    }


def save_figure(samples: list[SampleTime], path: Path) -> None:
    """Stacked bars: beamline time per sample and step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.4 * len(samples) + 2), 4.5))
    x = np.arange(len(samples))
    bottom = np.zeros(len(samples))
    for step in STEPS:
        values = np.array([s.steps[step] for s in samples])
        ax.bar(x, values, bottom=bottom, label=step)
        bottom += values
    ax.axhline(TARGET_MIN_PER_SAMPLE * 60.0, color="k", ls="--", lw=1, label="target 2.5 min")
    ax.set_xticks(x, [s.location for s in samples], rotation=90)
    ax.set_ylabel("beamline time (s)")
    ax.set_title("mxpresse: beamline time per sample")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_parameter(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` with VALUE as JSON when it parses (numbers, true, lists), else text."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip(), json.loads(value)
    except ValueError:
        return name.strip(), value


# -- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="samples to run (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the good-crystal sheet")
    parser.add_argument(
        "--world", action="store_true", help="the default random dewar (seed 1) instead"
    )
    parser.add_argument(
        "--unmount-each", action="store_true", help="unload every sample (no exchange)"
    )
    parser.add_argument(
        "--param",
        type=parse_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a recipe parameter for every sample, e.g. total_range_deg=90 (repeatable)",
    )
    parser.add_argument("--actions", action="store_true", help="device time by step and action")
    parser.add_argument("--figure", type=Path, help="save stacked bars per sample (PNG)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be >= 1")

    parameters = dict(args.param)
    beamline = make_beamline(args.world, args.samples, args.seed)
    data_root = Path(tempfile.mkdtemp(prefix="bes-sample-time-"))
    samples: list[SampleTime] = []
    try:
        places = locations(args.samples)
        for i, location in enumerate(places):
            last = i == len(places) - 1
            unmount = args.unmount_each or last
            samples.append(run_sample(beamline, location, data_root, unmount, parameters))
    finally:
        if args.keep:
            print(f"data kept in {data_root}")
        else:
            shutil.rmtree(data_root, ignore_errors=True)

    source = "default random dewar, seed 1" if args.world else f"good crystals, seed {args.seed}"
    print(
        f"mxpresse, {len(samples)} samples ({source}); instant clock, default timing profile, "
        f"small detector; {'unload + load' if args.unmount_each else 'pin exchange'} "
        "between samples" + "".join(f"; {k}={v}" for k, v in parameters.items()) + "\n"
    )
    print_per_sample(samples)
    print_breakdown(samples)
    print_wait_origin(samples)
    print()
    print_summary(samples)
    if args.actions:
        print_actions(samples)
    if args.figure:
        save_figure(samples, args.figure)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
