"""Replaying one recorded run: its node executions, decisions, metadata and device actions
merged into one timeline (``bes runs show ID``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, String, cast, select

from bes.record.database import Database
from bes.record.schema import (
    Decision,
    DeviceActionRow,
    MetadataItem,
    NodeExecution,
    Run,
    RunSummary,
)

RUNS = Run.__table__
MIN_PREFIX = 4
_ORDER = {"node start": 0, "device": 1, "metadata": 2, "node end": 3, "decision": 4}


class RunNotFound(LookupError):
    """No run, or more than one, matches the id given."""


@dataclass(frozen=True)
class Entry:
    """One line of a run's timeline."""

    wall_s: float
    """Wall-clock seconds since the run started."""
    beamline_s: float | None
    """Beamline-clock seconds since the run started (simulated time on a simulator)."""
    kind: str
    """``node start``, ``node end``, ``decision``, ``metadata`` or ``device``."""
    node: str
    """``node_id#execution``."""
    text: str


@dataclass(frozen=True)
class Timeline:
    run: dict[str, Any]
    summary: dict[str, Any] | None
    entries: list[Entry]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [vars(entry) for entry in self.entries],
            columns=["wall_s", "beamline_s", "kind", "node", "text"],
        )

    def count(self, kind: str) -> int:
        return sum(1 for entry in self.entries if entry.kind == kind)


def find_run(connection: Connection, reference: str | int) -> dict[str, Any]:
    """The run whose ``runs.id`` is ``reference`` (a number), or whose engine run id is or
    starts with it (at least 4 characters)."""
    text = str(reference).strip()
    if text.isdigit() and len(text) < 16:
        row = connection.execute(select(RUNS).where(RUNS.c.id == int(text))).mappings().first()
        if row is not None:
            return dict(row)
    if len(text) < MIN_PREFIX:
        raise RunNotFound(
            f"no run {text!r}; give a run number or at least {MIN_PREFIX} "
            "characters of a run id (`bes runs list` shows them)"
        )
    rows = (
        connection.execute(
            select(RUNS)
            .where(cast(RUNS.c.run_id, String).like(f"{_escape(text)}%", escape="\\"))
            .limit(2)
        )
        .mappings()
        .all()
    )
    if not rows:
        raise RunNotFound(f"no run {text!r} in the workflow database (`bes runs list`)")
    if len(rows) > 1:
        raise RunNotFound(f"run id prefix {text!r} matches several runs; give more characters")
    return dict(rows[0])


def load_timeline(database: Database, reference: str | int) -> Timeline:
    """The run named by ``reference`` (see :func:`find_run`) and its timeline, in order."""
    with database.engine.connect() as connection:
        run = find_run(connection, reference)
        key = run["id"]
        summary = (
            connection.execute(select(RunSummary.__table__).where(RunSummary.run_id == key))
            .mappings()
            .first()
        )
        nodes = _rows(connection, NodeExecution, key)
        decisions = _rows(connection, Decision, key)
        metadata = _rows(connection, MetadataItem, key)
        devices = _rows(connection, DeviceActionRow, key)
    t0 = run["start_time"]
    b0 = run["start_beamline_s"]

    def at(wall: float, beamline: float | None) -> tuple[float, float | None]:
        return wall - t0, (beamline - b0) if beamline is not None and b0 is not None else None

    entries: list[tuple[float, int, int, Entry]] = []

    def add(wall: float, beamline: float | None, kind: str, node: str, text: str) -> None:
        entry = Entry(*at(wall, beamline), kind=kind, node=node, text=text)
        entries.append((entry.wall_s, _ORDER[kind], len(entries), entry))

    for n in nodes:
        name = f"{n['node_id']}#{n['execution']}"
        add(
            n["start_time"],
            n["start_beamline_s"],
            "node start",
            name,
            f"{n['task_identifier'].rsplit('.', 1)[-1]} inputs {_short(n['inputs'])}",
        )
        end_bt = (
            n["start_beamline_s"] + n["beamline_s"]
            if n["start_beamline_s"] is not None and n["beamline_s"] is not None
            else None
        )
        took = f"{n['beamline_s']:.3f} s" if n["beamline_s"] is not None else "-"
        if n["status"] == "finished":
            detail = f"outputs {_short(n['outputs'])}"
        else:
            detail = f"{n['error_kind'] or ''}: {n['error_message'] or ''}".strip(": ")
            if n["handled"]:
                detail += " (handled by on_error link)"
        add(
            n["end_time"],
            end_bt,
            "node end",
            name,
            f"{n['status']} in {took} (wall {n['wall_s']:.4f} s); {detail}",
        )
    for d in decisions:
        verdict = "taken" if d["taken"] else "not taken"
        add(
            d["time"],
            d["beamline_time_s"],
            "decision",
            f"{d['node_id']}#{d['execution']}",
            f"-> {d['target']} {verdict}: {d['condition']} ({d['reason']})",
        )
    for m in metadata:
        unit = f" {m['unit']}" if m["unit"] else ""
        add(
            m["time"],
            m["beamline_time_s"],
            "metadata",
            f"{m['node_id']}#{m['execution']}",
            f"{m['key']} = {_short(m['value'])}{unit}",
        )
    for a in devices:
        start_wall = a["time"] - a["wall_s"]
        add(
            start_wall,
            a["start_beamline_s"],
            "device",
            f"{a['node_id']}#{a['execution']}",
            f"{a['device']}.{a['action']} {a['beamline_s']:.3f} s (wall {a['wall_s']:.4f} s) "
            f"{_short(a['details']) if a['details'] else ''}".rstrip(),
        )
    entries.sort(key=lambda item: item[:3])
    return Timeline(
        run=run,
        summary=dict(summary) if summary is not None else None,
        entries=[item[3] for item in entries],
    )


def _rows(connection: Connection, model: Any, key: int) -> list[dict[str, Any]]:
    table = model.__table__
    statement = select(table).where(table.c.run_id == key).order_by(table.c.id)
    return [dict(row) for row in connection.execute(statement).mappings()]


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
