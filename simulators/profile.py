"""Timing profile: the durations simulated devices take, read from one TOML file."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_PROFILE = Path(__file__).with_name("profiles") / "default.toml"


@dataclass(frozen=True)
class GoniometerTiming:
    omega_speed_deg_s: float
    omega_acceleration_deg_s2: float
    kappa_speed_deg_s: float
    phi_speed_deg_s: float
    translation_speed_mm_s: float
    translation_acceleration_mm_s2: float
    phiz_speed_mm_s: float
    settle_s: float
    motor_timeout_s: float
    raster_line_overhead_s: float
    sphere_of_confusion_um: float
    limits: dict[str, tuple[float, float]]

    def speed(self, motor: str) -> float:
        return {
            "omega": self.omega_speed_deg_s,
            "kappa": self.kappa_speed_deg_s,
            "phi": self.phi_speed_deg_s,
            "phiz": self.phiz_speed_mm_s,
        }.get(motor, self.translation_speed_mm_s)

    def acceleration(self, motor: str) -> float:
        if motor in ("omega", "kappa", "phi"):
            return self.omega_acceleration_deg_s2
        return self.translation_acceleration_mm_s2

    def move_time(self, motor: str, distance: float, speed: float | None = None) -> float:
        """Trapezoidal profile: accelerate, cruise, decelerate; plus settling if it moved."""
        d = abs(distance)
        if d == 0:
            return 0.0
        v = speed or self.speed(motor)
        a = self.acceleration(motor)
        ramp = v * v / a  # distance spent accelerating + decelerating
        t = 2.0 * math.sqrt(d / a) if d < ramp else d / v + v / a
        return t + self.settle_s


@dataclass(frozen=True)
class DetectorTiming:
    max_frame_rate_hz: float
    dead_time_s: float
    arm_s: float
    disarm_s: float
    distance_speed_mm_s: float


@dataclass(frozen=True)
class SampleChangerTiming:
    pucks: int
    pins_per_puck: int
    load_s: float
    unload_s: float
    exchange_s: float
    fetch_s: float
    put_back_s: float
    load_timeout_s: float
    reset_s: float
    supports_exchange: bool
    supports_prefetch: bool

    def __post_init__(self) -> None:
        if not 0.0 <= self.fetch_s <= min(self.load_s, self.exchange_s):
            raise ValueError(
                f"fetch_s = {self.fetch_s} must be within 0..min(load_s, exchange_s) = "
                f"{min(self.load_s, self.exchange_s)}: it is the dewar part of a load or exchange"
            )
        if self.put_back_s < 0:
            raise ValueError(f"put_back_s must be >= 0, got {self.put_back_s}")

    @property
    def load_swap_s(self) -> float:
        """The goniometer part of a load: what is left when the pin was prefetched."""
        return self.load_s - self.fetch_s

    @property
    def exchange_swap_s(self) -> float:
        """The goniometer part of an exchange: what is left when the pin was prefetched."""
        return self.exchange_s - self.fetch_s


@dataclass(frozen=True)
class BeamTiming:
    energy_change_s: float
    transmission_change_s: float
    aperture_change_s: float


@dataclass(frozen=True)
class ShutterTiming:
    open_s: float
    close_s: float


@dataclass(frozen=True)
class CameraTiming:
    snapshot_s: float


@dataclass(frozen=True)
class TimingProfile:
    goniometer: GoniometerTiming
    detector: DetectorTiming
    sample_changer: SampleChangerTiming
    beam: BeamTiming
    shutter: ShutterTiming
    camera: CameraTiming
    source: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> TimingProfile:
        path = Path(path) if path else DEFAULT_PROFILE
        data = tomllib.loads(path.read_text())
        gonio = dict(data["goniometer"])
        gonio["limits"] = {k: (float(v[0]), float(v[1])) for k, v in gonio["limits"].items()}
        sections: dict[str, Any] = {"goniometer": _section(GoniometerTiming, gonio, path)}
        for name, kind in (
            ("detector", DetectorTiming),
            ("sample_changer", SampleChangerTiming),
            ("beam", BeamTiming),
            ("shutter", ShutterTiming),
            ("camera", CameraTiming),
        ):
            sections[name] = _section(kind, data.get(name, {}), path, name)
        return cls(source=str(path), **sections)

    def describe(self) -> dict[str, Any]:
        """Section -> {name: value}, for `bes sim info`."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "source":
                out[f.name] = {g.name: getattr(value, g.name) for g in fields(value)}
        out["source"] = self.source
        return out


def _section(kind: type, values: dict[str, Any], path: Path, name: str = "goniometer") -> Any:
    wanted = {f.name for f in fields(kind)}
    missing = wanted - set(values)
    unknown = set(values) - wanted
    if missing or unknown:
        raise ValueError(
            f"timing profile {path} [{name}]: missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    try:
        return kind(**values)
    except ValueError as exc:
        raise ValueError(f"timing profile {path} [{name}]: {exc}") from None


def load_profile(path: str | None = None) -> TimingProfile:
    """Config factory: ``factory = "simulators.profile:load_profile"``."""
    return TimingProfile.load(path)
