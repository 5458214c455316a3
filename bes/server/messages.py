"""Engine events in words for MXCuBE's log (``log_message(message, level)``): node started and
ended, each decision taken, the reasons the tasks report, the end of the workflow."""

from __future__ import annotations

from typing import Protocol

from bes.engine.events import (
    ConditionEvaluated,
    EngineEvent,
    MetadataReported,
    NodeEnded,
    NodeStarted,
    WorkflowEnded,
    WorkflowStarted,
)

MAX_MESSAGE = 300


class LogSink(Protocol):
    def log_message(self, message: str, level: str = "info") -> None: ...


def describe(event: EngineEvent) -> tuple[str, str] | None:
    """``(message, level)`` for an event worth telling the user, else None."""
    if isinstance(event, WorkflowStarted):
        sample = event.inputs.get("sample") if isinstance(event.inputs, dict) else None
        on = f" on sample {sample}" if sample else ""
        return f"BES: workflow {event.workflow} started{on} (run {event.run_id})", "info"
    if isinstance(event, NodeStarted):
        return f"BES: {_node(event)} started", "info"
    if isinstance(event, NodeEnded):
        took = f" in {event.duration_s:.1f} s" if event.duration_s else ""
        if event.error is None:
            return f"BES: {_node(event)} {event.status}{took}", "info"
        handled = " (handled)" if event.handled else ""
        text = f"BES: {_node(event)} {event.status}{took}: {_first_line(event.error.message)}"
        return text + handled, "warning" if event.handled else "error"
    if isinstance(event, ConditionEvaluated):
        if not event.taken:
            return None
        checks = ", ".join(f"{c.output} = {c.value!r}" for c in event.checks)
        because = f" ({checks})" if checks else ""
        return f"BES: decision {event.source} -> {event.target}{because}", "info"
    if isinstance(event, MetadataReported):
        if event.key != "reason" or event.value is None:
            return None
        return f"BES: {event.value}", "info"
    if isinstance(event, WorkflowEnded):
        if event.status == "finished":
            return f"BES: workflow {event.workflow} finished", "info"
        why = f": {event.error}" if event.error is not None else ""
        level = "warning" if event.status == "aborted" else "error"
        return f"BES: workflow {event.workflow} {event.status}{why}", level
    return None


class LogReporter:
    """An engine subscriber that sends :func:`describe` of each event to ``sink``."""

    def __init__(self, sink: LogSink) -> None:
        self.sink = sink
        self._last_reason: str | None = None

    def on_event(self, event: EngineEvent) -> None:
        said = describe(event)
        if said is None:
            return
        message, level = said
        if isinstance(event, MetadataReported):
            if message == self._last_reason:
                return
            self._last_reason = message
        self.sink.log_message(_short(message), level)


def _node(event: NodeStarted | NodeEnded) -> str:
    name = event.task_identifier.rsplit(".", 1)[-1]
    return f"{event.node_id} #{event.execution} ({name})"


def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."
