"""What the queue hands the runner with each entry, and what it expects back.

A runner is ``runner(entry, control) -> result``: it runs ``entry.recipe`` on the sample with
``entry.inputs()`` and returns a ``RunReport``-like result (``status``, ``outcome``,
``run_id``). Through ``control`` it may report the sample's phases (``phase``), offer pause
points between steps (``checkpoint``) and learn of an abort (``aborted``, ``on_abort``). A
runner that does none of this still works: a pause then takes effect between samples and the
phases it did not report are entered when its result comes back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from bes.queue.entries import QueueEntry
from bes.queue.states import SampleState

logger = logging.getLogger(__name__)


class RunResult(Protocol):
    """What the queue reads from a runner's result (``bes.station.report.RunReport`` fits)."""

    @property
    def status(self) -> str:
        """``finished``, ``failed`` or ``aborted``."""

    @property
    def outcome(self) -> str:
        """The recipe's verdict (``collected``, ``no_diffraction`` ...)."""

    @property
    def run_id(self) -> str: ...


class RunControl:
    """The queue's side of one attempt at one entry. Thread-safe."""

    def __init__(
        self,
        entry: QueueEntry,
        on_phase: Callable[[RunControl, SampleState], None],
        on_checkpoint: Callable[[RunControl], None],
    ) -> None:
        self.entry = entry
        self.run_id: str | None = None
        """The workflow run's id, once the runner knows it (``started``)."""
        self.outcome: str | None = None
        self.abort_reason: str | None = None
        self.skip_requested = False
        """The abort is a skip: the entry ends SKIPPED, not ABORTED."""
        self._on_phase = on_phase
        self._on_checkpoint = on_checkpoint
        self._aborted = threading.Event()
        self._abort_callbacks: list[Callable[[str], None]] = []
        self._lock = threading.Lock()

    # -- for the runner ----------------------------------------------------------------

    def started(self, run_id: str) -> None:
        """The workflow run began with this id: later transitions carry it."""
        self.run_id = run_id

    def phase(self, state: SampleState) -> None:
        """The sample reached MOUNTED, RUNNING or UNMOUNTING (earlier phases it skipped over
        are entered too; a phase already passed is ignored)."""
        self._on_phase(self, state)

    def checkpoint(self) -> None:
        """A step of the run ended: if a pause was asked for, the queue goes PAUSED and this
        returns when it is resumed, stopped or aborted."""
        self._on_checkpoint(self)

    @property
    def aborted(self) -> bool:
        """The queue asked this run to end now (abort or skip)."""
        return self._aborted.is_set()

    def wait_aborted(self, timeout_s: float | None = None) -> bool:
        """Sleep up to ``timeout_s`` unless aborted meanwhile; True if aborted."""
        return self._aborted.wait(timeout_s)

    def on_abort(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` when the queue aborts or skips this run (at once if it
        already did), e.g. the run context's ``abort``."""
        with self._lock:
            if not self._aborted.is_set():
                self._abort_callbacks.append(callback)
                return
        callback(self.abort_reason or "aborted")

    # -- for the queue -----------------------------------------------------------------

    def request_abort(self, reason: str, skip: bool = False) -> None:
        with self._lock:
            if self._aborted.is_set():
                return
            self.abort_reason = reason
            self.skip_requested = skip
            self._aborted.set()
            callbacks = list(self._abort_callbacks)
        for callback in callbacks:
            try:
                callback(reason)
            except Exception:
                logger.exception("abort callback of queue entry %s failed", self.entry.id)
