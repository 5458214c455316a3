"""The trigger cable from the goniometer to the detector.

The goniometer fires one :class:`Trigger` per frame during a rotation or a raster
line, carrying where the sample was at the start and end of that frame; an armed
detector in external-trigger mode listens and renders the frame from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Trigger:
    index: int
    """Frame index within the current scan, from 0."""
    pose_start: Mapping[str, float]
    pose_end: Mapping[str, float]
    """Goniometer positions at the start and end of the frame's exposure."""
    exposure_s: float
    time_s: float
    """Beamline time at the start of the frame."""


TriggerListener = Callable[[Trigger], None]


class TriggerLine:
    """Fan-out of goniometer triggers to whoever listens (the simulated detector)."""

    def __init__(self) -> None:
        self._listeners: list[TriggerListener] = []
        self._lock = threading.Lock()

    def connect(self, listener: TriggerListener) -> None:
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def disconnect(self, listener: TriggerListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def fire(self, trigger: Trigger) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(trigger)
