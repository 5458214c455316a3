"""``bes db ...``, ``bes runs ...`` and ``bes mine ...``: the workflow database from the
command line. Heavy imports (SQLAlchemy, pandas, matplotlib) happen inside the handlers."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

Handler = Callable[[argparse.Namespace], int]


def add_record_commands(subparsers: Any) -> None:
    """Register ``db``, ``runs`` and ``mine`` on the ``bes`` command's subparsers."""
    db = subparsers.add_parser("db", help="workflow database: upgrade, status")
    db_commands = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    upgrade = db_commands.add_parser("upgrade", help="create or upgrade the schema (migrations)")
    _add_url(upgrade)
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.set_defaults(handler=_guard(_db_upgrade))
    status = db_commands.add_parser("status", help="schema revision and rows per table")
    _add_url(status)
    status.set_defaults(handler=_guard(_db_status))
    db.set_defaults(handler=lambda args: _help(db))

    runs = subparsers.add_parser("runs", help="recorded workflow runs: list, show")
    runs_commands = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND")
    listing = runs_commands.add_parser("list", help="the latest runs")
    _add_url(listing)
    _add_filters(listing, dates=False)
    listing.add_argument("--status", help="only runs that ended so (finished, failed, ...)")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    listing.set_defaults(handler=_guard(_runs_list))
    show = runs_commands.add_parser("show", help="replay a run as a timeline")
    show.add_argument("run", help="run number, or run id (or its first characters)")
    _add_url(show)
    show.set_defaults(handler=_guard(_runs_show))
    runs.set_defaults(handler=lambda args: _help(runs))

    mine = subparsers.add_parser(
        "mine", help="mine the workflow database: tables, plots (PNG), an HTML report"
    )
    mine.add_argument(
        "queries", nargs="*", metavar="QUERY", help="standard queries to answer (default: all)"
    )
    _add_url(mine)
    _add_filters(mine, dates=True)
    mine.add_argument("--plots", type=Path, metavar="DIR", help="write one PNG per query here")
    mine.add_argument("--html", type=Path, metavar="FILE", help="write a one-page HTML report")
    mine.add_argument("--rows", type=int, default=15, help="rows printed per table (default 15)")
    mine.add_argument("--list", action="store_true", help="list the standard queries")
    mine.set_defaults(handler=_guard(_mine))


def _add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="database URL (default: sqlite:///bes-data/workflows.db in the working directory; "
        "postgresql+psycopg://user@host/db for a shared server)",
    )


