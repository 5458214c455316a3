"""Simulated X-ray beam (energy, transmission, aperture, beam loss) and fast shutter.

Both write the shared ``world.beam`` state the simulated detector reads. A beam loss
(injected, or the ``beam_loss`` fault firing when the shutter opens) makes the beam
unavailable for a span of beamline time; opening the shutter without beam raises
:class:`bes.hal.BeamLossError`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from bes.hal.beam import HC_KEV_A
from bes.hal.clock import DeviceAction
from bes.hal.errors import BeamLossError
from simulators.actions import mounted_pin
from simulators.clock import SimClock
from simulators.faults import FaultPlan
from simulators.profile import TimingProfile
from simulators.world import SampleWorld

DEFAULT_APERTURES_UM: tuple[float, ...] = (5.0, 10.0, 20.0, 50.0)
DEFAULT_ENERGY_RANGE_KEV: tuple[float, float] = (5.0, 25.0)
"""Assumption: a typical tunable MX beamline range."""


class SimBeam:
    """The simulated beam (implements ``bes.hal.Beam``).

    Flux is the world's full flux times the transmission, 0 during a beam loss; it does not
    depend on the aperture in this simulation. :meth:`inject_beam_loss` takes the beam away
    for a span of beamline time; the ``beam_loss`` fault does the same (for
    ``faults.beam_loss_s``) when it fires, which it may each time the shutter opens.
    """

    name = "beam"

    def __init__(
        self,
        clock: SimClock,
        profile: TimingProfile,
        world: SampleWorld,
        faults: FaultPlan | None = None,
        apertures_um: Sequence[float] = DEFAULT_APERTURES_UM,
        energy_range_kev: Sequence[float] = DEFAULT_ENERGY_RANGE_KEV,
    ) -> None:
        self._clock = clock
        self._timing = profile.beam
        self._world = world
        self._faults = faults if faults is not None else FaultPlan()
        self._apertures_um = tuple(sorted(float(a) for a in apertures_um))
        if not self._apertures_um or self._apertures_um[0] <= 0:
            raise ValueError(f"apertures must be positive sizes in um, got {apertures_um!r}")
        low, high = (float(e) for e in energy_range_kev)
        if not 0 < low < high:
            raise ValueError(
                f"energy range must be (low, high) keV with 0 < low < high, got "
                f"{energy_range_kev!r}"
            )
        self._energy_range_kev = (low, high)
        size_um = world.beam.beam_size_um[0]
        self._aperture_um = min(self._apertures_um, key=lambda a: abs(a - size_um))
        self._lost_until_s: float | None = None
        self._lock = threading.Lock()
        self._unsubscribe = clock.subscribe(self._on_action)

    # --- energy and transmission -----------------------------------------------------

    @property
    def energy_kev(self) -> float:
        return self._world.beam.energy_kev

    def set_energy(self, energy_kev: float) -> None:
        low, high = self._energy_range_kev
        if not low <= energy_kev <= high:
            raise ValueError(
                f"energy {energy_kev!r} keV is outside the beamline's range {low:g}-{high:g} keV"
            )
        if energy_kev == self.energy_kev:
            return
        self._clock.spend(
            "beam",
            "set_energy",
            self._timing.energy_change_s,
            energy_kev=energy_kev,
            previous_kev=self.energy_kev,
        )
        with self._world.lock:
            self._world.beam.energy_kev = float(energy_kev)

    @property
    def wavelength_a(self) -> float:
        return HC_KEV_A / self.energy_kev

    @property
    def transmission(self) -> float:
        return self._world.beam.transmission

    def set_transmission(self, fraction: float) -> None:
        try:
            valid = 0.0 <= float(fraction) <= 1.0
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(
                f"transmission must be a fraction within 0..1 (not a percentage), got {fraction!r}"
            )
        if fraction == self.transmission:
            return
        self._clock.spend(
            "beam", "set_transmission", self._timing.transmission_change_s, transmission=fraction
        )
        with self._world.lock:
            self._world.beam.transmission = float(fraction)

    # --- flux and size ----------------------------------------------------------------

    @property
    def full_flux_ph_s(self) -> float:
        return self._world.beam.full_flux_ph_s

    @property
    def flux_ph_s(self) -> float:
        if not self.available:
            return 0.0
        return self.full_flux_ph_s * self.transmission

    @property
    def beam_size_um(self) -> tuple[float, float]:
        return self._world.beam.beam_size_um

    @property
    def apertures_um(self) -> tuple[float, ...]:
        return self._apertures_um

    @property
    def aperture_um(self) -> float:
        return self._aperture_um

    def set_aperture(self, size_um: float) -> None:
        """Select the aperture of ``size_um``; the beam becomes that size (round)."""
        match = [a for a in self._apertures_um if math.isclose(a, size_um, rel_tol=1e-6)]
        if not match:
            known = ", ".join(f"{a:g}" for a in self._apertures_um)
            raise ValueError(f"no aperture of {size_um!r} um; known: {known} um")
        if match[0] == self._aperture_um:
            return
        self._clock.spend(
            "beam", "set_aperture", self._timing.aperture_change_s, aperture_um=match[0]
        )
        self._aperture_um = match[0]
        with self._world.lock:
            self._world.beam.beam_size_um = (match[0], match[0])

    # --- beam loss --------------------------------------------------------------------

    @property
    def available(self) -> bool:
        self._refresh(self._clock.now())
        return self._world.beam.available

    @property
    def lost_until_s(self) -> float | None:
        """Beamline time at which the current beam loss ends; None without one."""
        self._refresh(self._clock.now())
        return self._lost_until_s

    def inject_beam_loss(self, duration_s: float) -> None:
        """Take the beam away for ``duration_s`` of beamline time from now."""
        if not duration_s > 0:
            raise ValueError(f"beam loss duration must be > 0 s, got {duration_s!r}")
        now_s = self._clock.now()
        with self._lock:
            until_s = now_s + duration_s
            self._lost_until_s = max(self._lost_until_s or until_s, until_s)
            with self._world.lock:
                self._world.beam.available = False
        self._clock.report(
            DeviceAction(
                device="beam",
                action="beam_loss",
                start_s=now_s,
                duration_s=float(duration_s),
                wall_s=0.0,
                details={"until_s": self._lost_until_s, "pin": mounted_pin(self._world)[0]},
            )
        )

    def restore_beam(self) -> None:
        """End a beam loss now (beam back)."""
        with self._lock:
            self._lost_until_s = None
            with self._world.lock:
                self._world.beam.available = True

    def close(self) -> None:
        """Stop listening to the clock's actions (beam losses no longer end on their own)."""
        self._unsubscribe()

    def describe(self) -> dict[str, Any]:
        return {
            "energy_kev": self.energy_kev,
            "wavelength_a": round(self.wavelength_a, 5),
            "transmission": self.transmission,
            "flux_ph_s": self.flux_ph_s,
            "beam_size_um": self.beam_size_um,
            "apertures_um": self.apertures_um,
            "available": self.available,
        }

    def _refresh(self, now_s: float) -> None:
        with self._lock:
            if self._lost_until_s is not None and now_s >= self._lost_until_s:
                self._lost_until_s = None
                with self._world.lock:
                    self._world.beam.available = True

    def _on_action(self, action: DeviceAction) -> None:
        """Every device action: end a beam loss whose time is over; on shutter opening,
        give the ``beam_loss`` fault its chance."""
        if action.device == "beam":
            return
        self._refresh(action.start_s + action.duration_s)
        if action.device == "shutter" and action.action == "open":
            pin, pin_faults = mounted_pin(self._world)
            if self._faults.should_fire("beam_loss", pin, pin_faults):
                self.inject_beam_loss(self._faults.beam_loss_s)


class SimShutter:
    """The fast shutter (implements ``bes.hal.Shutter``); writes ``world.beam.shutter_open``."""

    name = "shutter"

    def __init__(self, clock: SimClock, profile: TimingProfile, world: SampleWorld) -> None:
        self._clock = clock
        self._timing = profile.shutter
        self._world = world

    @property
    def is_open(self) -> bool:
        return self._world.beam.shutter_open

    def open(self) -> None:
        """Open; BeamLossError (shutter stays closed) if there is no beam once it has moved."""
        if self.is_open:
            return
        pin = mounted_pin(self._world)[0]
        self._clock.spend("shutter", "open", self._timing.open_s, pin=pin)
        with self._world.lock:
            if not self._world.beam.available:
                raise BeamLossError(
                    "shutter",
                    "no beam (beam loss): the shutter stays closed; wait until the beam is "
                    "available again, then open",
                    pin=pin,
                )
            self._world.beam.shutter_open = True

    def close(self) -> None:
        if not self.is_open:
            return
        self._clock.spend("shutter", "close", self._timing.close_s, pin=mounted_pin(self._world)[0])
        with self._world.lock:
            self._world.beam.shutter_open = False

    def describe(self) -> dict[str, Any]:
        return {"open": self.is_open}
