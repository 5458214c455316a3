"""Running the standard mining queries, and the one-page HTML report (``bes mine --html``)."""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from bes.record.mining import STANDARD_QUERIES, Filters, Miner, Query
from bes.record.plots import PLOTS, png_bytes, save_png

MAX_TABLE_ROWS = 30


@dataclass(frozen=True)
class Answer:
    """One standard query's result: the table, its plot, and how long the query took."""

    query: Query
    frame: pd.DataFrame
    plot_frame: pd.DataFrame
    seconds: float

    def figure(self) -> Figure | None:
        return PLOTS[self.query.name](self.plot_frame)


def run_queries(miner: Miner, filters: Filters, names: Iterable[str] | None = None) -> list[Answer]:
    """Answer the named standard queries (all of them by default), in report order."""
    wanted = list(names) if names else list(STANDARD_QUERIES)
    unknown = [name for name in wanted if name not in STANDARD_QUERIES]
    if unknown:
        raise ValueError(
            f"unknown mining query {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(STANDARD_QUERIES)}"
        )
    answers = []
    for name in wanted:
        query = STANDARD_QUERIES[name]
        start = time.perf_counter()
        frame = query.method(miner, filters)
        seconds = time.perf_counter() - start
        plot_frame = miner.step_time_histogram(filters) if name == "step_times" else frame
        answers.append(Answer(query, frame, plot_frame, seconds))
    return answers


def write_plots(answers: Iterable[Answer], directory: Path) -> list[Path]:
    """One PNG per answer that has something to draw: ``<directory>/<query>.png``."""
    written = []
    for answer in answers:
        figure = answer.figure()
        if figure is not None:
            written.append(save_png(figure, directory / f"{answer.query.name}.png"))
    return written


def write_html(answers: Iterable[Answer], filters: Filters, path: Path, source: str) -> Path:
    """A self-contained page: every plot (inline PNG) above its table."""
    sections = []
    for answer in answers:
        figure = answer.figure()
        image = (
            f'<img alt="{html.escape(answer.query.title)}" src="data:image/png;base64,'
            f'{base64.b64encode(png_bytes(figure)).decode()}">'
            if figure is not None
            else "<p><em>no data</em></p>"
        )
        shown = answer.frame.head(MAX_TABLE_ROWS)
        more = len(answer.frame) - len(shown)
        table = shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
        note = f"<p>... {more} more rows</p>" if more > 0 else ""
        sections.append(
            f"<section><h2>{html.escape(answer.query.title)}</h2>{image}{table}{note}"
            f"<p class=t>query {answer.seconds * 1000:.0f} ms</p></section>"
        )
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>mxbes workflow database report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
img {{ max-width: 100%; }} .t {{ color: #888; font-size: 0.8em; }}
</style></head><body>
<h1>Workflow database report</h1>
<p>{html.escape(source)} &mdash; {html.escape(filters.describe())} &mdash; made
{time.strftime("%Y-%m-%d %H:%M:%S %Z")}</p>
{"".join(sections)}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