def _add_filters(parser: argparse.ArgumentParser, *, dates: bool) -> None:
    parser.add_argument("--beamline", help="only this beamline")
    parser.add_argument("--recipe", help="only this recipe")
    parser.add_argument("--session", help="only this session")
    if dates:
        parser.add_argument("--since", help="first day (YYYY-MM-DD, UTC, inclusive)")
        parser.add_argument("--until", help="last day (YYYY-MM-DD, UTC, inclusive)")


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _guard(handler: Handler) -> Handler:
    """Expected problems (no database, wrong URL, unknown run or query) as one clear line."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from bes.record.database import DatabaseError
        from bes.record.timeline import RunNotFound

        try:
            return handler(args)
        except (DatabaseError, RunNotFound, ValueError) as exc:
            print(f"bes: {exc}", file=sys.stderr)
            return 2

    return run


def _db_upgrade(args: argparse.Namespace) -> int:
    from bes.record.database import Database, default_url, parse_url

    database = Database(parse_url(args.url or default_url()))
    before = database.revision()
    after = database.upgrade(args.revision)
    Console().print(
        f"workflow database {database.display_url}: revision {before or '(empty)'} -> {after}"
    )
    database.dispose()
    return 0


def _db_status(args: argparse.Namespace) -> int:
    from sqlalchemy import func, inspect, select

    from bes.record import migrate
    from bes.record.database import Database, default_url, parse_url
    from bes.record.schema import Base

    database = Database(parse_url(args.url or default_url()))
    if database.path is not None and not database.path.exists():
        print(f"bes: no workflow database at {database.path} (`bes db upgrade` creates it)")
        return 1
    console = Console()
    current, head = database.revision(), migrate.head_revision()
    state = "up to date" if current == head else "needs `bes db upgrade`"
    console.print(f"{database.display_url}: revision {current or '(empty)'}, head {head}: {state}")
    present = set(inspect(database.engine).get_table_names())
    table = Table(title="Rows")
    table.add_column("table")
    table.add_column("rows", justify="right")
    with database.engine.connect() as connection:
        for name, model in Base.metadata.tables.items():
            if name in present:
                count = connection.execute(select(func.count()).select_from(model)).scalar()
                table.add_row(name, f"{count:,}")
    console.print(table)
    database.dispose()
    return 0


def _runs_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from bes.record.database import open_database
    from bes.record.schema import Run

    database = open_database(args.url, must_exist=True)
    runs = Run.__table__
    statement = select(runs).order_by(runs.c.id.desc()).limit(args.limit)
    for name in ("beamline", "recipe", "session", "status"):
        value = getattr(args, name, None)
        if value is not None:
            statement = statement.where(runs.c[name] == value)
    table = Table(title=f"Runs ({database.display_url})", box=box.SIMPLE_HEAD)
    for column in ("#", "run id", "recipe", "status", "started (UTC)", "wall s"):
        table.add_column(column, no_wrap=column != "recipe", overflow="fold")
    table.add_column("beamline, sample, session", overflow="fold")
    with database.engine.connect() as connection:
        for run in connection.execute(statement).mappings():
            table.add_row(
                str(run["id"]),
                run["run_id"][:8],
                run["recipe"],
                _status(run["status"]),
                _when(run["start_time"])[:16],
                f"{run['wall_s']:.1f}" if run["wall_s"] is not None else "-",
                ", ".join(str(run[k]) for k in ("beamline", "sample", "session") if run[k]),
            )
    Console().print(table)
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    from bes.record.database import open_database
    from bes.record.timeline import load_timeline

    database = open_database(args.url, must_exist=True)
    timeline = load_timeline(database, args.run)
    run = timeline.run
    console = Console()
    console.print(
        f"[bold]run {run['id']}[/bold] {run['run_id']}: [bold]{run['recipe']}[/bold] "
        f"{_status(run['status'])}"
    )
    facts = {
        "recipe": f"{run['recipe']} sha256 {str(run['recipe_sha256'])[:12]} "
        f"version {run['recipe_version'] or '-'} (mxbes {run['bes_version']})",
        "source": run["recipe_source"],
        "started": _when(run["start_time"]),
        "ended": _when(run["end_time"]) if run["end_time"] else "(not ended)",
        "took": f"{run['wall_s']:.3f} s wall" if run["wall_s"] is not None else "-",
        "where": f"beamline {run['beamline']} on {run['host']} by {run['user_name']}",
        "what": ", ".join(
            f"{label} {run[key]}"
            for label, key in (
                ("sample", "sample"),
                ("session", "session"),
                ("request", "request_id"),
            )
            if run[key] is not None
        )
        or None,
        "inputs": str(run["inputs"]),
    }
    if run["error_kind"]:
        facts["error"] = f"{run['error_node']}: {run['error_kind']}: {run['error_message']}"
    summary = timeline.summary
    if summary is not None:
        facts["outcome"] = f"{summary['outcome']} (success: {bool(summary['success'])})" + (
            f", reason: {summary['reason']}" if summary["reason"] else ""
        )
    for key, value in facts.items():
        if value is not None:
            console.print(f"  {key:8} {value}", markup=False, highlight=False)
    table = Table(title="Timeline")
    for column, justify in (
        ("beamline s", "right"),
        ("wall s", "right"),
        ("what", "left"),
        ("node", "left"),
        ("detail", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for entry in timeline.entries:
        table.add_row(
            f"{entry.beamline_s:.3f}" if entry.beamline_s is not None else "",
            f"{entry.wall_s:.4f}",
            entry.kind,
            entry.node,
            entry.text,
        )
    console.print(table)
    return 0


def _mine(args: argparse.Namespace) -> int:
    from bes.record.mining import STANDARD_QUERIES, Filters, Miner
    from bes.record.report import run_queries, write_html, write_plots

    console = Console()
    if args.list:
        for query in STANDARD_QUERIES.values():
            console.print(f"{query.name:28} {query.title}")
        return 0
    filters = Filters(
        beamline=args.beamline,
        recipe=args.recipe,
        session=args.session,
        since=args.since,
        until=args.until,
    )
    miner = Miner(args.url)
    answers = run_queries(miner, filters, args.queries)
    console.print(f"[bold]{miner.db.display_url}[/bold]: {filters.describe()}")
    for answer in answers:
        print_frame(
            console, answer.frame, f"{answer.query.title} ({answer.seconds:.3f} s)", args.rows
        )
    if args.plots:
        for path in write_plots(answers, args.plots):
            console.print(f"plot: {path}")
    if args.html:
        path = write_html(answers, filters, args.html, miner.db.display_url)
        console.print(f"report: {path}")
    return 0


def print_frame(console: Console, frame: Any, title: str, rows: int) -> None:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in frame.columns:
        table.add_column(str(column), overflow="fold")
    for values in frame.head(rows).itertuples(index=False):
        table.add_row(*(_cell(v) for v in values))
    if len(frame) > rows:
        table.caption = f"{len(frame) - rows} more rows"
    if frame.empty:
        table.caption = "no runs match"
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _status(status: str) -> str:
    colour = {"finished": "green", "failed": "red", "aborted": "yellow"}.get(status, "cyan")
    return f"[{colour}]{status}[/{colour}]"


def _when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
