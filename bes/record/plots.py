"""Plots of the standard mining queries (matplotlib ``Figure`` objects, no pyplot state).

``PLOTS[name](frame)`` draws the DataFrame that ``Miner.<name>`` returned; it gives None
when there is nothing to draw (no rows)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bes.record.summary import bin_edges

SIZE = (7.0, 4.2)


def _figure(rows: int = 0, width: float = SIZE[0]) -> tuple[Figure, Axes]:
    """A figure with one axes, taller when it lists ``rows`` labels."""
    figure = Figure(figsize=(width, max(SIZE[1], 0.3 * rows + 1)), layout="constrained")
    axes: Axes = figure.subplots()
    return figure, axes


def success_per_recipe(frame: pd.DataFrame) -> Figure | None:
    if frame.empty:
        return None
    figure, ax = _figure()
    labels = [f"{r}\n(n={n})" for r, n in zip(frame["recipe"], frame["runs"], strict=True)]
    ax.bar(labels, frame["success_rate"] * 100.0, color="tab:green")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Success rate per recipe")
    return figure


def success_per_step(frame: pd.DataFrame) -> Figure | None:
    if frame.empty:
        return None
    figure, ax = _figure(rows=len(frame))
    labels = [f"{r}: {n}" for r, n in zip(frame["recipe"], frame["node_id"], strict=True)]
    ax.barh(labels, frame["success_rate"] * 100.0, color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel("executions that finished (%)")
    ax.set_xlim(0, 100)
    ax.set_title("Success rate per step")
    return figure


def step_time_histogram(frame: pd.DataFrame) -> Figure | None:
    if frame.empty:
        return None
    figure, ax = _figure()
    for (recipe, node_id), group in frame.groupby(["recipe", "node_id"], sort=True):
        bins = group["bin"].astype(int).to_numpy()
        span = np.arange(bins.min(), bins.max() + 2)  # empty bins in between drawn as zero
        counts = np.zeros(len(span) - 1)
        counts[bins - bins.min()] = group["n"].to_numpy(dtype=float)
        edges = [bin_edges(int(b))[0] for b in span]
        ax.stairs(counts / counts.sum(), edges, label=f"{recipe}: {node_id}")
    ax.set_xscale("log")
    ax.set_xlabel("step time (s, beamline clock)")
    ax.set_ylabel("fraction of executions")
    ax.set_title("Time per step")
    ax.legend(fontsize="x-small", ncols=2)
    return figure


def failure_reasons(frame: pd.DataFrame) -> Figure | None:
    if frame.empty:
        return None
    top = frame.head(12)
    figure, ax = _figure(rows=len(top), width=SIZE[0] + 2)
    labels = [_cut(str(reason), 60) for reason in top["reason"]]
    ax.barh(labels, top["runs"], color="tab:red")
    ax.invert_yaxis()
    ax.set_xlabel("runs")
    ax.set_title("Reasons of failure")
    return figure


def _scatter(frame: pd.DataFrame, x: str, y: str, xlabel: str, title: str) -> Figure | None:
    if frame.empty:
        return None
    figure, ax = _figure()
    for recipe, group in frame.groupby("recipe", sort=True):
        ax.scatter(group[x], group[y], s=4, alpha=0.4, label=str(recipe))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("resolution (A)")
    ax.invert_yaxis()
    ax.set_title(f"{title} ({len(frame)} runs)")
    ax.legend(fontsize="x-small", markerscale=3)
    return figure


def crystal_size_vs_resolution(frame: pd.DataFrame) -> Figure | None:
    figure = _scatter(
        frame, "crystal_size_um", "resolution_a", "crystal size (um)", "Crystal size vs resolution"
    )
    if figure is not None:
        figure.axes[0].set_xscale("log")
    return figure


def max_score_vs_resolution(frame: pd.DataFrame) -> Figure | None:
    return _scatter(frame, "max_score", "resolution_a", "max score", "Max score vs resolution")


def samples_per_night(frame: pd.DataFrame) -> Figure | None:
    if frame.empty:
        return None
    figure, ax = _figure()
    column = "samples_per_hour" if frame["samples"].sum() > 0 else "runs_per_hour"
    for beamline, group in frame.groupby("beamline", sort=True):
        nights = pd.to_datetime(group["night"])
        ax.plot(nights, group[column], marker=".", linestyle="-", label=str(beamline) or "?")
    ax.set_ylabel(column.replace("_", " "))
    ax.set_title("Throughput per night")
    ax.legend(fontsize="x-small")
    figure.autofmt_xdate()
    return figure


def decisions_per_branch(frame: pd.DataFrame) -> Figure | None:
    if frame.empty:
        return None
    figure, ax = _figure(rows=len(frame))
    labels = [
        f"{r}: {s} -> {t}"
        for r, s, t in zip(frame["recipe"], frame["node_id"], frame["target"], strict=True)
    ]
    ax.barh(labels, frame["taken_fraction"] * 100.0, color="tab:purple")
    ax.invert_yaxis()
    ax.set_xlabel("taken (% of evaluations)")
    ax.set_xlim(0, 100)
    ax.set_title("Decisions per branch")
    return figure


PLOTS: dict[str, Callable[[pd.DataFrame], Figure | None]] = {
    "success_per_recipe": success_per_recipe,
    "success_per_step": success_per_step,
    "step_times": step_time_histogram,
    "failure_reasons": failure_reasons,
    "crystal_size_vs_resolution": crystal_size_vs_resolution,
    "max_score_vs_resolution": max_score_vs_resolution,
    "samples_per_night": samples_per_night,
    "decisions_per_branch": decisions_per_branch,
}
"""Query name -> plot of its frame (``step_times`` is drawn from the step-time histogram)."""


def save_png(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
