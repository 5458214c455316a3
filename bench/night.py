"""A whole night on the simulated beamline: wall time and beamline time of N samples (default
384, a full FlexHCD dewar) through ``mxpresse`` from the sample queue, as ``bes night`` runs
them: embedded station (instant clock, small detector, default timing profile, SQLite
workflow database, LIMS served on loopback and written over HTTP), pins exchanged and the
next one prefetched.

Samples: the first N pins of the seeded random dewar (``--seed``, default 1: good, weak,
multiple and icy crystals, empty loops, missing pins, as the world builder mixes them).

Prints the samples per final state, the wall and beamline time, samples per beamline hour and
per wall second, wall seconds per sample, and the targets (the night within 10 min of wall
time on 2 cores; >= 24 samples per beamline hour). ``--compare-prefetch N``: also runs the
first N samples with and without prefetch (same seed) and prints the beamline-time ratio.

    python bench/night.py [--samples 384] [--seed 1] [--no-lims] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FULL_NIGHT = 384
"""A FlexHCD dewar: 24 Unipucks of 16 pins."""
WALL_TARGET_S = 600.0
RATE_TARGET_PER_H = 24.0


def run_night(
    samples: int, seed: int, data: Path, *, lims: bool, prefetch: bool, quiet: bool = False
) -> Any:
    from bes.station import open_station
    from bes.station.night import Night, plan_demo

    started = time.monotonic()
    with open_station(data_dir=data, clock="instant", seed=seed, no_lims=not lims) as station:
        opened = time.monotonic() - started
        progress = _Progress(samples, quiet)
        with Night(station, prefetch=prefetch, poll_s=0.05, on_report=progress) as night:
            entries = night.add(plan_demo(samples))
            report = night.run(entries, handle_signals=False)
        lims_counts = station.lims_counts()
    report.open_s = opened  # type: ignore[attr-defined]
    report.total_wall_s = time.monotonic() - started  # type: ignore[attr-defined]
    report.lims_counts = lims_counts  # type: ignore[attr-defined]
    return report


class _Progress:
    """One line every 10 % of the night."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
        self.quiet = quiet
        self.done = 0
        self.start = time.monotonic()

    def __call__(self, entry: Any, report: Any) -> None:
        self.done += 1
        step = max(self.total // 10, 1)
        if not self.quiet and (self.done % step == 0 or self.done == self.total):
            wall = time.monotonic() - self.start
            print(
                f"  {self.done:4d}/{self.total} samples, wall {wall:6.1f} s "
                f"({wall / self.done:.2f} s per sample)",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=FULL_NIGHT)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-lims", action="store_true", help="write to no LIMS")
    parser.add_argument("--keep", type=Path, default=None, help="keep the data in this folder")
    parser.add_argument(
        "--compare-prefetch",
        type=int,
        default=0,
        metavar="N",
        help="also run N samples with and without prefetch and print the ratio",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    data = args.keep or Path(tempfile.mkdtemp(prefix="bes-night-"))
    print(
        f"night: {args.samples} samples of the seed-{args.seed} dewar through mxpresse; "
        f"{os.cpu_count()} CPUs; data in {data}",
        flush=True,
    )
    cpu_start = time.process_time()
    try:
        report = run_night(args.samples, args.seed, data, lims=not args.no_lims, prefetch=True)
        cpu_s = time.process_time() - cpu_start
    finally:
        if args.keep is None:
            shutil.rmtree(data, ignore_errors=True)

    print("\nsamples per final state:")
    for name, count in report.counts().items():
        print(f"  {name:28} {count:4d}")
    lost = [e for e in report.entries if e.state.name not in ("DONE", "FAILED", "SKIPPED")]
    print(f"  {'not final (must be 0)':28} {len(lost):4d}")
    rate = report.samples_per_beamline_hour or 0.0
    wall = report.total_wall_s
    print(
        f"\nwall time: {wall:.1f} s in all ({report.open_s:.1f} s opening the station, "
        f"{report.wall_s:.1f} s running the queue); {wall / args.samples:.2f} s per sample; "
        f"{args.samples / wall:.3f} samples per wall second"
    )
    print(
        f"beamline time: {report.beamline_s / 3600:.2f} h; "
        f"{report.beamline_s / max(args.samples, 1):.1f} s per sample; "
        f"{rate:.1f} samples per beamline hour"
    )
    if report.lims_counts:
        total = sum(report.lims_counts.values())
        print(f"LIMS: {total} rows written over HTTP")
    cores = os.cpu_count() or 1
    print(
        f"CPU time of the process (every thread): {cpu_s:.1f} s; {cpu_s / args.samples:.2f} s "
        f"per sample; {cpu_s / max(wall, 1e-9):.2f} cores busy on average; with all {cores} "
        f"cores busy all the time a {FULL_NIGHT}-sample night would still take "
        f"{cpu_s / args.samples * FULL_NIGHT / cores / 60:.1f} min"
    )
    night_wall = wall * FULL_NIGHT / args.samples
    projected = "" if args.samples == FULL_NIGHT else f", projected from {args.samples} samples"
    print(
        f"\ntargets: {FULL_NIGHT}-sample night wall <= {WALL_TARGET_S / 60:.0f} min: "
        f"{'met' if night_wall <= WALL_TARGET_S else 'NOT met'} "
        f"({night_wall / 60:.1f} min{projected}); "
        f">= {RATE_TARGET_PER_H:.0f} samples per beamline hour: "
        f"{'met' if rate >= RATE_TARGET_PER_H else 'NOT met'} ({rate:.1f})"
    )
    if args.compare_prefetch:
        n = args.compare_prefetch
        times = {}
        for prefetch in (True, False):
            folder = Path(tempfile.mkdtemp(prefix="bes-night-"))
            try:
                part = run_night(
                    n, args.seed, folder, lims=not args.no_lims, prefetch=prefetch, quiet=True
                )
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            times[prefetch] = part.beamline_s
        print(
            f"\nprefetch, first {n} samples: beamline {times[True] / n:.1f} s per sample with, "
            f"{times[False] / n:.1f} s without: ratio {times[True] / times[False]:.3f}"
        )
    return 0 if not lost else 1


if __name__ == "__main__":
    sys.exit(main())
