"""Goniometer: the centring motors, continuous omega rotation and raster scans."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

MOTOR_NAMES: tuple[str, ...] = ("omega", "kappa", "phi", "sampx", "sampy", "phiy", "phiz")
"""Motor names. Angles in degrees (omega, kappa, phi); translations in millimetres."""


@dataclass(frozen=True)
class RasterLine:
    """One line of a raster scan: a continuous move from ``start`` to ``end`` with ``n_points``
    detector triggers, one per point, each of ``exposure_s``. Positions map motor -> value."""

    start: Mapping[str, float]
    end: Mapping[str, float]
    n_points: int
    exposure_s: float


@runtime_checkable
class Goniometer(Protocol):
    """Sample positioning (MD3-like). Geometry (see docs/architecture.md, "Geometry"):
    the beam runs along +z of the lab frame, the omega axis along +x; ``phiy`` translates
    along the omega axis, ``phiz`` moves the axis vertically, ``sampx``/``sampy`` are the
    centring table on top of omega (they turn with it)."""

    motor_names: tuple[str, ...]

    def read(self, motor: str) -> float: ...

    def positions(self) -> dict[str, float]:
        """All motor positions."""

    def limits(self, motor: str) -> tuple[float, float]: ...

    def speed(self, motor: str) -> float:
        """Maximum speed in units per second (deg/s or mm/s)."""

    def move(self, motor: str, position: float, wait: bool = True) -> None:
        """Move one motor; MotorLimitError outside limits, MotorTimeout if it does not arrive."""

    def move_many(self, positions: Mapping[str, float], wait: bool = True) -> None:
        """Move several motors together (the move lasts as long as the slowest)."""

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until every move started with ``wait=False`` has finished."""

    def rotate(
        self, start_deg: float, end_deg: float, speed_deg_s: float, n_triggers: int = 0
    ) -> None:
        """Continuous omega rotation from start to end at the given speed, sending
        ``n_triggers`` evenly spaced detector triggers (one per frame) on the way."""

    def raster(self, lines: Sequence[RasterLine]) -> None:
        """Run a raster scan line by line, one detector trigger per point."""

    def move_to_beam(self, point_mm: tuple[float, float, float]) -> None:
        """Bring a point given in the sample frame (along axis, sampx dir, sampy dir; mm)
        onto the rotation axis and into the beam."""

    def stop(self) -> None:
        """Stop every motor now."""
