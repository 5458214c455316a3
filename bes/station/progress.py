"""Live progress of a run for ``bes run``: an engine subscriber that prints one line per node
start and end (beamline clock since the run started, node, execution number), each
decision taken as it happens, and the reasons the tasks report.

On a terminal the lines are coloured and a status line shows the node running; elsewhere
(a pipe, a log file) they are plain text and nothing else is printed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from bes.engine.events import (
    ConditionEvaluated,
    EngineEvent,
    MetadataReported,
    NodeEnded,
    NodeStarted,
    WorkflowEnded,
    WorkflowStarted,
)

STATUS_COLOURS = {"finished": "green", "failed": "red", "timeout": "red", "aborted": "yellow"}


def clock_text(seconds: float | None) -> str:
    """``mm:ss.s`` (``h:mm:ss`` from an hour on); ``--:--.-`` when unknown."""
    if seconds is None:
        return "--:--.-"
    seconds = max(seconds, 0.0)
    if seconds >= 3600:
        hours, rest = divmod(int(seconds), 3600)
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    minutes, rest_s = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest_s:04.1f}"


class ProgressPrinter:
    """Prints the events of the runs it is subscribed to (see the module docstring)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console if console is not None else Console()
        self._start_s: float | None = None
        self._node_start_s: dict[str, float | None] = {}
        self._last_reason: str | None = None
        self._status: Status | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def live(self, text: str) -> Iterator[None]:
        """While inside, a terminal shows a status line with the node running."""
        if not self.console.is_terminal:
            yield
            return
        with self.console.status(escape(text)) as status:
            self._status = status
            try:
                yield
            finally:
                self._status = None

    def on_event(self, event: EngineEvent) -> None:
        with self._lock:
            if isinstance(event, WorkflowStarted):
                self._started(event)
            elif isinstance(event, NodeStarted):
                self._node_started(event)
            elif isinstance(event, NodeEnded):
                self._node_ended(event)
            elif isinstance(event, ConditionEvaluated):
                self._condition(event)
            elif isinstance(event, MetadataReported):
                self._metadata(event)
            elif isinstance(event, WorkflowEnded):
                self._ended(event)

    # -- one handler per event -------------------------------------------------------------

    def _started(self, event: WorkflowStarted) -> None:
        self._start_s = event.beamline_time_s
        self._node_start_s.clear()
        self._last_reason = None
        sample = event.inputs.get("sample")
        what = f"{event.workflow}" + (f" sample {sample}" if sample else "")
        self._print(f"[bold]{escape(what)}[/bold]  run {event.run_id[:8]}", event)

    def _node_started(self, event: NodeStarted) -> None:
        self._node_start_s[event.node_id] = event.beamline_time_s
        self._print(f"[cyan]start[/cyan]  {_node(event.node_id, event.execution)}", event)
        if self._status is not None:
            self._status.update(escape(f"{event.node_id} #{event.execution} ..."))

    def _node_ended(self, event: NodeEnded) -> None:
        colour = STATUS_COLOURS.get(event.status, "cyan")
        started = self._node_start_s.pop(event.node_id, None)
        took = _difference(event.beamline_time_s, started)
        text = f"[{colour}]{_word(event.status)}[/{colour}] {_node(event.node_id, event.execution)}"
        if took is not None:
            text += f" ({took:.1f} s)"
        if event.error is not None:
            handled = " (handled)" if event.handled else ""
            text += f": {escape(event.error.kind)}: {escape(_first_line(event.error.message))}"
            text += handled
        self._print(text, event)

    def _condition(self, event: ConditionEvaluated) -> None:
        if not event.taken:
            return
        checks = ", ".join(f"{c.output} = {c.value!r}" for c in event.checks)
        text = f"       [magenta]->[/magenta] {escape(event.target)}"
        if checks:
            text += f"  [dim]({escape(checks)})[/dim]"
        self._print(text, event)

    def _metadata(self, event: MetadataReported) -> None:
        if event.key != "reason" or event.value is None:
            return
        reason = str(event.value)
        if reason == self._last_reason:
            return
        self._last_reason = reason
        self._print(f"       [dim]reason:[/dim] {escape(reason)}", event)

    def _ended(self, event: WorkflowEnded) -> None:
        colour = STATUS_COLOURS.get(event.status, "cyan")
        text = f"[bold {colour}]{event.status}[/bold {colour}] {escape(event.workflow)}"
        if event.error is not None:
            text += f": {escape(str(event.error))}"
        self._print(text, event)

    def _print(self, text: str, event: EngineEvent) -> None:
        when = clock_text(_difference(event.beamline_time_s, self._start_s))
        self.console.print(f"[dim]{when}[/dim]  {text}", highlight=False, soft_wrap=True)


def _node(node_id: str, execution: int) -> str:
    return f"{escape(node_id)} #{execution}"


def _word(status: str) -> str:
    return {"finished": "done  "}.get(status, f"{status}")


def _difference(end: float | None, start: float | None) -> float | None:
    return end - start if end is not None and start is not None else None


def _first_line(text: Any) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""
