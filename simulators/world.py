"""The simulated sample world: pins, loops, crystals, and the shared physical state
(mounted pin, goniometer pose, beam) that every simulated device reads or changes.

This is the simulator's hidden truth. Only simulated devices and tests read it;
bes never does (it sees images).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from bes.hal.sample_changer import Location

ICE_RING_D_A: tuple[float, ...] = (3.897, 3.669, 3.441, 2.671, 2.249, 2.072, 1.948, 1.918)
"""Hexagonal ice ring d-spacings in Angstrom."""


@dataclass
class Crystal:
    """A crystal in the loop. Position in the sample frame (mm, see geometry.py)."""

    position_mm: tuple[float, float, float]
    size_um: tuple[float, float, float]
    """Full extents along the crystal's own axes (the rotation ``orientation`` maps them)."""
    orientation: np.ndarray = field(default_factory=lambda: np.eye(3))
    """3x3 rotation from crystal axes to the sample frame; also orients the lattice."""
    shape: str = "ellipsoid"
    """``ellipsoid`` or ``box``."""
    strength: float = 1.0
    """Scattering power relative to a typical protein crystal (1.0)."""
    resolution_limit_a: float = 2.0
    """d-spacing where mean I/sigma falls to about 1 for a fully exposed crystal."""
    mosaicity_deg: float = 0.2
    cell: tuple[float, float, float, float, float, float] = (78.0, 78.0, 37.0, 90.0, 90.0, 90.0)
    space_group: str = "P43212"

    def contains(self, points_mm: np.ndarray) -> np.ndarray:
        """Boolean mask of sample-frame points (N, 3) inside the crystal."""
        local = (np.atleast_2d(points_mm) - np.asarray(self.position_mm)) @ self.orientation
        half = np.asarray(self.size_um) * 1e-3 / 2.0
        if self.shape == "box":
            return np.all(np.abs(local) <= half, axis=1)
        return np.sum((local / half) ** 2, axis=1) <= 1.0


@dataclass
class Loop:
    """A nylon loop holding the crystals; its centre is offset from the pin axis by the mount."""

    centre_mm: tuple[float, float, float]
    size_um: tuple[float, float]
    """(length along the omega axis, width across it)."""
    plane_angle_deg: float = 0.0
    """Angle of the loop plane about the omega axis in the sample frame (0: plane holds b)."""
    fibre_um: float = 15.0
    ice: float = 0.0
    """Ice-ring strength, 0 (none) .. 1 (heavy)."""
    salt: bool = False
    """Salt crystals: a few very strong, sharp spots."""


@dataclass
class Pin:
    location: Location
    present: bool = True
    loop: Loop | None = None
    crystals: list[Crystal] = field(default_factory=list)
    name: str = ""
    barcode: str | None = None
    faults: set[str] = field(default_factory=set)
    """Faults injected for this pin (see simulators.faults.FAULT_KINDS)."""

    @property
    def label(self) -> str:
        return str(self.location)


@dataclass
class BeamState:
    energy_kev: float = 12.7
    transmission: float = 1.0
    full_flux_ph_s: float = 2.0e12
    beam_size_um: tuple[float, float] = (20.0, 20.0)
    available: bool = True
    shutter_open: bool = False


@dataclass
class SampleWorld:
    """Everything physical the simulated devices share. Guard changes with ``lock``."""

    pins: dict[Location, Pin]
    seed: int | None = None
    mounted: Location | None = None
    pose: dict[str, float] = field(
        default_factory=lambda: {
            "omega": 0.0,
            "kappa": 0.0,
            "phi": 0.0,
            "sampx": 0.0,
            "sampy": 0.0,
            "phiy": 0.0,
            "phiz": 0.0,
        }
    )
    beam: BeamState = field(default_factory=BeamState)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def mounted_pin(self) -> Pin | None:
        return self.pins.get(self.mounted) if self.mounted else None

    def describe(self) -> dict[str, object]:
        """Counts of what the dewar holds, for `bes sim info` (no per-crystal truth)."""
        present = [p for p in self.pins.values() if p.present]
        return {
            "seed": self.seed,
            "places": len(self.pins),
            "pins": len(present),
            "with crystals": sum(1 for p in present if p.crystals),
            "mounted": str(self.mounted) if self.mounted else None,
        }
