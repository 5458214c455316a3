"""Minimal stand-ins for every device role, to test the Beamline container on its own."""

from __future__ import annotations

from typing import Any


class FakeClock:
    mode = "instant"

    def __init__(self, mode: str = "instant") -> None:
        self.mode = mode

    def now(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        pass

    def subscribe(self, listener: Any) -> Any:
        return lambda: None

    def interrupt(self) -> None:
        pass


class FakeDevice:
    """Has every method any HAL protocol asks for; records its keyword arguments."""

    name = "fake"
    motor_names = ("omega",)

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __getattr__(self, item: str) -> Any:
        raise AttributeError(item)


_METHODS = [
    "read",
    "positions",
    "limits",
    "speed",
    "move",
    "move_many",
    "wait",
    "rotate",
    "raster",
    "move_to_beam",
    "stop",
    "geometry",
    "roi_modes",
    "roi_mode",
    "set_roi_mode",
    "max_frame_rate_hz",
    "distance_limits_mm",
    "move_distance",
    "arm",
    "trigger",
    "frames_written",
    "paths",
    "state",
    "mounted",
    "supports_exchange",
    "supports_prefetch",
    "prefetched",
    "prefetch",
    "inventory",
    "load",
    "unload",
    "exchange",
    "reset",
    "energy_kev",
    "set_energy",
    "wavelength_a",
    "transmission",
    "set_transmission",
    "flux_ph_s",
    "full_flux_ph_s",
    "beam_size_um",
    "apertures_um",
    "set_aperture",
    "available",
    "is_open",
    "open",
    "close",
    "pixel_size_um",
    "beam_position_px",
    "snapshot",
]
for _name in _METHODS:
    setattr(FakeDevice, _name, lambda self, *a, **k: None)


class NotADetector:
    def __init__(self, **kwargs: Any) -> None:
        pass
