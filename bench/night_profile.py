"""Wall time of a simulated night: N samples of the default world through ``mxpresse``.

Opens the embedded station (simulated beamline with the small detector, ``clock =
instant``, SQLite workflow database, LIMS served on loopback) and runs the first N dewar
places of the seeded world one after the other, as ``bes run mxpresse --sample 1:1-N``
does. Prints the wall time of every sample, the wall time per node (phase) summed and per
sample, and the station's opening and closing. ``--cprofile FILE`` profiles every thread
the runs start (cProfile per thread, merged) and prints the top functions; ``py-spy record
-o out.svg -- python bench/night_profile.py`` profiles native code as well.

    python bench/night_profile.py [--samples 20] [--seed 1] [--first 1] [--cprofile out.prof]

Target (the lead's night benchmark): 384 samples in <= 10 min, i.e. <= ~1.3 s per sample.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

PINS_PER_PUCK = 16
TARGET_S_PER_SAMPLE = 600.0 / 384.0


def locations(n: int, first: int = 1) -> list[str]:
    """Dewar places ``first`` .. ``first + n - 1`` (1-based), puck by puck."""
    return [
        f"{i // PINS_PER_PUCK + 1}:{i % PINS_PER_PUCK + 1}" for i in range(first - 1, first - 1 + n)
    ]


class NodeWallTimes:
    """Engine subscriber: wall seconds per node id (executions summed) of the current run."""

    def __init__(self) -> None:
        self.per_node: dict[str, float] = defaultdict(float)
        self._started: dict[tuple[str, int], float] = {}
        self.last_end: float | None = None

    def reset(self) -> None:
        self.per_node = defaultdict(float)
        self._started = {}

    def on_event(self, event: Any) -> None:
        from bes.engine import NodeEnded, NodeStarted

        if isinstance(event, NodeStarted):
            self._started[(event.node_id, event.execution)] = time.perf_counter()
        elif isinstance(event, NodeEnded):
            start = self._started.pop((event.node_id, event.execution), None)
            if start is not None:
                self.per_node[event.node_id] += time.perf_counter() - start


class FrameCounter:
    """Clock listener: frames the goniometer triggered, per kind of scan, in the current run
    (mesh lines' points; rotations' triggers: reference wedges and collections)."""

    def __init__(self) -> None:
        self.mesh = 0
        self.rotation = 0

    def reset(self) -> None:
        self.mesh = self.rotation = 0

    def on_action(self, action: Any) -> None:
        if action.device != "goniometer":
            return
        if action.action == "raster_line":
            self.mesh += int(action.details.get("n_points", 0))
        elif action.action == "rotate":
            self.rotation += int(action.details.get("n_triggers", 0))


class ThreadProfiles:
    """cProfile in every thread started while it is installed; merged into one Stats."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_in_thread(self, *_: Any) -> None:
        import sys as _sys

        _sys.setprofile(None)
        profile = cProfile.Profile()
        with self._lock:
            self.profiles.append(profile)
        profile.enable()

    def install(self) -> None:
        threading.setprofile(self._start_in_thread)
        main = cProfile.Profile()
        self.profiles.append(main)
        main.enable()

    def uninstall(self) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]
        self.profiles[0].disable()

    def stats(self) -> pstats.Stats:
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            try:
                stats.add(profile)
            except TypeError:  # a thread that recorded nothing
                continue
        return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--first", type=int, default=1, help="first dewar place (1-based)")
    parser.add_argument("--seed", type=int, default=1, help="the world's seed")
    parser.add_argument("--cprofile", type=Path, help="profile every thread into this file")
    parser.add_argument("--top", type=int, default=40, help="functions shown with --cprofile")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)

    from bes.station import open_station

    tmp = Path(tempfile.mkdtemp(prefix="bes-night-profile-"))
    timer = NodeWallTimes()
    counter = FrameCounter()
    rows: list[tuple[str, str, float, float, dict[str, float]]] = []
    frames_mesh = frames_rotation = 0
    cpu_total = 0.0
    profiles = ThreadProfiles() if args.cprofile else None
    t_open = time.perf_counter()
    try:
        with open_station(data_dir=tmp, clock="instant", seed=args.seed) as station:
            open_s = time.perf_counter() - t_open
            station.beamline.clock.subscribe(counter.on_action)
            if profiles is not None:
                profiles.install()
            t_night = time.perf_counter()
            for loc in locations(args.samples, args.first):
                timer.reset()
                counter.reset()
                c0 = time.process_time()
                t0 = time.perf_counter()
                report = station.run(
                    "mxpresse",
                    {"sample": loc, "data_root": str(tmp), "unmount_at_end": False},
                    handle_signals=False,
                    subscribers=[timer],
                )
                wall = time.perf_counter() - t0
                cpu = time.process_time() - c0
                cpu_total += cpu
                summary = report.summary
                beamline = float(summary.get("beamline_time_s") or 0.0)
                frames = sum(int(c.get("n_frames", 0)) for c in summary.get("collections") or [])
                rows.append((loc, report.outcome, wall, beamline, dict(timer.per_node)))
                slowest = max(timer.per_node.items(), key=lambda kv: kv[1], default=("-", 0.0))
                frames_mesh += counter.mesh
                frames_rotation += counter.rotation
                print(
                    f"{loc:>6} {report.outcome:<18} wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
                    f"beamline {beamline:7.1f} s  frames: mesh {counter.mesh:4d}, "
                    f"rotation {counter.rotation:5d} (collected {frames:5d})  "
                    f"slowest {slowest[0]} {slowest[1]:.2f} s",
                    flush=True,
                )
            night_s = time.perf_counter() - t_night
            if profiles is not None:
                profiles.uninstall()
            t_close = time.perf_counter()
        close_s = time.perf_counter() - t_close
    finally:
        if args.keep:
            print(f"data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    n = len(rows)
    walls = [r[2] for r in rows]
    print()
    print(f"station open {open_s:.2f} s, close {close_s:.2f} s")
    print(
        f"{n} samples in {night_s:.1f} s: {night_s / n:.2f} s per sample "
        f"(mean {statistics.mean(walls):.2f}, median {statistics.median(walls):.2f}, "
        f"max {max(walls):.2f})"
    )
    print(
        f"process CPU {cpu_total:.1f} s: {cpu_total / n:.2f} s per sample "
        f"({cpu_total / night_s:.2f} cores busy on average)"
    )
    print(
        f"frames per sample: {frames_mesh / n:.0f} mesh, {frames_rotation / n:.0f} rotation; "
        f"{night_s / max(frames_mesh + frames_rotation, 1) * 1e3:.2f} ms of wall per frame"
    )
    by_outcome: dict[str, list[float]] = defaultdict(list)
    for _, outcome, wall, _, _ in rows:
        by_outcome[outcome].append(wall)
    for outcome, values in sorted(by_outcome.items()):
        print(f"  {outcome:<18} {len(values):3d} samples, mean {statistics.mean(values):.2f} s")

    totals: Counter[str] = Counter()
    for *_, nodes in rows:
        totals.update(nodes)
    in_nodes = sum(totals.values())
    print(f"\n{'node':<18} {'total s':>8} {'per sample s':>13} {'share %':>8}")
    for node, seconds in totals.most_common():
        print(f"{node:<18} {seconds:8.2f} {seconds / n:13.3f} {100 * seconds / night_s:8.1f}")
    outside = night_s - in_nodes
    print(
        f"{'(outside nodes)':<18} {outside:8.2f} {outside / n:13.3f} {100 * outside / night_s:8.1f}"
    )
    estimate = night_s / n * 384
    print(
        f"\n384 samples at this rate: {estimate / 60:.1f} min "
        f"(target <= 10 min, {TARGET_S_PER_SAMPLE:.2f} s per sample)"
    )

    if profiles is not None and args.cprofile is not None:
        stats = profiles.stats()
        stats.dump_stats(str(args.cprofile))
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
        print(f"profile written to {args.cprofile} (all threads started during the runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
