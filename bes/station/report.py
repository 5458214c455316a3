"""What ``bes run`` prints when a run ends: the run's summary (the ``summary`` output of the
recipe's ``summarise`` node, ``bes.tasks.outcome.summarise``) as tables, one overview line
per sample after several, or the same as JSON.

A run that ended before its ``summarise`` node (a fault, an abort) still gets a summary:
what its sample run had gathered so far, with the failure as reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bes.station.progress import STATUS_COLOURS

if TYPE_CHECKING:
    from bes.engine.context import RunContext
    from bes.engine.runner import WorkflowResult

FIRST_FILES = 3
"""File names listed under "files written" (the rest are counted)."""


@dataclass
class RunReport:
    """One run as ``bes run`` reports it."""

    recipe: str
    sample: str | None
    run_id: str
    status: str
    """How the engine ended the run: ``finished``, ``failed`` or ``aborted``."""
    detail: str
    summary: dict[str, Any]
    database: str
    """The workflow database that holds the run (URL without password)."""
    error: str | None = None
    lims_records: dict[str, int] | None = None
    """Rows the run added per LIMS table; None without a LIMS or when it did not answer."""
    lims_pending: int = 0
    """Writes waiting in the outbox (the LIMS did not take them yet)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """The workflow's outputs (recipes without a ``summarise`` node)."""

    @property
    def ok(self) -> bool:
        return self.status == "finished"

    @property
    def outcome(self) -> str:
        """The recipe's verdict (``collected``, ``no_diffraction`` ...); a run the engine did
        not finish is ``failed`` or ``aborted`` whatever its sample run said."""
        if self.status != "finished":
            return self.status
        return str(self.summary.get("outcome") or self.status)

    def to_json(self) -> dict[str, Any]:
        """The summary dict, with the run's id, status and records added under ``run``."""
        return {
            **self.summary,
            "run": {
                "run_id": self.run_id,
                "status": self.status,
                "detail": self.detail,
                "error": self.error,
                "database": self.database,
                "lims_records": self.lims_records,
                "lims_pending": self.lims_pending,
            },
        }


def summary_of(
    result: WorkflowResult, context: RunContext, beamline_time_s: float | None
) -> dict[str, Any]:
    """The ``summary`` output of the run, or what its sample run holds if it ended early."""
    summary = result.outputs.get("summary") if result.outputs else None
    if isinstance(summary, Mapping):
        return dict(summary)
    from bes.tasks.mx_state import STATE_KEY, SampleRun

    reason = result.abort_reason if result.status == "aborted" else None
    if result.error is not None:
        reason = result.error.message.strip().splitlines()[-1] if result.error.message else None
    out: dict[str, Any] = {
        "recipe": result.workflow,
        "outcome": result.status,
        "success": False if result.status != "finished" else None,
        "reason": reason,
        "beamline_time_s": round(beamline_time_s, 2) if beamline_time_s is not None else None,
    }
    run = context.state.get(STATE_KEY)
    if isinstance(run, SampleRun):
        out.update(
            sample=str(run.location) if run.location else None,
            sample_name=run.sample_name,
            outcome=run.outcome or result.status,
            reason=run.reason or reason,
            success=bool(run.success) and result.status == "finished",
            decisions=list(run.decisions),
            loop=run.loop,
            crystal=run.crystal,
            n_crystals=len(run.centring.regions) if run.centring else 0,
            characterisation=run.characterisation,
            strategy=run.strategy,
            collections=[
                {"master_file": c.master_file, "n_frames": c.n_frames, "dose_mgy": c.dose_mgy}
                for c in run.collections
            ],
            dose_mgy=round(run.dose_used_mgy, 3),
            files=list(run.files),
            software_wait_s=round(run.software.total_s, 3),
            lims_errors=list(run.lims.errors),
        )
    return out


# -- printing ----------------------------------------------------------------------------------


