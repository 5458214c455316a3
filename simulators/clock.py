"""Simulated beamline clock: instant, scaled or real time, with honest beamline time.

Every simulated device action goes through :meth:`SimClock.spend`, which advances
beamline time by the action's duration (from the timing profile), waits for real
in ``real``/``scaled`` modes, and reports a :class:`bes.hal.DeviceAction`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bes.hal.clock import ActionListener, DeviceAction
from bes.hal.errors import ActionInterrupted

CLOCK_MODES = ("instant", "scaled", "real")


class SimClock:
    """Beamline time for the simulator.

    ``instant``: no waiting, beamline time still adds up (tests).
    ``scaled``: waits duration / ``factor`` (demos). ``real``: waits the full duration.
    Device actions that overlap (``busy_until``) are accounted by the device; the clock
    itself is a single timeline that only moves forward.
    """

    def __init__(self, mode: str = "instant", factor: float = 1.0) -> None:
        if mode not in CLOCK_MODES:
            raise ValueError(f"unknown clock mode {mode!r}; known: {', '.join(CLOCK_MODES)}")
        if mode == "scaled" and not factor > 0:
            raise ValueError(f"scaled clock needs factor > 0, got {factor!r}")
        self.mode = mode
        self.factor = float(factor) if mode == "scaled" else 1.0
        self._now = 0.0
        self._lock = threading.Lock()
        self._listeners: list[ActionListener] = []
        self._interrupts = 0
        self._wake = threading.Condition(self._lock)

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance_to(self, t_s: float) -> None:
        """Move beamline time forward to ``t_s`` (waiting as the mode says); never back."""
        self.sleep(max(0.0, t_s - self.now()))

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds} s)")
        if self.mode == "instant" or seconds == 0:
            with self._lock:
                self._now += seconds
            return
        wall = seconds if self.mode == "real" else seconds / self.factor
        deadline = time.monotonic() + wall
        with self._lock:
            seen = self._interrupts
            start_now = self._now
            while True:
                left = deadline - time.monotonic()
                if self._interrupts != seen:
                    done = (wall - max(left, 0.0)) / wall * seconds
                    self._now = max(self._now, start_now + done)
                    raise ActionInterrupted(
                        "clock", f"interrupted after {done:.3f} s of {seconds:.3f} s"
                    )
                if left <= 0:
                    break
                self._wake.wait(left)
            self._now = max(self._now, start_now + seconds)

    def spend(self, device: str, action: str, seconds: float, **details: Any) -> DeviceAction:
        """Let ``seconds`` pass for ``device`` doing ``action`` and report it to listeners."""
        start = self.now()
        wall_start = time.perf_counter()
        try:
            self.sleep(seconds)
        finally:
            record = DeviceAction(
                device=device,
                action=action,
                start_s=start,
                duration_s=self.now() - start,
                wall_s=time.perf_counter() - wall_start,
                details=details,
            )
            self.report(record)
        return record

    def report(self, action: DeviceAction) -> None:
        for listener in list(self._listeners):
            listener(action)

    def subscribe(self, listener: ActionListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def interrupt(self) -> None:
        with self._lock:
            self._interrupts += 1
            self._wake.notify_all()

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "factor": self.factor, "now_s": round(self.now(), 3)}
