"""What a running workflow can reach: the beamline, recorder, LIMS client, abort flag, limits.

The engine hands one :class:`RunContext` to every task it instantiates (``BesTask.context``,
see ``bes/tasks/base.py``). Nothing here is global: two workflows may run side by side, each
with its own context.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bes.engine.events import Subscriber
    from bes.hal import Beamline


UNUSED_INPUTS_KEY = "unused_inputs"
"""``RunContext.state`` key: the run's input names that no task takes (set by the engine at
the start of a run; a task may refuse them)."""

MetadataSink = Callable[[str, Any, "str | None"], None]
MAX_METADATA_KEY = 64
MAX_METADATA_UNIT = 16


def check_metadata(key: str, unit: str | None) -> None:
    """A metadata key is a short non-empty name; a unit is a short string or None."""
    if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY:
        raise ValueError(
            f"metadata key must be a non-empty string of at most {MAX_METADATA_KEY} "
            f"characters, got {key!r}"
        )
    if unit is not None and (not isinstance(unit, str) or len(unit) > MAX_METADATA_UNIT):
        raise ValueError(
            f"metadata unit of {key!r} must be None or a string of at most "
            f"{MAX_METADATA_UNIT} characters, got {unit!r}"
        )


class WorkflowAborted(Exception):
    """Raised by :meth:`RunContext.check_abort` inside a task once an abort was requested."""


@dataclass(frozen=True)
class Limits:
    """Bounds that keep an unattended night from hanging."""

    task_timeout_s: float | None = None
    """Longest one task may run (wall time); ``None``: no bound."""
    workflow_timeout_s: float | None = None
    """Longest the whole workflow may run (wall time); ``None``: no bound."""
    max_node_executions: int = 100_000
    """How often one node may run in one workflow (a loop that never exits fails here)."""
    abort_grace_s: float = 5.0
    """After an abort or timeout, how long to wait for the running task to notice and end."""

    def __post_init__(self) -> None:
        for name in ("task_timeout_s", "workflow_timeout_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value!r}")
        if self.max_node_executions < 1:
            raise ValueError(f"max_node_executions must be >= 1, got {self.max_node_executions}")
        if self.abort_grace_s < 0:
            raise ValueError(f"abort_grace_s must be >= 0, got {self.abort_grace_s}")


@dataclass
class RunContext:
    """Everything a task of one workflow run may use, besides its inputs.

    ``abort`` is the run's stop signal: set it (or call :meth:`request_abort`) from any
    thread and the workflow ends ``aborted`` at the next node boundary; the engine also
    stops the beamline so that a running move or exposure ends at once. The engine sets it
    itself on a timeout. It stays set afterwards: use :meth:`fresh` for the next run.
    """

    beamline: Beamline | None = None
    recorder: Subscriber | None = None
    """Receives every engine event (the workflow database's recorder)."""
    lims: Any = None
    """The LIMS client (``lims.client``), or None when nothing is sent to a LIMS."""
    abort: threading.Event = field(default_factory=threading.Event)
    limits: Limits = field(default_factory=Limits)
    abort_reason: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    """What the run's tasks share besides their links: the MX tasks keep the sample's
    ``bes.tasks.mx_state.SampleRun`` here (parameters, data layout, LIMS writer, dose used)."""
    between_steps: Callable[[], None] | None = None
    """Called by the engine thread between two node executions, holding no engine lock: a
    queue pauses a run here (it returns when the run may go on; an abort set meanwhile ends
    the run at once). Time spent in it does not count towards ``workflow_timeout_s``."""
    metadata_sink: MetadataSink | None = field(default=None, init=False, repr=False, compare=False)
    """Set by the engine while it runs a workflow with this context: where :meth:`report`
    sends metadata (the engine turns it into a MetadataReported event)."""

    def report(self, key: str, value: Any, unit: str | None = None) -> None:
        """Report a metadata item of the running node, with its unit (``"um"``, ``"A"``,
        ``"MGy"``, None for a count or text): the recorder stores it per step. Does nothing
        outside a run. See docs/record.md for the keys the workflow database summarises."""
        check_metadata(key, unit)
        sink = self.metadata_sink
        if sink is not None:
            sink(key, value, unit)

    def request_abort(self, reason: str = "abort requested") -> None:
        """Ask the running workflow to stop; safe from any thread or a signal handler."""
        if self.abort_reason is None:
            self.abort_reason = reason
        self.abort.set()

    @property
    def aborted(self) -> bool:
        return self.abort.is_set()

    def check_abort(self) -> None:
        """Raise :class:`WorkflowAborted` if an abort was requested (call it in long tasks)."""
        if self.abort.is_set():
            raise WorkflowAborted(self.abort_reason or "abort requested")

    def require_beamline(self) -> Beamline:
        """The beamline, or a clear error for a task run without one."""
        if self.beamline is None:
            raise RuntimeError(
                "this task needs a beamline but the workflow runs without one; "
                "pass RunContext(beamline=Beamline.from_config(...)) to run_workflow"
            )
        return self.beamline

    def fresh(self, **changes: Any) -> RunContext:
        """A copy for the next run: same beamline, recorder, LIMS and limits; a new abort flag and
        empty state."""
        changes.setdefault("abort", threading.Event())
        changes.setdefault("abort_reason", None)
        changes.setdefault("state", {})
        return dataclasses.replace(self, **changes)


@contextmanager
def install_signal_abort(
    context: RunContext, signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM request an abort of ``context`` instead of killing the
    process; a second signal raises KeyboardInterrupt. Main thread only (a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if context.aborted:
            raise KeyboardInterrupt
        context.request_abort(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
