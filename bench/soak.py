"""A soak run: N samples (default 1,000) through ``mxpresse`` from the sample queue on one
embedded station (instant clock, LIMS over HTTP, SQLite workflow database), with random
device faults at a configured rate, run as nights of at most one dewar (384 pins) in one
process.

The simulator's ``FaultPlan`` draws, at every device opportunity (robot moves, goniometer
moves, detector arms, shutter openings), a fault of ``--kinds`` with chance ``--rate``,
from a seeded generator. Every pin holds a good crystal, so every sample that does not end
``DONE collected`` must name an injected fault. When a night ends for a person (a sample
changer that faults again after its reset, a full disk) an operator resets the robot and
resumes it (``bes night --resume``), as a person would.

Prints the parameters; samples per final state; faults fired per kind and failures per
error; records lost (queue file vs workflow database vs LIMS: must be 0); hangs (a sample
running longer than ``--hang-s`` of wall time: must be 0; its stacks are dumped and it is
skipped); resident memory at start, after the warm-up samples and at the end (growth after
the warm-up must stay under ``--rss-growth-mb``); wall time. Exit status 0 when all holds.

    python bench/soak.py [--samples 1000] [--rate 0.005] [--seed 1] [--no-lims] [--keep DIR]
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project's tests.reliability helpers
from tests.reliability.accounting import FAST_PARAMETERS as FAST  # noqa: E402

DEWAR = 384
"""A FlexHCD dewar: 24 Unipucks of 16 pins."""
ERROR_OF = {
    "pin_missing": "PinMissingError",
    "load_fails": "LoadError",
    "sample_changer_fault": "SampleChangerFault",
    "motor_timeout": "MotorTimeout",
    "detector_error": "DetectorError",
    "beam_loss": "BeamLossError",
    "disk_full": "DiskFullError",
}
WARM_UP = 50
"""Runs before the memory baseline (imports, the renderer's and databases' caches fill up
over the first tens of samples), at most half of the soak."""


@dataclass
class Watchdog:
    """Follows the queue's events: a sample whose attempt runs longer than ``hang_s`` of wall
    time is a hang (its stacks are dumped, then it is skipped); a queue waiting for a sample
    changer in FAULT is reset, as the person at the robot would."""

    night: Any
    hang_s: float
    dump: Path
    hangs: list[str] = field(default_factory=list)
    resets: int = 0
    started: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def on_event(self, event: dict[str, Any]) -> None:  # under the manager's lock: short
        if event["type"] != "sample":
            return
        if event["to_state"] == "MOUNTING":
            self.started[event["entry_id"]] = time.monotonic()
        elif event["to_state"] not in ("MOUNTED", "RUNNING", "UNMOUNTING"):
            self.started.pop(event["entry_id"], None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="soak-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _watch(self) -> None:
        manager = self.night.manager
        changer = self.night.station.beamline.sample_changer
        while not self._stop.wait(0.5):
            now = time.monotonic()
            for entry_id, since in list(self.started.items()):
                if now - since > self.hang_s:
                    self.started.pop(entry_id, None)
                    self.hangs.append(f"entry {entry_id}: {now - since:.0f} s")
                    with self.dump.open("a") as out:
                        out.write(f"\n--- hang of entry {entry_id} ---\n")
                        faulthandler.dump_traceback(out)
                    try:
                        manager.skip(entry_id, reason=f"soak watchdog: no end in {self.hang_s} s")
                    except Exception as exc:
                        print(f"watchdog: could not skip entry {entry_id}: {exc}", flush=True)
            status = manager.status()
            if (
                status["state"] == "PAUSED"
                and "sample changer" in (status["reason"] or "")
                and str(changer.state) == "FAULT"
            ):
                changer.reset()
                self.resets += 1


def soak(args: argparse.Namespace, data: Path) -> int:
    from bes.station import open_station
    from bes.station.night import Night, plan_demo
    from tests.reliability.accounting import (
        FINAL,
        LimsTally,
        Snapshot,
        check_books,
        check_lims,
        leftovers,
        read_books,
        rss_mb,
        sheet_of_good_pins,
    )
    from tests.workflows.helpers import GOOD_PIN

    before = Snapshot()
    rss: dict[str, float] = {"start": rss_mb()}
    locations = [f"{i // 16 + 1}:{i % 16 + 1}" for i in range(DEWAR)]
    sheet = sheet_of_good_pins(data / "world.json", locations, GOOD_PIN)
    faults = {"rate": args.rate, "seed": args.seed, "random_kinds": args.kinds}
    started = time.monotonic()
    station = open_station(
        data_dir=data / "data",
        clock="instant",
        sample_sheet=sheet,
        no_lims=args.no_lims,
        overrides={"faults": faults},
    )
    problems: list[str] = []
    sent: list[int] = [0]
    interventions: collections.Counter[str] = collections.Counter()
    done = [0]
    warm_up = max(1, min(WARM_UP, args.samples // 2))
    try:
        tally = LimsTally(station.lims) if station.lims is not None else None

        def on_report(entry: Any, report: Any) -> None:
            done[0] += 1
            now = rss_mb()
            rss["peak"] = max(rss.get("peak", 0.0), now)
            if done[0] == warm_up:
                rss["warm"] = now
            if done[0] % max(args.samples // 10, 1) == 0:
                wall = time.monotonic() - started
                print(f"  {done[0]:5d} runs, wall {wall:7.1f} s, RSS {now:.0f} MB", flush=True)

        night = Night(station, poll_s=0.02, on_report=on_report)
        watchdog = Watchdog(night, args.hang_s, data / "hangs.txt")
        try:
            night.manager.subscribe(watchdog.on_event)
            night.manager.subscribe(
                lambda event: sent.__setitem__(0, sent[0] + (event["type"] != "sample"))
            )
            watchdog.start()
            left = args.samples
            while left > 0:
                count = min(DEWAR, left)
                entries = night.add(plan_demo(count, parameters=FAST))
                report = night.run(entries, handle_signals=False)
                while not report.complete and sum(interventions.values()) < args.samples:
                    reason = report.queue_reason or ""
                    interventions[_why(reason)] += 1
                    changer = station.beamline.sample_changer
                    if str(changer.state) == "FAULT":
                        changer.reset()
                    report = night.run(entries, handle_signals=False)
                left -= count
        finally:
            watchdog.stop()
            night.close()
        rss["end"] = rss_mb()
        rss["peak"] = max(rss.get("peak", 0.0), rss["end"])
        wall = time.monotonic() - started
        if tally is not None and not tally.settle(60.0):
            problems.append(f"LIMS outbox not replayed: {tally.client.pending()} pending")
        if not station.recorder.flush(120.0):
            problems.append("the workflow database writer did not flush")
        books = read_books(station.data_dir)
        problems += check_books(books, queue_events=sent[0])
        if tally is not None:
            problems += check_lims(tally, books)
        dropped = station.recorder.stats.dropped
        fired = collections.Counter(kind for kind, _ in station.beamline.extras["faults"].fired)
        lims_counts = tally.client.counts() if tally is not None else {}
    finally:
        station.close()
    problems += [f"left behind: {item}" for item in leftovers(before)]

    entries = books.entries
    states = collections.Counter(
        f"DONE {e['outcome']}" if e["state"] == "DONE" else e["state"] for e in entries
    )
    print("\nsamples per final state:")
    for name, count in sorted(states.items()):
        print(f"  {name:32} {count:6d}")
    unfinished = sum(1 for e in entries if e["state"] not in FINAL)
    print(f"  {'not final (must be 0)':32} {unfinished:6d}")

    failures = collections.Counter(_error(e["reason"]) for e in entries if e["state"] == "FAILED")
    print("\nfaults fired per kind / samples FAILED per error:")
    for kind in args.kinds:
        failed = failures.get(ERROR_OF[kind], 0)
        print(f"  {kind:24} {fired.get(kind, 0):6d} fired  {failed:6d} FAILED")
    known = set(ERROR_OF.values())
    unexplained = sum(n for error, n in failures.items() if error not in known)
    print(f"  {'FAILED by no injected fault (must be 0)':40} {unexplained:6d}")
    retried = sum(1 for e in entries if e["attempts"] > 1)
    print(
        f"  re-queued and run again: {retried} samples; the queue ended the night for a "
        f"person {sum(interventions.values())} times ({dict(interventions) or 'never'}); "
        f"robot reset by the watchdog {watchdog.resets} times"
    )

    attempts = sum(e["attempts"] for e in entries)
    transitions = sum(len(h) for h in books.history.values()) - len(entries)
    runs = sum(1 for r in books.runs.values() if r["recipe"] == "mxpresse")
    created = sum(v for k, v in tally.created.items() if k not in _upserts()) if tally else 0
    stored = sum(
        lims_counts.get(k, 0) for k in (tally.created if tally else ()) if k not in _upserts()
    )
    lost = (
        max(transitions - len(books.transitions), 0)
        + max(attempts - runs, 0)
        + max(created - stored, 0)
        + dropped
    )
    print(
        f"\nrecords: {len(entries)} queue entries; {transitions} sample transitions in the "
        f"queue file, {len(books.transitions)} in the workflow database; {attempts} attempts, "
        f"{runs} workflow runs; LIMS {created} records created, {stored} stored"
        + (f" ({sum(lims_counts.values())} rows in all)" if lims_counts else " (no LIMS)")
        + f"; writer dropped {dropped}"
    )
    print(f"records lost (must be 0): {lost}")
    for problem in problems[:20]:
        print(f"  problem: {problem}")
    print(
        f"hangs (must be 0): {len(watchdog.hangs)}"
        + (f" {watchdog.hangs}" if watchdog.hangs else "")
    )
    growth = rss["end"] - rss.get("warm", rss["start"])
    print(
        f"memory (RSS): start {rss['start']:.0f} MB, after {warm_up} samples "
        f"{rss.get('warm', float('nan')):.0f} MB, end {rss['end']:.0f} MB (highest "
        f"{rss['peak']:.0f} MB); growth after the warm-up {growth:+.0f} MB "
        f"(bound {args.rss_growth_mb:.0f} MB)"
    )
    print(
        f"wall time: {wall:.1f} s for {args.samples} samples ({wall / args.samples:.2f} s per "
        f"sample, {attempts} runs)"
    )
    ok = (
        not problems
        and lost == 0
        and unfinished == 0
        and unexplained == 0
        and not watchdog.hangs
        and growth <= args.rss_growth_mb
    )
    print("soak: OK" if ok else "soak: FAILED")
    return 0 if ok else 1


def _why(reason: str) -> str:
    for error in ERROR_OF.values():
        if error in reason:
            return error
    return reason[:40]


def _error(reason: str | None) -> str:
    """``beamline not ready: BeamLossError: ...`` -> ``BeamLossError``."""
    for error in ERROR_OF.values():
        if error in (reason or ""):
            return error
    return (reason or "?").split(":")[0]


def _upserts() -> frozenset[str]:
    from tests.reliability.accounting import UPSERTS

    return UPSERTS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument(
        "--rate", type=float, default=0.005, help="chance of a fault per device opportunity"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault generator")
    parser.add_argument(
        "--kinds", nargs="+", default=list(ERROR_OF), choices=list(ERROR_OF), metavar="KIND"
    )
    parser.add_argument("--hang-s", type=float, default=120.0, help="wall time of a hang")
    parser.add_argument("--rss-growth-mb", type=float, default=150.0)
    parser.add_argument("--no-lims", action="store_true", help="write to no LIMS")
    parser.add_argument("--keep", type=Path, default=None, help="keep the data in this folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)

    data = args.keep or Path(tempfile.mkdtemp(prefix="bes-soak-"))
    data.mkdir(parents=True, exist_ok=True)
    print(
        f"soak: {args.samples} samples through mxpresse on good pins; random faults "
        f"{', '.join(args.kinds)} at rate {args.rate} per device opportunity (seed {args.seed}); "
        f"{'no LIMS' if args.no_lims else 'LIMS over HTTP'}; hang after {args.hang_s:g} s",
        flush=True,
    )
    print(f"parameters: {FAST}; data in {data}", flush=True)
    try:
        return soak(args, data)
    finally:
        if args.keep is None:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
