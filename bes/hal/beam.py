"""Beam, shutter and on-axis camera."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

HC_KEV_A = 12.398419843320026
"""h*c in keV*Angstrom: wavelength_a = HC_KEV_A / energy_kev."""


@runtime_checkable
class Beam(Protocol):
    @property
    def energy_kev(self) -> float: ...

    def set_energy(self, energy_kev: float) -> None: ...

    @property
    def wavelength_a(self) -> float: ...

    @property
    def transmission(self) -> float:
        """Fraction of the full beam let through, 0..1."""

    def set_transmission(self, fraction: float) -> None: ...

    @property
    def flux_ph_s(self) -> float:
        """Photons per second at the sample now (full flux x transmission; 0 without beam)."""

    @property
    def full_flux_ph_s(self) -> float:
        """Photons per second at 100 % transmission with beam on."""

    @property
    def beam_size_um(self) -> tuple[float, float]:
        """(horizontal, vertical) full width at half maximum in micrometres."""

    @property
    def apertures_um(self) -> tuple[float, ...]: ...

    def set_aperture(self, size_um: float) -> None: ...

    @property
    def available(self) -> bool:
        """True while there is beam (no beam loss)."""


@runtime_checkable
class Shutter(Protocol):
    @property
    def is_open(self) -> bool: ...

    def open(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Camera(Protocol):
    """On-axis viewer: looks along the beam at the sample."""

    @property
    def pixel_size_um(self) -> float: ...

    @property
    def beam_position_px(self) -> tuple[float, float]:
        """(x = column, y = row) of the beam in the image."""

    def snapshot(self) -> np.ndarray:
        """A grey image (2D float or uint8) of what the camera sees at the current pose."""
