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
    name: str

    @property
    def state(self) -> SampleChangerState: ...

    @property
    def mounted(self) -> Location | None: ...

    @property
    def supports_exchange(self) -> bool: ...

    def inventory(self) -> list[PinInfo]: ...

    def load(self, location: Location) -> None:
        """Mount the pin at ``location`` (PinMissingError, LoadError, SampleChangerFault)."""

    def unload(self) -> None:
        """Put the mounted pin back in its place."""

    def exchange(self, location: Location) -> None:
        """Unload the mounted pin and load ``location`` in one robot move."""

    def reset(self) -> None:
        """Clear a FAULT (after a person or a recovery procedure checked the robot)."""
