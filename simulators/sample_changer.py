"""Simulated sample changer: a FlexHCD-like dewar of pucks and a robot that mounts pins.

The dewar size and robot times come from the timing profile; which pins are there comes
from the world. Loading puts the pin on the goniometer (``world.mounted``) and resets the
goniometer to the mount pose. Faults (from the fault plan or the pin's sample-sheet
entry) raise the typed ``bes.hal`` errors; ``sample_changer_fault`` leaves the robot in
FAULT until :meth:`SimSampleChanger.reset`.
"""

from __future__ import annotations

import threading
from typing import Any

from bes.hal.errors import DeviceError, LoadError, PinMissingError, SampleChangerFault
from bes.hal.sample_changer import Location, PinInfo, SampleChangerState
from simulators.clock import SimClock
from simulators.faults import FaultPlan
from simulators.profile import TimingProfile
from simulators.world import SampleWorld

DEVICE = "sample_changer"

MOUNT_POSE: dict[str, float] = {
    "omega": 0.0,
    "kappa": 0.0,
    "phi": 0.0,
    "sampx": 0.0,
    "sampy": 0.0,
    "phiy": 0.0,
}
"""Goniometer pose after a mount (phiz, the axis alignment, is left alone)."""

MISSING_PIN_FRACTION = 0.5
"""Assumption: the robot finds a place empty after about half a load (it went to the dewar)."""


