"""``bes night``: the main job. A sample sheet (or ``--demo N`` pins of the dewar) through
``mxpresse`` from the sample-changer queue, unattended, on the embedded station; live
progress; at the end a summary table and the night's mining report.

``bes night --resume`` continues the unfinished entries a stopped or killed night left in
``DATA_DIR/queue.sqlite`` (a sample that was mid-workflow is recorded INTERRUPTED, then
re-queued or skipped by ``--policy``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bes.station.cli import (
    UsageError,
    add_station_options,
    check_mx_parameters,
    open_station_from_args,
    parse_settings,
)
from bes.station.night import DEFAULT_DEMO_SAMPLES, DEFAULT_RECIPE

if TYPE_CHECKING:
    from rich.console import Console

    from bes.station.night import NightReport
    from bes.station.station import Station

REPORTS_FOLDER = "reports"


def add_night_command(subparsers: Any) -> None:
    night = subparsers.add_parser(
        "night",
        help="run a night: a sample sheet (or --demo N pins) through mxpresse from the queue",
        description="Queue every sample of SAMPLES (a LIMS sample sheet, CSV or JSON: "
        "`bes lims load-sheet` format) or, without it, the first --demo N pins of the dewar, "
        "and run them unattended through RECIPE on the station (default: the simulated "
        "beamline, SQLite workflow database and a LIMS served from DATA_DIR/lims). Ctrl-C "
        "stops after the current sample, twice aborts it. Exit status 0 when every sample "
        "reached a final state, 1 when the night ended early (stopped, aborted, a fault that "
        "needs a person: continue with --resume), 2 for a bad command line.",
    )
    night.add_argument(
        "samples", nargs="?", type=Path, metavar="SAMPLES", help="LIMS sample sheet (.csv/.json)"
    )
    night.add_argument(
        "--demo",
        type=int,
        default=None,
        metavar="N",
        help=f"run the first N pins of the dewar (default {DEFAULT_DEMO_SAMPLES} without SAMPLES)",
    )
    night.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished entries of the queue in DATA_DIR (after a stop or crash)",
    )
    night.add_argument(
        "--policy",
        choices=("requeue", "skip"),
        default="requeue",
        help="a sample found mid-workflow after a crash: run it again, or skip it "
        "(default requeue; either way it is recorded INTERRUPTED first)",
    )
    night.add_argument(
        "--recipe",
        default=DEFAULT_RECIPE,
        help=f"recipe of every sample (default {DEFAULT_RECIPE})",
    )
    night.add_argument(
        "--set",
        action="append",
        default=[],
        dest="settings",
        metavar="NAME=VALUE",
        help="a recipe parameter for every sample (repeatable), e.g. --set total_range_deg=90",
    )
    night.add_argument(
        "--no-prefetch",
        action="store_true",
        help="do not fetch the next pin while a sample is worked on",
    )
    night.add_argument(
        "--no-changer-recovery",
        action="store_true",
        help="on a sample-changer fault wait for a person instead of resetting it once",
    )
    add_station_options(night)
    night.add_argument("--json", action="store_true", help="print the night's report as JSON")
    night.add_argument("--quiet", action="store_true", help="no live progress")
    night.add_argument(
        "--no-report", action="store_true", help="no mining report at the end (tables, HTML)"
    )
    night.set_defaults(handler=_night)


def _night(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bes.record.database import DatabaseError
    from bes.station.night import NightError

    out = Console(stderr=args.json)
    try:
        parameters = _parameters(args)
        sheet = _read_samples(args.samples) if args.samples else None
        if args.resume and (sheet is not None or args.demo is not None):
            raise UsageError("--resume continues the queue as it is: give no SAMPLES or --demo")
        if sheet is not None and args.demo is not None:
            raise UsageError("give SAMPLES or --demo N, not both")
    except (UsageError, NightError) as exc:
        print(f"bes night: {exc}", file=sys.stderr)
        return 2
    try:
        station = open_station_from_args(args)
    except (ValueError, DatabaseError, RuntimeError) as exc:
        print(f"bes night: cannot open the station: {exc}", file=sys.stderr)
        return 2
    with station:
        try:
            report = _run_night(station, args, parameters, sheet, out)
        except (UsageError, NightError) as exc:
            print(f"bes night: {exc}", file=sys.stderr)
            return 2
        if report is None:
            return 0
        if args.json:
            print(json.dumps(report.to_json(), default=str))
        else:
            print_night(out, report)
        if not args.no_report and not args.json:
            _mining_report(out, station, report)
    return 0 if report.complete else 1


def _run_night(
    station: Station,
    args: argparse.Namespace,
    parameters: dict[str, Any],
    sheet: Any,
    out: Console,
) -> NightReport | None:
    from bes.station.night import Night, plan_demo, plan_sheet
    from bes.station.night_progress import NightProgress

    night = Night(
        station,
        policy=args.policy,
        recover_sample_changer=not args.no_changer_recovery,
        prefetch=not args.no_prefetch,
    )
    with night:
        left = night.unfinished()
        if args.resume:
            if not left:
                out.print(
                    f"nothing to resume: the queue in {station.data_dir} has no unfinished entry"
                )
                return None
            entries = left
        else:
            if left:
                raise UsageError(
                    f"the queue in {station.data_dir} holds {len(left)} unfinished entries of an "
                    "earlier night: continue them with --resume, or use another --data-dir"
                )
            if sheet is not None:
                planned = plan_sheet(
                    sheet, _load_sheet(station, sheet), recipe=args.recipe, parameters=parameters
                )
            else:
                planned = plan_demo(
                    args.demo if args.demo is not None else DEFAULT_DEMO_SAMPLES,
                    recipe=args.recipe,
                    parameters=parameters,
                )
            entries = night.add(planned)
        if not args.quiet:
            for name, value in station.describe().items():
                out.print(f"[dim]{name}:[/dim] {value}", highlight=False)
            source = "resume" if args.resume else (str(args.samples) if sheet else "demo")
            out.print(
                f"[bold]night[/bold]: {len(entries)} samples ({source}), recipe {args.recipe}"
            )
        progress = NightProgress(out, len(entries), station.beamline.clock.now)
        if not args.quiet:
            night.queue.subscribers.append(progress)
            night._queue_subscribers.append(progress.on_queue_event)
        with progress.live() if not args.quiet else _nothing():
            return night.run(entries)


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    parameters = parse_settings(args.settings)
    for name in ("sample", "data_root"):
        if name in parameters:
            raise UsageError(f"{name} is set by the night for each sample: do not --set it")
    if args.recipe == DEFAULT_RECIPE or args.recipe.startswith("mx"):
        check_mx_parameters(parameters, None, str(Path(args.data_dir).resolve()))
    return parameters


def _read_samples(path: Path) -> Any:
    from lims.sheet import SheetError, read_sheet

    try:
        return read_sheet(path)
    except (SheetError, OSError) as exc:
        raise UsageError(f"sample sheet {path}: {exc}") from None


def _load_sheet(station: Station, sheet: Any) -> dict[str, int] | None:
    """Write the sheet's samples to the LIMS; their ids by ``puck:pin``."""
    if station.lims is None or station.lims_token is None:
        return None
    from lims.client import LimsClient, LimsError
    from lims.sheet import load_sheet

    client = LimsClient(station.lims.url, station.lims_token)
    try:
        return dict(load_sheet(client, sheet).sample_ids)
    except LimsError as exc:
        raise UsageError(f"cannot load the sample sheet into the LIMS: {exc}") from None
    finally:
        client.close()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def print_night(console: Console, report: NightReport) -> None:
    """The summary table: one row per sample, then the counts and the rates."""
    from rich import box
    from rich.table import Table

    from bes.station.night_progress import STATE_COLOURS
    from bes.station.progress import clock_text

    table = Table(title="Night", box=box.SIMPLE_HEAD)
    for column in ("#", "sample", "state", "outcome", "resolution", "frames", "beamline", "reason"):
        table.add_column(column, overflow="fold")
    for number, entry in enumerate(report.entries, 1):
        run = report.reports.get(entry.id)
        summary = run.summary if run is not None else {}
        colour = STATE_COLOURS.get(entry.state.name, "white")
        frames = sum(int(c.get("n_frames", 0) or 0) for c in summary.get("collections") or [])
        resolution = (summary.get("characterisation") or {}).get("resolution_a")
        table.add_row(
            str(number),
            entry.location,
            f"[{colour}]{entry.state.name}[/{colour}]",
            entry.outcome or "",
            f"{resolution:.2f} A" if isinstance(resolution, float) else "",
            str(frames or ""),
            clock_text(summary.get("beamline_time_s")),
            "" if entry.state.name == "DONE" else (entry.reason or "")[:80],
        )
    console.print(table)
    counts = Table(title="Samples per final state", box=box.SIMPLE_HEAD)
    counts.add_column("state")
    counts.add_column("samples", justify="right")
    for name, count in report.counts().items():
        counts.add_row(name, str(count))
    console.print(counts)
    rate = report.samples_per_beamline_hour
    wall_rate = report.samples_per_wall_second
    console.print(
        f"beamline time {clock_text(report.beamline_s)}, wall time {clock_text(report.wall_s)}; "
        f"{rate:.1f} samples per beamline hour"
        if rate
        else "no sample ran",
        highlight=False,
    )
    if wall_rate:
        console.print(f"{wall_rate:.3f} samples per wall second", highlight=False)
    if report.interrupted:
        console.print(
            "found mid-sample from the earlier process: "
            + ", ".join(f"{e.location} (now {e.state.name})" for e in report.interrupted)
        )
    if not report.complete:
        console.print(
            f"[yellow]the night ended early[/yellow] (queue {report.queue_state}: "
            f"{report.queue_reason}); {len(report.unfinished)} samples left: "
            "`bes night --resume` continues them"
        )


def _mining_report(console: Console, station: Station, report: NightReport) -> None:
    """``bes mine`` for the night: its tables, and an HTML page in DATA_DIR/reports."""
    from bes.record.cli import print_frame
    from bes.record.mining import Filters, Miner
    from bes.record.report import run_queries, write_html

    filters = Filters(beamline=station.beamline.name, since=report.started.date())
    miner = Miner(station.database)
    answers = run_queries(miner, filters)
    for answer in answers:
        print_frame(console, answer.frame, answer.query.title, 8)
    stamp = report.started.strftime("%Y%m%d-%H%M%S")
    path = station.data_dir / REPORTS_FOLDER / f"night-{stamp}.html"
    written = write_html(answers, filters, path, station.database.display_url)
    console.print(f"report: {written}")
