"""Time the beamline waits for software (analysis, decisions), kept apart from device time.

On a real or scaled clock that wait passes by itself. On the simulator's instant clock
device actions take no wall time, so the wait is measured in wall time and added to the
beamline clock: beamline time per sample then counts what a real beamline would have
idled while this software thought.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bes.hal.clock import Clock


@dataclass
class SoftwareTime:
    """Accumulates software waits per label (``mesh analysis``, ``centring`` ...)."""

    clock: Clock
    by_label: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.by_label.values())

    def add(self, label: str, seconds: float) -> None:
        """Count ``seconds`` of hardware idling for software under ``label``."""
        seconds = max(0.0, float(seconds))
        self.by_label[label] = self.by_label.get(label, 0.0) + seconds
        if self.clock.mode == "instant" and seconds > 0:
            self.clock.sleep(seconds)

    @contextmanager
    def waiting(self, label: str) -> Iterator[None]:
        """The hardware idles while the block runs (e.g. computing a 3D centre)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(label, time.perf_counter() - start)
