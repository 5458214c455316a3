"""The per-run summary and the per-step counts, kept up while a run goes on and written when
it ends, so that mining a million samples reads small tables instead of the raw rows.

Well-known metadata keys (what a task reports with ``self.report(key, value, unit)``) fill
the summary's columns; any other key stays in ``metadata_items`` only.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

BINS_PER_DECADE = 10
BIN_ORIGIN_S = 1e-3
N_BINS = 80
"""Step-time histogram: bin ``b`` holds [1 ms * 10**(b/10), 1 ms * 10**((b+1)/10)); the first
bin also holds shorter times, the last longer ones (1e5 s and more)."""

NIGHT_OFFSET_S = 12 * 3600
"""A night runs from noon to noon (UTC): its date is the date of (start - 12 h)."""

NUMERIC_KEYS: dict[str, str] = {
    "crystal_size_um": "um",
    "crystal_volume_um3": "um3",
    "max_score": "",
    "resolution_a": "A",
    "dose_mgy": "MGy",
    "mosaicity_deg": "deg",
}
"""Metadata key -> unit, for keys summarised per run (the column has the key's name).
``crystal_size_um``: the crystal's largest extent; ``max_score``: the best mesh score
(DOZOR-like); ``resolution_a``: resolution of the data (or of characterisation)."""
MAX_KEYS = frozenset({"max_score"})
"""Numeric keys a run reports more than once (one per mesh) whose summary is the largest."""
TEXT_KEYS = ("space_group", "outcome", "reason")
"""Text keys summarised per run. ``outcome``: the recipe's verdict on the sample (e.g.
``collected``, ``no_diffraction``); ``reason``: why, in a few words."""
SUCCESS_KEY = "success"
"""A boolean: the recipe's own verdict (a finished run that found no crystal: false)."""

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
MAX_REASON = 200


def duration_bin(seconds: float) -> int:
    """The histogram bin of a step time (see :data:`N_BINS`)."""
    if not seconds > BIN_ORIGIN_S:  # also NaN
        return 0
    return min(N_BINS - 1, math.floor(BINS_PER_DECADE * math.log10(seconds / BIN_ORIGIN_S)))


def bin_edges(index: int) -> tuple[float, float]:
    """Lower and upper step time (s) of histogram bin ``index``."""
    return (
        BIN_ORIGIN_S * 10 ** (index / BINS_PER_DECADE),
        BIN_ORIGIN_S * 10 ** ((index + 1) / BINS_PER_DECADE),
    )


def day_of(epoch_s: float) -> str:
    """UTC date ``YYYY-MM-DD`` of a wall-clock time."""
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_s))


def night_of(epoch_s: float) -> str:
    return day_of(epoch_s - NIGHT_OFFSET_S)


def normalise_reason(text: str | None) -> str | None:
    """First line, numbers replaced by ``#``, at most 200 characters: alike failures group."""
    if not text:
        return None
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    line = _NUMBER.sub("#", line)
    return line[:MAX_REASON] or None


def as_number(value: Any) -> float | None:
    """``value`` as a float for SQL when it is a finite number or a boolean, else None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


@dataclass
class RunTally:
    """What one run did so far: counts, summarised metadata, step times, decisions."""

    n_nodes: int = 0
    n_failed_nodes: int = 0
    n_decisions: int = 0
    n_metadata: int = 0
    n_device_actions: int = 0
    values: dict[str, Any] = field(default_factory=dict)
    """Summary column -> last value reported."""
    success: bool | None = None
    steps: dict[tuple[str, str, int], list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0.0])
    )
    """(node, status, bin) -> [count, total seconds]."""
    links: dict[tuple[str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    """(source node, target node) -> [evaluated, taken]."""
    ignored_units: list[str] = field(default_factory=list)

    def node(self, node_id: str, status: str, step_s: float) -> None:
        self.n_nodes += 1
        if status != "finished":
            self.n_failed_nodes += 1
        counts = self.steps[(node_id, status, duration_bin(step_s))]
        counts[0] += 1
        counts[1] += step_s

    def decision(self, node_id: str, target: str, taken: bool) -> None:
        self.n_decisions += 1
        counts = self.links[(node_id, target)]
        counts[0] += 1
        counts[1] += int(taken)

    def metadata(self, key: str, value: Any, unit: str | None) -> None:
        self.n_metadata += 1
        if key in NUMERIC_KEYS:
            wanted = NUMERIC_KEYS[key] or None
            number = as_number(value)
            if number is None:
                return
            if unit not in (None, wanted) and not (wanted is None and unit == ""):
                self.ignored_units.append(f"{key} in {unit!r}, expected {wanted!r}")
                return
            previous = self.values.get(key)
            if key in MAX_KEYS and isinstance(previous, float | int):
                number = max(number, previous)
            self.values[key] = number
        elif key in TEXT_KEYS:
            self.values[key] = None if value is None else str(value)
        elif key == SUCCESS_KEY and isinstance(value, bool):
            self.success = value

    def summary(
        self,
        *,
        run_id: int | str,
        start_time: float,
        end_time: float,
        wall_s: float,
        beamline_s: float | None,
        recipe: str,
        beamline: str | None,
        session: str | None,
        sample: str | None,
        status: str,
        error_node: str | None,
        error_text: str | None,
    ) -> dict[str, Any]:
        """The ``run_summary`` row of the ended run."""
        success = status == "finished" and self.success is not False
        reason = error_text if status != "finished" else self.values.get("reason")
        if status == "aborted" and not reason:
            reason = "aborted"
        return {
            "run_id": run_id,
            "day": day_of(start_time),
            "night": night_of(start_time),
            "start_time": start_time,
            "end_time": end_time,
            "wall_s": wall_s,
            "beamline_s": beamline_s,
            "recipe": recipe,
            "beamline": beamline,
            "session": session,
            "sample": sample,
            "status": status,
            "success": success,
            "outcome": (self.values.get("outcome") or status)[:64],
            "reason": None if success else normalise_reason(reason),
            "error_node": error_node,
            "n_nodes": self.n_nodes,
            "n_failed_nodes": self.n_failed_nodes,
            "n_decisions": self.n_decisions,
            "n_metadata": self.n_metadata,
            "n_device_actions": self.n_device_actions,
            **{key: self.values.get(key) for key in NUMERIC_KEYS},
            "space_group": self.values.get("space_group"),
        }

    def step_rows(self, day: str, beamline: str | None, recipe: str) -> list[dict[str, Any]]:
        """``step_stats`` increments of this run, for its day and its month."""
        return [
            {
                "period": period,
                "beamline": beamline or "",
                "recipe": recipe,
                "node_id": node_id,
                "status": status,
                "bin": index,
                "n": int(n),
                "total_s": float(total),
            }
            for period in (day, day[:7])
            for (node_id, status, index), (n, total) in self.steps.items()
        ]

    def decision_rows(self, day: str, beamline: str | None, recipe: str) -> list[dict[str, Any]]:
        """``decision_stats`` increments of this run, for its day and its month."""
        return [
            {
                "period": period,
                "beamline": beamline or "",
                "recipe": recipe,
                "node_id": node_id,
                "target": target,
                "n_evaluated": evaluated,
                "n_taken": taken,
            }
            for period in (day, day[:7])
            for (node_id, target), (evaluated, taken) in self.links.items()
        ]
