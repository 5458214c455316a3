"""Workflow-database benchmarks: recorder ingest rate, recording overhead, mining latency.

    python bench/db.py                     # everything; the 1 M-sample history is made once
    python bench/db.py --samples 100000    # a smaller history
    python bench/db.py --skip-mining
    python bench/db.py --skip-ingest --skip-overhead --skip-mining --mx-samples 5

1. Ingest: synthetic engine events (runs of 20 nodes: start, metadata, end, decision per
   node) fed to a Recorder as fast as one thread can, until the last one is committed; on
   SQLite and, when a server answers on 127.0.0.1:5432, PostgreSQL. Target >= 20,000/s.
2. Overhead: ``beamline_check`` on the simulated beamline with and without a recorder
   (bound to the beamline, so device actions are recorded too), on the instant clock (no
   device waits: the worst case) and on a clock 20x faster than real time.
3. MXPressE overhead: whole ``mxpresse`` samples (good crystals from a sample sheet, instant
   clock, small detector, the default strategy's collection) with and without a recorder,
   alternating (the order flips every sample): wall and process CPU time per sample, and
   the recorder's own cost (its callbacks, its writer thread's CPU). Target <= 2 %.
4. Mining: every standard query on a history of N samples (``bench/make_history.py``,
   generated once into /tmp/mxbes-bench and reused), first (cold) and best of three
   (warm), with no filter, a beamline over 15 months, a recipe over a month, one session.
   Target <= 1 s each on 1,000,000 samples.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from make_history import make_history

from bes.config import SIMULATED_BEAMLINE
from bes.engine import EngineEvent, RunContext, run_workflow
from bes.hal import Beamline, DeviceAction
from bes.record.database import open_database
from bes.record.mining import STANDARD_QUERIES, Filters, Miner
from bes.record.recorder import Recorder
from bes.record.synthetic import run_events

HISTORY_DIR = Path("/tmp/mxbes-bench")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NODES = 20
MODES = {
    "batched": {"flush_on_end": False},
    "run end": {},  # the default: each run written at its end, the engine does not wait
    "wait end": {"wait_at_end": True},  # the engine waits for each run's commit
}


def ingest(url: str, events: int, **options: bool) -> dict[str, float]:
    """Events/s from the first on_event to the commit of the last row."""
    runs = max(1, events // (2 + 4 * NODES))
    stream = [e for i in range(runs) for e in run_events(f"ingest-{i}-{uuid.uuid4().hex[:6]}")]
    with Recorder(url, beamline="BENCH", **options) as recorder:
        start = time.perf_counter()
        hot = 0.0
        for event in stream:
            t = time.perf_counter()
            recorder.on_event(event)
            hot += time.perf_counter() - t
        recorder.flush(300)
        seconds = time.perf_counter() - start
        stats = recorder.stats
    return {
        "events": len(stream),
        "seconds": seconds,
        "events_s": len(stream) / seconds,
        "rows_s": stats.written / seconds,
        "hot_us": hot / len(stream) * 1e6,
        "batches": stats.batches,
        "dropped": stats.dropped,
    }


def pg_schema_url() -> tuple[str | None, Any]:
    try:
        import psycopg

        schema = f"mxbes_bench_{uuid.uuid4().hex[:8]}"
        connection = psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/test", autocommit=True, connect_timeout=2
        )
        connection.execute(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:
        return None, str(exc).splitlines()[0]

    def drop() -> None:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
        connection.close()

    return f"{PG_URL}?options=-csearch_path%3D{schema}", drop


def bench_ingest(events: int) -> None:
    print(f"\n== ingest: {events:,} synthetic events, runs of {NODES} nodes")
    print(f"{'back end':<12} {'commit':<10} {'events/s':>10} {'rows/s':>10} {'hot us/ev':>10}")
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/ingest.db"
        open_database(url, upgrade=True).dispose()
        targets.append(("sqlite", url, None))
        pg, drop = pg_schema_url()
        if pg is not None:
            open_database(pg, upgrade=True).dispose()
            targets.append(("postgresql", pg, drop))
        else:
            print(f"(PostgreSQL skipped: {drop})")
        for name, target, _ in targets:
            for label, options in MODES.items():
                r = ingest(target, events, **options)
                print(
                    f"{name:<12} {label:<10} {r['events_s']:>10,.0f} {r['rows_s']:>10,.0f} "
                    f"{r['hot_us']:>10.1f}" + (f"  DROPPED {r['dropped']}" if r["dropped"] else "")
                )
        for _, _, drop_schema in targets:
            if drop_schema is not None:
                drop_schema()


def bench_overhead(runs: int) -> None:
    print(f"\n== recording overhead: beamline_check (step 30 deg: 14 nodes), {runs} runs each")
    print("median wall ms per run; overhead against no recorder")
    print(
        f"{'clock':<14} {'none':>7} {'recorder':>9} {'overhead':>9} {'wait end':>9} {'overhead':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/overhead.db"
        open_database(url, upgrade=True).dispose()
        for mode, factor in (("instant", 1.0), ("scaled", 20.0)):
            beamline = Beamline.from_config(
                SIMULATED_BEAMLINE, overrides={"clock": {"mode": mode, "factor": factor}}
            )
            recorders = [Recorder(url), Recorder(url, wait_at_end=True)]
            contexts = [RunContext(beamline=beamline)] + [
                RunContext(beamline=beamline, recorder=r) for r in recorders
            ]
            times: list[list[float]] = [[] for _ in contexts]
            for index in range(runs + 1):  # the first round warms up
                for context, recorder, spent in zip(
                    contexts, [None, *recorders], times, strict=True
                ):
                    if recorder is not None:
                        recorder.attach(beamline)  # its device actions too
                    start = time.perf_counter()
                    result = run_workflow("beamline_check", {"step_deg": 30.0}, context.fresh())
                    if index:
                        spent.append(time.perf_counter() - start)
                    if recorder is not None:
                        recorder.detach()
                    assert result.ok, result.detail
            for recorder in recorders:
                recorder.close()
            none, default, waiting = (statistics.median(t) * 1e3 for t in times)
            label = mode if mode == "instant" else f"{mode} x{factor:g}"
            print(
                f"{label:<14} {none:>7.1f} {default:>9.1f} {(default - none) / none:>9.1%} "
                f"{waiting:>9.1f} {(waiting - none) / none:>9.1%}"
            )


class TimedRecorder(Recorder):
    """A Recorder that adds up the time its callbacks take in the callers' threads."""

    hot_s = 0.0

    def on_event(self, event: EngineEvent) -> None:
        start = time.perf_counter()
        super().on_event(event)
        self.hot_s += time.perf_counter() - start

    def on_device_action(self, action: DeviceAction) -> None:
        start = time.perf_counter()
        super().on_device_action(action)
        self.hot_s += time.perf_counter() - start