class SimSampleChanger:
    """The simulated sample changer (implements ``bes.hal.SampleChanger``).

    ``supports_prefetch`` only reports the profile's flag: fetching the next pin during a
    collection is not simulated yet, so an exchange always takes ``exchange_s``.
    """

    name = DEVICE

    def __init__(
        self,
        clock: SimClock,
        profile: TimingProfile,
        world: SampleWorld,
        faults: FaultPlan | None = None,
    ) -> None:
        self._clock = clock
        self._timing = profile.sample_changer
        self._world = world
        self._faults = faults if faults is not None else FaultPlan()
        self._state = SampleChangerState.READY
        self._fault_reason: str | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> SampleChangerState:
        return self._state

    @property
    def mounted(self) -> Location | None:
        with self._world.lock:
            return self._world.mounted

    @property
    def supports_exchange(self) -> bool:
        return self._timing.supports_exchange

    @property
    def supports_prefetch(self) -> bool:
        """The profile's flag only; prefetching is not simulated yet."""
        return self._timing.supports_prefetch

    @property
    def capacity(self) -> tuple[int, int]:
        """(pucks, pins per puck) of the dewar."""
        return self._timing.pucks, self._timing.pins_per_puck

    def inventory(self) -> list[PinInfo]:
        """Every place of the dewar, in order, with whether a pin is there and its barcode."""
        pucks, pins = self.capacity
        out = []
        with self._world.lock:
            for puck in range(1, pucks + 1):
                for number in range(1, pins + 1):
                    location = Location(puck, number)
                    pin = self._world.pins.get(location)
                    present = pin is not None and pin.present
                    out.append(PinInfo(location, present, pin.barcode if present and pin else None))
        return out

    def load(self, location: Location) -> None:
        """Mount the pin at ``location``; errors leave nothing mounted (FAULT needs reset)."""
        location = self._check_location(location)
        pin = str(location)
        self._begin(SampleChangerState.LOADING, pin, refuse_if_mounted=True)
        try:
            self._fetch(location, "load", self._timing.load_s)
            self._mount(location)
        finally:
            self._end()

    def unload(self) -> None:
        """Put the mounted pin back in its place (nothing to do if none is mounted)."""
        mounted = self.mounted
        if mounted is None:
            return
        pin = str(mounted)
        self._begin(SampleChangerState.UNLOADING, pin)
        try:
            self._check_robot_fault(pin, "unload", self._timing.unload_s, self._pin_faults(mounted))
            self._clock.spend(DEVICE, "unload", self._timing.unload_s, pin=pin)
            with self._world.lock:
                self._world.mounted = None
        finally:
            self._end()

    def exchange(self, location: Location) -> None:
        """Swap the mounted pin for ``location`` in one robot move (``exchange_s``).

        Without a mounted pin this is a load; without exchange support, unload then load.
        If the new pin cannot be fetched the old one stays mounted.
        """
        location = self._check_location(location)
        mounted = self.mounted
        if mounted is None:
            self.load(location)
            return
        if not self.supports_exchange:
            self.unload()
            self.load(location)
            return
        pin = str(location)
        self._begin(SampleChangerState.LOADING, pin)
        try:
            self._fetch(location, "exchange", self._timing.exchange_s, unloaded=str(mounted))
            self._mount(location)
        finally:
            self._end()

    def reset(self) -> None:
        """Clear a FAULT (after someone checked the robot). Takes no modelled time."""
        with self._lock:
            was = self._state
            self._state = SampleChangerState.READY
            self._fault_reason = None
        self._clock.spend(DEVICE, "reset", self._timing.reset_s, previous_state=str(was))

    def describe(self) -> dict[str, Any]:
        pucks, pins = self.capacity
        return {
            "state": str(self._state),
            "mounted": str(self.mounted) if self.mounted else None,
            "dewar": f"{pucks} pucks x {pins} pins",
            "pins_present": sum(p.present for p in self.inventory()),
            "supports_exchange": self.supports_exchange,
            "supports_prefetch": self.supports_prefetch,
        }

    # --- internals -----------------------------------------------------------------

    def _fetch(self, location: Location, action: str, seconds: float, **details: Any) -> None:
        """Take the pin from the dewar, or raise what stopped the robot."""
        pin = str(location)
        pin_faults = self._pin_faults(location)
        with self._world.lock:
            world_pin = self._world.pins.get(location)
            barcode = world_pin.barcode if world_pin else None
        absent = world_pin is None or not world_pin.present
        if absent or self._faults.should_fire("pin_missing", pin, pin_faults):
            self._clock.spend(
                DEVICE, action, seconds * MISSING_PIN_FRACTION, pin=pin, error="pin missing"
            )
            raise PinMissingError(
                DEVICE,
                f"no pin found at {pin}; check the puck and the sample sheet, or skip this sample",
                pin=pin,
            )
        self._check_robot_fault(pin, action, seconds, pin_faults)
        if self._faults.should_fire("load_fails", pin, pin_faults):
            self._clock.spend(DEVICE, action, seconds, pin=pin, error="load failed")
            raise LoadError(
                DEVICE,
                f"{action} of {pin} failed (pin dropped back into its place); retry or skip it",
                pin=pin,
            )
        self._clock.spend(DEVICE, action, seconds, pin=pin, barcode=barcode, **details)

    def _check_robot_fault(
        self, pin: str, action: str, seconds: float, pin_faults: frozenset[str] = frozenset()
    ) -> None:
        if not self._faults.should_fire("sample_changer_fault", pin, pin_faults):
            return
        self._clock.spend(
            DEVICE, action, seconds * MISSING_PIN_FRACTION, pin=pin, error="robot fault"
        )
        reason = f"robot fault during {action} of {pin}; check the robot, then reset()"
        with self._lock:
            self._state = SampleChangerState.FAULT
            self._fault_reason = reason
        raise SampleChangerFault(DEVICE, reason, pin=pin)

    def _pin_faults(self, location: Location) -> frozenset[str]:
        with self._world.lock:
            world_pin = self._world.pins.get(location)
            return frozenset(world_pin.faults) if world_pin else frozenset()

    def _mount(self, location: Location) -> None:
        with self._world.lock:
            self._world.mounted = location
            self._world.pose.update(MOUNT_POSE)

    def _begin(self, state: SampleChangerState, pin: str, refuse_if_mounted: bool = False) -> None:
        with self._lock:
            if self._state is SampleChangerState.FAULT:
                raise SampleChangerFault(
                    DEVICE,
                    f"in FAULT ({self._fault_reason}); cannot move to {pin} until reset()",
                    pin=pin,
                )
            if self._state is not SampleChangerState.READY:
                raise DeviceError(
                    DEVICE, f"busy ({self._state}); wait for READY before moving {pin}", pin=pin
                )
            mounted = self.mounted
            if refuse_if_mounted and mounted is not None:
                raise LoadError(
                    DEVICE,
                    f"cannot load {pin}: pin {mounted} is still mounted; unload it first or "
                    f"use exchange({pin})",
                    pin=pin,
                )
            self._state = state

    def _end(self) -> None:
        with self._lock:
            if self._state is not SampleChangerState.FAULT:
                self._state = SampleChangerState.READY

    def _check_location(self, location: Location | str) -> Location:
        if isinstance(location, str):
            location = Location.parse(location)
        pucks, pins = self.capacity
        if not (1 <= location.puck <= pucks and 1 <= location.pin <= pins):
            raise ValueError(
                f"location {location} is outside the dewar ({pucks} pucks x {pins} pins)"
            )
        return location