def print_report(console: Console, report: RunReport) -> None:
    """The run's summary as tables (see the module docstring)."""
    s = report.summary
    colour = _colour(report)
    title = f"{report.recipe}" + (f" {report.sample}" if report.sample else "")
    if s.get("sample_name") and s.get("sample_name") != report.sample:
        title += f" ({s['sample_name']})"
    console.rule(f"[bold]{escape(title)}[/bold]: [{colour}]{escape(report.outcome)}[/{colour}]")

    rows: list[tuple[str, Any]] = [
        ("outcome", Text(report.outcome, style=colour)),
        ("reason", s.get("reason")),
        ("run", report.detail if not report.ok and report.detail != report.outcome else None),
        ("error", report.error if report.error != s.get("reason") else None),
    ]
    console.print(_pairs("Outcome", rows))

    decisions = s.get("decisions") or []
    if decisions:
        table = Table(title="Decisions", box=box.SIMPLE, show_header=False, title_justify="left")
        table.add_column("#", justify="right", style="dim")
        table.add_column("decision", overflow="fold")
        for i, decision in enumerate(decisions, 1):
            table.add_row(str(i), escape(str(decision)))
        console.print(table)

    _print_sample(console, s)
    _print_strategy(console, s.get("strategy"))
    _print_collections(console, s.get("collections") or [])
    _print_files(console, s.get("files") or [])
    if not s.get("decisions") and report.outputs and "summary" not in report.outputs:
        console.print(_pairs("Outputs", [(k, _short(v)) for k, v in report.outputs.items()]))

    beamline_s = _number(s.get("beamline_time_s"))
    wait_s = _number(s.get("software_wait_s"))
    wait = None
    if wait_s is not None:
        share = f" ({100 * wait_s / beamline_s:.1f} %)" if beamline_s else ""
        wait = f"{wait_s:.2f} s{share}"
    console.print(
        _pairs(
            "Time and records",
            [
                ("beamline time", duration_text(beamline_s) if beamline_s is not None else None),
                ("software wait", wait),
                ("dose", _unit(s.get("dose_mgy"), "MGy")),
                ("LIMS records", _lims_text(report)),
                ("LIMS errors", "; ".join(map(str, s.get("lims_errors") or [])) or None),
                ("workflow run", report.run_id),
                ("workflow database", report.database),
            ],
        )
    )


def print_overview(console: Console, reports: Sequence[RunReport]) -> None:
    """One line per sample: outcome, resolution, frames, beamline time, reason."""
    table = Table(title="Samples", box=box.SIMPLE_HEAD, title_justify="left")
    widths = {"sample": 6, "outcome": 14, "resolution": 10, "frames": 6, "beamline": 8}
    for column, width in widths.items():
        table.add_column(column, no_wrap=True, min_width=width)
    # the reason takes what the other columns leave, one line per sample
    reason_width = max(20, console.width - sum(widths.values()) - 3 * len(widths) - 4)
    table.add_column("reason", no_wrap=True, overflow="ellipsis", max_width=reason_width)
    for report in reports:
        s = report.summary
        characterisation = s.get("characterisation") or {}
        frames = sum(int(c.get("n_frames") or 0) for c in s.get("collections") or [])
        beamline_s = _number(s.get("beamline_time_s"))
        colour = _colour(report)
        table.add_row(
            escape(report.sample or "-"),
            f"[{colour}]{escape(report.outcome)}[/{colour}]",
            _unit(characterisation.get("resolution_a"), "A") or "",
            str(frames) if frames else "",
            duration_text(beamline_s) if beamline_s is not None else "",
            escape(str(s.get("reason") or report.error or "")),
        )
    console.print(table)


def report_json(report: RunReport) -> str:
    """One line of JSON (``--json``: one line per run)."""
    return json.dumps(report.to_json(), default=str)