def mx_sheet(samples: int) -> dict[str, Any]:
    """One good crystal per pin (puck 1..), a little different from pin to pin."""
    sizes = ([50, 40, 30], [60, 45, 35], [45, 40, 40])
    return {
        "pins": [
            {
                "location": f"{1 + i // 16}:{1 + i % 16}",
                "loop": {"centre_mm": [0.0, 0.08, -0.03]},
                "crystals": [
                    {"position_mm": [0.02, 0.09, -0.02], "size_um": sizes[i % len(sizes)]}
                ],
            }
            for i in range(samples)
        ]
    }


def thread_cpu_s(native_id: int | None) -> float:
    """CPU seconds a thread of this process has used (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def bench_mxpresse(samples: int) -> None:
    print(
        f"\n== recording overhead: mxpresse, {samples} samples, each run without and with a "
        "recorder (alternating)"
    )
    print(
        "good crystals, instant clock, small detector, default strategy; s per sample: wall "
        "time, and CPU time of the process (all threads)"
    )
    sheet = mx_sheet(samples)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/mxpresse.db"
        open_database(url, upgrade=True).dispose()
        beamline = Beamline.from_config(
            SIMULATED_BEAMLINE,
            overrides={
                "clock": {"mode": "instant"},
                "detector": {"model": "small"},
                "world": {"sheet": sheet},
            },
        )
        recorder = TimedRecorder(url)
        writer_thread = recorder.writer._thread.native_id
        data = Path(tmp) / "data"

        def run(location: str, recorded: bool) -> tuple[float, float, int]:
            if recorded:
                recorder.attach(beamline)  # its device actions too
            context = RunContext(beamline=beamline, recorder=recorder if recorded else None)
            start, start_cpu = time.perf_counter(), time.process_time()
            result = run_workflow("mxpresse", {"sample": location, "data_root": str(data)}, context)
            wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            if recorded:
                recorder.detach()
            shutil.rmtree(data, ignore_errors=True)  # ~200 MB of frames per sample
            assert result.ok and result.outputs.get("outcome") == "collected", result.detail
            summary = result.outputs["summary"]
            return wall, cpu, sum(c["n_frames"] for c in summary["collections"])

        first = sheet["pins"][0]["location"]
        run(first, False)  # warm up both ways (imports, caches)
        run(first, True)
        recorder.flush()
        hot_before, written_before = recorder.hot_s, recorder.stats.written
        writer_before = thread_cpu_s(writer_thread)
        print(
            f"{'sample':<8} {'frames':>6} {'wall none':>10} {'recorder':>9} {'overhead':>9} "
            f"{'cpu none':>10} {'recorder':>9} {'overhead':>9}"
        )
        wall: dict[bool, list[float]] = {False: [], True: []}
        cpu: dict[bool, list[float]] = {False: [], True: []}
        for index, pin in enumerate(sheet["pins"]):
            location = pin["location"]
            for recorded in (False, True) if index % 2 == 0 else (True, False):
                spent, used, frames = run(location, recorded)
                wall[recorded].append(spent)
                cpu[recorded].append(used)
            print(f"{location:<8} {frames:>6} {_overhead(wall, -1)} {_overhead(cpu, -1)}")
        recorder.flush()
        writer_ms = (thread_cpu_s(writer_thread) - writer_before) / samples * 1e3
        recorder.close()
        hot_ms = (recorder.hot_s - hot_before) / samples * 1e3
        rows = (recorder.stats.written - written_before) / samples
        for label, pick in (("median", statistics.median), ("mean", statistics.fmean)):
            picked_wall = {k: [pick(v)] for k, v in wall.items()}
            picked_cpu = {k: [pick(v)] for k, v in cpu.items()}
            print(f"{label:<8} {'':>6} {_overhead(picked_wall, 0)} {_overhead(picked_cpu, 0)}")
        total = sum(wall[True]) / sum(wall[False]) - 1
        total_cpu = sum(cpu[True]) / sum(cpu[False]) - 1
        verdict = "OK" if total <= 0.02 else "OVER"
        print(
            f"overhead over all samples: wall {total:+.2%} (target <= 2 %: {verdict}), "
            f"CPU {total_cpu:+.2%}"
        )
        own = (hot_ms + writer_ms) / 1e3 / statistics.fmean(wall[False])
        print(
            f"the recorder's own cost per sample: {hot_ms:.1f} ms in the engine's and devices' "
            f"threads + {writer_ms:.0f} ms CPU in its writer thread = {own:.2%} of a sample's "
            f"wall time; {rows:,.0f} rows, {recorder.stats.dropped} dropped"
        )


def _overhead(times: dict[bool, list[float]], index: int) -> str:
    """``none  recorder  overhead`` of ``times[False][index]`` and ``times[True][index]``."""
    none, recorded = times[False][index], times[True][index]
    return f"{none:>10.2f} {recorded:>9.2f} {recorded / none - 1:>9.1%}"


def bench_mining(samples: int, history: Path | None) -> None:
    path = history or HISTORY_DIR / f"history-{samples}.db"
    url = f"sqlite:///{path}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"\n== making a history of {samples:,} samples in {path} (once)")
        info = make_history(url, samples, progress=True)
        print(
            f"{info.samples:,} samples, {info.events:,} events, {info.rows:,} rows in "
            f"{info.seconds:.0f} s ({info.events / info.seconds:,.0f} events/s)"
        )
    miner = Miner(url)
    nights = miner.samples_per_night()
    first, last = nights["night"].min(), nights["night"].max()
    beamline = str(nights["beamline"].iloc[0])
    session = _a_session(miner)
    runs = int(nights["runs"].sum())
    size_mb = path.stat().st_size / 1e6
    print(f"\n== mining {runs:,} runs ({first} .. {last}, {size_mb:,.0f} MB): seconds")
    first_day = dt.date.fromisoformat(first)
    month = (first_day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)  # the 2nd month
    month_end = (month + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    filter_sets = {
        "all": Filters(),
        "beamline 15 mo": Filters(
            beamline=beamline,
            since=month + dt.timedelta(days=14),
            until=month + dt.timedelta(days=14 + 456),
        ),
        "recipe 1 month": Filters(recipe="mxpresse", since=month, until=month_end),
        "session": Filters(session=session),
    }
    print(f"{'query':<28}" + "".join(f"{name:>18}" for name in filter_sets))
    print(f"{'':<28}" + "".join(f"{'cold   warm':>18}" for _ in filter_sets))
    worst = 0.0
    for name, query in STANDARD_QUERIES.items():
        cells = []
        for filters in filter_sets.values():
            times = []
            for _ in range(3):
                start = time.perf_counter()
                query.method(miner, filters)
                times.append(time.perf_counter() - start)
            worst = max(worst, times[0])
            cells.append(f"{times[0]:>9.3f} {min(times):>6.3f}")
        print(f"{name:<28}" + "".join(f"{cell:>18}" for cell in cells))
    verdict = "OK" if worst <= 1.0 else "OVER"
    print(f"slowest first run: {worst:.3f} s (target <= 1 s: {verdict})")


def _a_session(miner: Miner) -> str:
    from sqlalchemy import select

    from bes.record.schema import RunSummary

    with miner.db.engine.connect() as connection:
        return str(
            connection.execute(
                select(RunSummary.session).where(RunSummary.session.is_not(None)).limit(1)
            ).scalar()
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="ingest events")
    parser.add_argument("--runs", type=int, default=20, help="overhead runs per setting")
    parser.add_argument("--mx-samples", type=int, default=5, help="mxpresse overhead samples")
    parser.add_argument("--samples", type=int, default=1_000_000, help="mining history size")
    parser.add_argument("--history", type=Path, help="use this SQLite history file")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-mxpresse", action="store_true")
    parser.add_argument("--skip-mining", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_ingest:
        bench_ingest(args.events)
    if not args.skip_overhead:
        bench_overhead(args.runs)
    if not args.skip_mxpresse:
        bench_mxpresse(args.mx_samples)
    if not args.skip_mining:
        bench_mining(args.samples, args.history)
    return 0


if __name__ == "__main__":
    sys.exit(main())
