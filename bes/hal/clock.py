"""The beamline clock: where beamline time is read and every device action is reported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class DeviceAction:
    """One thing a device did, with the beamline time it took and the wall time it cost."""

    device: str
    action: str
    start_s: float
    duration_s: float
    wall_s: float
    details: dict[str, Any] = field(default_factory=dict)


ActionListener = Callable[[DeviceAction], None]


@runtime_checkable
class Clock(Protocol):
    """Beamline time. ``now()`` is seconds of beamline time since the clock started."""

    mode: str

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of beamline time pass (waits for real only in real/scaled modes)."""

    def subscribe(self, listener: ActionListener) -> Callable[[], None]:
        """Call ``listener`` with every device action; returns a function that unsubscribes."""

    def interrupt(self) -> None:
        """Wake every device waiting on this clock; their action ends with ActionInterrupted."""