def duration_text(seconds: float) -> str:
    """``mm:ss``, or ``h:mm:ss`` from an hour on."""
    total = round(max(seconds, 0.0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


# -- sections ----------------------------------------------------------------------------------


def _print_sample(console: Console, s: Mapping[str, Any]) -> None:
    rows: list[tuple[str, Any]] = []
    loop = s.get("loop")
    if isinstance(loop, Mapping):
        rows.append(("loop", "found" if loop.get("found") else "not found"))
    crystal = s.get("crystal")
    if isinstance(crystal, Mapping):
        rows.append(("crystal at", _positions(crystal.get("position"))))
        size = crystal.get("size_um")
        if isinstance(size, list | tuple):
            rows.append(("crystal size", " x ".join(f"{v:g}" for v in size) + " um"))
        rows.append(("map maximum", _short(crystal.get("max_count"))))
    if s.get("n_crystals"):
        rows.append(("crystals found", str(s["n_crystals"])))
    characterisation = s.get("characterisation")
    if isinstance(characterisation, Mapping):
        rows.append(("resolution", _unit(characterisation.get("resolution_a"), "A")))
        rows.append(("mosaicity", _unit(characterisation.get("mosaicity_deg"), "deg")))
        flags = characterisation.get("flags")
        if flags:
            rows.append(("flags", ", ".join(map(str, flags))))
    if rows:
        console.print(_pairs("Crystal and characterisation", rows))


def _print_strategy(console: Console, strategy: Any) -> None:
    if not isinstance(strategy, Mapping):
        return
    dose = _unit(strategy.get("dose_mgy"), "MGy")
    if dose is not None and strategy.get("budget_mgy") is not None:
        dose += f" of {_unit(strategy.get('budget_mgy'), 'MGy')}"
    transmission = _number(strategy.get("transmission"))
    rows = [
        ("start", _unit(strategy.get("omega_start_deg"), "deg")),
        ("range", _unit(strategy.get("total_range_deg"), "deg")),
        ("oscillation", _unit(strategy.get("oscillation_deg"), "deg")),
        ("frames", _short(strategy.get("n_frames"))),
        ("exposure", _unit(strategy.get("exposure_s"), "s")),
        ("transmission", f"{100 * transmission:.1f} %" if transmission is not None else None),
        ("distance", _unit(strategy.get("detector_distance_mm"), "mm")),
        ("dose / budget", dose),
    ]
    console.print(_pairs("Strategy", rows))


def _print_collections(console: Console, collections: Sequence[Mapping[str, Any]]) -> None:
    if not collections:
        return
    table = Table(title="Collections", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("#", "frames", "dose", "file"):
        table.add_column(column, overflow="fold")
    simulated = any(
        isinstance(c.get("processing"), Mapping) and c["processing"].get("simulated")
        for c in collections
    )
    title = "Processing" + (" [yellow](simulated)[/yellow]" if simulated else "")
    processed = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("#", "status", "res.", "group", "compl.", "mult.", "I/sig", "CC1/2"):
        processed.add_column(column, no_wrap=True)
    for i, collection in enumerate(collections, 1):
        table.add_row(
            str(i),
            _short(collection.get("n_frames")) or "",
            _unit(collection.get("dose_mgy"), "MGy") or "",
            escape(os.path.basename(str(collection.get("master_file") or ""))),
        )
        processing = collection.get("processing")
        if isinstance(processing, Mapping):
            processed.add_row(str(i), *_processing_cells(processing))
    console.print(table)
    if processed.row_count:
        console.print(processed)


def _processing_cells(processing: Mapping[str, Any]) -> list[str]:
    """Status, resolution, space group and statistics."""
    status = escape(str(processing.get("status") or ""))
    completeness = _number(processing.get("completeness"))
    return [
        status,
        _unit(processing.get("resolution_a"), "A") or "",
        escape(str(processing.get("space_group") or "")),
        f"{100 * completeness:.1f} %" if completeness is not None else "",
        *(_short(processing.get(key)) or "" for key in ("multiplicity", "i_over_sigma", "cc_half")),
    ]


def _print_files(console: Console, files: Sequence[str]) -> None:
    if not files:
        return
    paths = [str(f) for f in files]
    try:
        directory = os.path.commonpath(paths)
    except ValueError:  # relative and absolute mixed
        directory = ""
    if directory in paths:  # one file: its folder
        directory = os.path.dirname(directory)
    names = [os.path.relpath(p, directory) if directory else p for p in paths]
    rows: list[tuple[str, Any]] = [("count", str(len(paths))), ("directory", directory or None)]
    more = len(names) - FIRST_FILES
    listing = "\n".join(names[:FIRST_FILES]) + (f"\n... and {more} more" if more > 0 else "")
    rows.append(("files", listing))
    console.print(_pairs("Files written", rows))


# -- helpers -----------------------------------------------------------------------------------


def _pairs(title: str, rows: Sequence[tuple[str, Any]]) -> Table:
    """A two-column table (name, value) of the rows whose value is not None."""
    table = Table(
        title=title,
        box=box.SIMPLE,
        show_header=False,
        title_justify="left",
        min_width=len(title) + 2,
    )
    table.add_column("name", style="dim", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in rows:
        if value is None or value == "":
            continue
        table.add_row(name, value if isinstance(value, Text) else escape(str(value)))
    return table


def _colour(report: RunReport) -> str:
    if report.status != "finished":
        return STATUS_COLOURS.get(report.status, "red")
    return "green" if report.summary.get("success", True) else "yellow"


def _lims_text(report: RunReport) -> str:
    if report.lims_records is None:
        return "none" if report.lims_pending == 0 else f"{report.lims_pending} write(s) queued"
    written = {k: v for k, v in report.lims_records.items() if v}
    text = ", ".join(f"{name} {n}" for name, n in written.items()) or "none"
    if report.lims_pending:
        text += f"; {report.lims_pending} write(s) waiting in the outbox"
    return text


def _positions(positions: Any) -> str | None:
    if not isinstance(positions, Mapping):
        return None
    axes = [axis for axis in ("phiy", "sampx", "sampy") if axis in positions]
    return ", ".join(f"{axis} {float(positions[axis]):.3f}" for axis in axes) + " mm"


def _unit(value: Any, unit: str) -> str | None:
    number = _number(value)
    return f"{number:.4g} {unit}" if number is not None else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _short(value: Any, limit: int = 80) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
