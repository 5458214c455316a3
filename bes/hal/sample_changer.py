"""Sample changer: the puck/pin inventory and the robot that mounts pins on the goniometer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class SampleChangerState(StrEnum):
    READY = "READY"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"
    FAULT = "FAULT"


@dataclass(frozen=True, order=True)
class Location:
    """A pin's place in the dewar: puck number and pin number, both from 1."""

    puck: int
    pin: int

    def __str__(self) -> str:
        return f"{self.puck}:{self.pin}"

    @classmethod
    def parse(cls, text: str) -> Location:
        """Parse ``"puck:pin"``, e.g. ``"1:3"``."""
        try:
            puck_text, pin_text = text.split(":")
            location = cls(int(puck_text), int(pin_text))
        except ValueError:
            raise ValueError(
                f"bad sample location {text!r}; expected 'puck:pin', e.g. '1:3'"
            ) from None
        if location.puck < 1 or location.pin < 1:
            raise ValueError(f"bad sample location {text!r}; puck and pin count from 1")
        return location


@dataclass(frozen=True)
class PinInfo:
    location: Location
    present: bool
    barcode: str | None = None


@runtime_checkable
class SampleChanger(Protocol):
    """The robot and its dewar.

    Throughput: ``exchange`` swaps the mounted pin for the next in one move (when
    ``supports_exchange``); ``prefetch`` lets the robot fetch the next pin from the dewar
    while the goniometer and detector still work on the mounted one (when
    ``supports_prefetch``). Callers check ``supports_prefetch`` before calling ``prefetch``.
    """

    name: str

    @property
    def state(self) -> SampleChangerState: ...

    @property
    def mounted(self) -> Location | None: ...

    @property
    def supports_exchange(self) -> bool: ...

    @property
    def supports_prefetch(self) -> bool:
        """True if :meth:`prefetch` may be called (the robot can hold the next pin)."""

    @property
    def prefetched(self) -> Location | None:
        """The pin being fetched or held in the gripper by :meth:`prefetch`, if any."""

    def inventory(self) -> list[PinInfo]: ...

    def load(self, location: Location) -> None:
        """Mount the pin at ``location`` (PinMissingError, LoadError, SampleChangerFault)."""

    def unload(self) -> None:
        """Put the mounted pin back in its place."""

    def exchange(self, location: Location) -> None:
        """Unload the mounted pin and load ``location`` in one robot move."""

    def prefetch(self, location: Location) -> None:
        """Start fetching the pin at ``location`` from the dewar; return at once.

        The fetch runs while the beamline works on the mounted sample (it does not block
        the beamline's time); the next ``exchange(location)``, or ``load(location)`` with
        nothing mounted, is then shorter. A later move to another location first puts the
        prefetched pin back (that move takes longer). Faults found while fetching (e.g. no
        pin at ``location``) are raised by that exchange or load, as without a prefetch.
        Refused with a ``DeviceError`` if not ``supports_prefetch``, in FAULT, busy, or
        if ``location`` is the mounted pin.
        """

    def reset(self) -> None:
        """Clear a FAULT (after a person or a recovery procedure checked the robot) and
        any prefetch (a prefetched pin goes back to the dewar)."""
