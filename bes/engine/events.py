"""Engine events: workflow and node start/end, every conditional link evaluated.

Subscribers (the workflow-database recorder, :class:`ListSubscriber` in tests) receive them
in order, from the engine's thread. Values are summarised (:func:`summarise`): numbers,
short strings and small containers as they are, arrays as shape/dtype/stats, never the data.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import PurePath
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)

MAX_STR = 200
MAX_ITEMS = 20
MAX_DEPTH = 4
MAX_STATS_ELEMENTS = 16_000_000


@dataclass(frozen=True)
class NodeError:
    """Why a node (or the workflow) failed: which node, what kind, the message and traceback."""

    node_id: str | None
    task_identifier: str | None
    kind: str
    """``exception``, ``timeout``, ``loop_limit`` or ``missing_condition_output``."""
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        where = f"node {self.node_id!r}" if self.node_id else "workflow"
        return f"{where}: {self.kind}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class EngineEvent:
    kind: ClassVar[str] = "event"
    run_id: str
    workflow: str
    time: float
    """Wall clock, seconds since the epoch."""
    beamline_time_s: float | None = None
    """The beamline clock at the event (simulated time on a simulated beamline)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, with ``kind``."""
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True, kw_only=True)
class WorkflowStarted(EngineEvent):
    kind: ClassVar[str] = "workflow_started"
    inputs: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    """The recipe file, when the recipe came from one."""
    recipe_sha256: str | None = None
    """SHA-256 of the recipe's JSON (keys sorted): which exact recipe ran, file or REST dict."""
    recipe_version: str | None = None
    """``graph.mxbes.version`` of the recipe, when it declares one."""


@dataclass(frozen=True, kw_only=True)
class WorkflowEnded(EngineEvent):
    kind: ClassVar[str] = "workflow_ended"
    status: str
    """``finished``, ``failed`` or ``aborted``."""
    error: NodeError | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    node_executions: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class NodeStarted(EngineEvent):
    kind: ClassVar[str] = "node_started"
    node_id: str
    task_identifier: str
    execution: int
    """1 for the node's first run in this workflow, 2 for the second (loops), ..."""
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class NodeEnded(EngineEvent):
    kind: ClassVar[str] = "node_ended"
    node_id: str
    task_identifier: str
    execution: int
    status: str
    """``finished``, ``failed``, ``timeout`` or ``aborted``."""
    outputs: dict[str, Any] = field(default_factory=dict)
    error: NodeError | None = None
    handled: bool = False
    """True when a failure goes on to an error handler (``on_error`` link)."""
    duration_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class MetadataReported(EngineEvent):
    """A task reported a metadata item (crystal size, max score, resolution ...) with its unit
    (``BesTask.report``). ``node_id``/``execution``: the node running when it was reported."""

    kind: ClassVar[str] = "metadata_reported"
    node_id: str | None
    execution: int | None
    key: str
    value: Any
    unit: str | None = None


@dataclass(frozen=True)
class ConditionCheck:
    output: str
    expected: Any
    value: Any
    satisfied: bool


@dataclass(frozen=True, kw_only=True)
class ConditionEvaluated(EngineEvent):
    kind: ClassVar[str] = "condition_evaluated"
    source: str
    target: str
    checks: tuple[ConditionCheck, ...]
    taken: bool


@runtime_checkable
class Subscriber(Protocol):
    """Receives engine events. Exceptions it raises are logged, never stop the workflow."""

    def on_event(self, event: EngineEvent) -> None: ...


E = TypeVar("E", bound=EngineEvent)


class ListSubscriber:
    """Keeps every event in a list (tests, small tools)."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []
        self._lock = threading.Lock()

    def on_event(self, event: EngineEvent) -> None:
        with self._lock:
            self.events.append(event)

    def of_type(self, event_type: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, event_type)]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def emit(subscribers: list[Subscriber], event: EngineEvent) -> None:
    """Give ``event`` to every subscriber; a failing subscriber is logged and skipped."""
    for subscriber in subscribers:
        try:
            subscriber.on_event(event)
        except Exception:
            logger.exception("event subscriber %r failed on %s", subscriber, event.kind)


def summarise(value: Any, depth: int = 0) -> Any:
    """A small, JSON-friendly picture of ``value`` for events and records."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_STR else value[:MAX_STR] + f"... ({len(value)} chars)"
    if isinstance(value, np.ndarray):
        return _summarise_array(value)
    if isinstance(value, np.generic):
        return summarise(value.item(), depth)
    if isinstance(value, Enum):
        return summarise(value.value, depth)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return {"type": type(value).__name__, "len": len(value)}
    if depth >= MAX_DEPTH:
        return _short_repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, **summarise(fields, depth + 1)}
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {str(k): summarise(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["..."] = f"{len(items) - MAX_ITEMS} more keys"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        if len(seq) <= MAX_ITEMS:
            return [summarise(v, depth + 1) for v in seq]
        return {
            "type": type(value).__name__,
            "len": len(seq),
            "head": [summarise(v, depth + 1) for v in seq[:5]],
        }
    return _short_repr(value)


def _summarise_array(array: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    real = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if 0 < array.size <= MAX_STATS_ELEMENTS and (real or array.dtype == np.bool_):
        data = array.astype(np.float64, copy=False) if array.dtype == np.bool_ else array
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out["min"] = summarise(float(np.nanmin(data)))
            out["max"] = summarise(float(np.nanmax(data)))
            out["mean"] = summarise(float(np.nanmean(data)))
    return out


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_STR else text[:MAX_STR] + "..."
