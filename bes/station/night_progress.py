"""Live progress of a night for ``bes night``: sample i/N, the step running, beamline time and
the ETA in beamline time, one line per finished sample.

It is a queue subscriber (sample states) and an engine subscriber (steps of the running
sample). On a terminal a status line is kept up to date; elsewhere only the lines are printed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from bes.engine.events import EngineEvent, NodeStarted
from bes.queue.states import FINAL
from bes.station.progress import clock_text

STATE_COLOURS = {
    "DONE": "green",
    "FAILED": "red",
    "ABORTED": "yellow",
    "SKIPPED": "yellow",
    "INTERRUPTED": "yellow",
    "QUEUED": "cyan",
}


class NightProgress:
    """``total`` samples in the night; ``clock_now``: the beamline clock (``clock.now``)."""

    def __init__(self, console: Console, total: int, clock_now: Any) -> None:
        self.console = console
        self.total = total
        self._clock_now = clock_now
        self._start_s = float(clock_now())
        self._wall0 = time.monotonic()
        self._ended = 0
        self._current: str | None = None
        self._step = ""
        self._status: Status | None = None
        self._lock = threading.Lock()
        self._names = {state.name for state in FINAL}

    @contextmanager
    def live(self) -> Iterator[None]:
        if not self.console.is_terminal:
            yield
            return
        with self.console.status(self._text()) as status:
            self._status = status
            try:
                yield
            finally:
                self._status = None

    # -- queue events ----------------------------------------------------------------------

    def on_queue_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "queue":
            reason = event.get("reason") or ""
            state = event.get("to_state")
            if state in ("PAUSED", "FAULT", "STOPPING", "ABORTING"):
                self._line(f"[yellow]queue {state}[/yellow]: {escape(str(reason))}")
        elif kind == "sample":
            self._sample(event)
        self._refresh()

    def _sample(self, event: dict[str, Any]) -> None:
        state = str(event.get("to_state") or "")
        location = str(event.get("sample") or "?")
        with self._lock:
            if state == "MOUNTING":
                self._current, self._step = location, "mount"
                return
            if state not in self._names:
                return
            if state == "QUEUED":
                return
            reason = str(event.get("reason") or "")
            retried = reason.startswith(("beamline fault", "beamline not ready"))
            if not retried:
                self._ended += 1
            number = self._ended if not retried else "retry"
            self._current = None
        colour = STATE_COLOURS.get(state, "white")
        text = escape(_first_line(event.get("reason") or ""))
        self._line(
            f"[dim]{clock_text(self._elapsed())}[/dim] [{number!s:>{len(str(self.total))}}/"
            f"{self.total}] {location:7} [{colour}]{state:8}[/{colour}] {text}"
        )

    # -- engine events ---------------------------------------------------------------------

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, NodeStarted):
            with self._lock:
                self._step = event.node_id
            self._refresh()

    # -- text ------------------------------------------------------------------------------

    def _elapsed(self) -> float:
        return float(self._clock_now()) - self._start_s

    def eta_s(self) -> float | None:
        """Beamline time left, at the mean beamline time per sample so far."""
        with self._lock:
            ended = self._ended
        if not ended:
            return None
        return self._elapsed() / ended * max(self.total - ended, 0)

    def _text(self) -> str:
        with self._lock:
            number = min(self._ended + 1, self.total)
            current, step = self._current, self._step
        eta = self.eta_s()
        where = f"{current} {step}" if current else "between samples"
        return (
            f"sample {number}/{self.total}  {escape(where)}  beamline "
            f"{clock_text(self._elapsed())}  ETA {clock_text(eta)}  "
            f"wall {clock_text(time.monotonic() - self._wall0)}"
        )

    def _refresh(self) -> None:
        status = self._status
        if status is not None:
            status.update(self._text())

    def _line(self, markup: str) -> None:
        self.console.print(markup, highlight=False)


def _first_line(text: Any) -> str:
    lines = str(text).strip().splitlines()
    return lines[0][:120] if lines else ""
