"""Simulated sample changer: a FlexHCD-like dewar of pucks and a robot that mounts pins.

The dewar size and robot times come from the timing profile; which pins are there comes
from the world. Loading puts the pin on the goniometer (``world.mounted``) and resets the
goniometer to the mount pose. Faults (from the fault plan or the pin's sample-sheet
entry) raise the typed ``bes.hal`` errors; ``sample_changer_fault`` leaves the robot in
FAULT until :meth:`SimSampleChanger.reset`.

Prefetch: a load or exchange is a dewar part (``fetch_s``) and a goniometer part (the
rest). :meth:`SimSampleChanger.prefetch` starts the dewar part at the clock's time and
returns at once; the goniometer and detector go on spending beamline time meanwhile. The
next load or exchange of that pin then takes the goniometer part plus what is left of
the fetch. Any other robot move first waits for the fetch to end, and a move to another
pin first puts the prefetched one back (``put_back_s``): the robot has one arm.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from bes.hal.clock import DeviceAction
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


@dataclass(frozen=True)
class _Prefetch:
    """A pin the robot fetches (or holds) for the next move, in beamline time."""

    location: Location
    started_s: float
    """When the robot began fetching it (after putting back an earlier prefetch)."""
    ready_s: float
    """When the pin is in the gripper (or the place was found empty)."""
    missing: bool
    """The gripper found no pin: the next load or exchange of it raises PinMissingError."""


class SimSampleChanger:
    """The simulated sample changer (implements ``bes.hal.SampleChanger``).

    Without a prefetch an exchange takes ``exchange_s`` and a load ``load_s``; with one
    (``supports_prefetch``), see the module docstring.
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
        self._prefetch: _Prefetch | None = None
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
        """The profile's flag: :meth:`prefetch` is refused without it."""
        return self._timing.supports_prefetch

    @property
    def prefetched(self) -> Location | None:
        """The pin being fetched or held for the next move, if any."""
        with self._lock:
            return self._prefetch.location if self._prefetch is not None else None

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
            self._fetch(location, "load", self._timing.load_s, self._timing.load_swap_s)
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
            # a fetch under way ends first: the arm is needed at the goniometer
            wait_s = self._fetch_left_s()
            details = {"prefetch_wait_s": wait_s} if wait_s > 0 else {}
            unload_s = self._timing.unload_s
            self._check_robot_fault(
                pin,
                "unload",
                wait_s + unload_s * MISSING_PIN_FRACTION,
                self._pin_faults(mounted),
                **details,
            )
            self._clock.spend(DEVICE, "unload", wait_s + unload_s, pin=pin, **details)
            with self._world.lock:
                self._world.mounted = None
        finally:
            self._end()

    def exchange(self, location: Location) -> None:
        """Swap the mounted pin for ``location`` in one robot move (``exchange_s``, less
        what a prefetch of ``location`` already did).

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
            self._fetch(
                location,
                "exchange",
                self._timing.exchange_s,
                self._timing.exchange_swap_s,
                unloaded=str(mounted),
            )
            self._mount(location)
        finally:
            self._end()

    def prefetch(self, location: Location) -> None:
        """Start fetching the pin at ``location`` for the next load or exchange; returns at
        once (no beamline time passes here).

        Reports a ``prefetch`` action lasting the fetch (plus the put-back of an earlier
        prefetch of another pin). A missing pin is found now but raised by the load or
        exchange of ``location``, as without a prefetch. Prefetching the pin already
        prefetched does nothing.
        """
        location = self._check_location(location)
        pin = str(location)
        if not self.supports_prefetch:
            raise DeviceError(
                DEVICE,
                f"cannot prefetch {pin}: this sample changer does not prefetch "
                f"(supports_prefetch is false); check it first, or exchange({pin}) directly",
                pin=pin,
            )
        now_s = self._clock.now()
        pin_faults = self._pin_faults(location)
        with self._lock:
            self._refuse_unless_ready(pin, prefetch=True)
            if self.mounted == location:
                raise LoadError(DEVICE, f"cannot prefetch {pin}: it is mounted", pin=pin)
            previous = self._prefetch
            if previous is not None and previous.location == location:
                return
            put_back_s, put_back = self._release(previous, now_s)
            with self._world.lock:
                world_pin = self._world.pins.get(location)
                barcode = world_pin.barcode if world_pin else None
            absent = world_pin is None or not world_pin.present
            missing = absent or self._faults.should_fire("pin_missing", pin, pin_faults)
            start_s = now_s + put_back_s
            self._prefetch = _Prefetch(location, start_s, start_s + self._timing.fetch_s, missing)
        details: dict[str, Any] = {"pin": pin, "background": True}
        if previous is not None:  # the robot first ends that one (put_back None: no pin)
            details.update(replaced=str(previous.location), put_back=put_back)
            details.update(put_back_s=put_back_s)
        details.update({"error": "pin missing"} if missing else {"barcode": barcode})
        self._clock.report(
            DeviceAction(
                device=DEVICE,
                action="prefetch",
                start_s=now_s,
                duration_s=put_back_s + self._timing.fetch_s,
                wall_s=0.0,
                details=details,
            )
        )

    def reset(self) -> None:
        """Clear a FAULT (after someone checked the robot) and any prefetch: takes
        ``reset_s``, plus the put-back of a prefetched pin."""
        now_s = self._clock.now()
        with self._lock:
            was = self._state
            self._state = SampleChangerState.READY
            self._fault_reason = None
            held, self._prefetch = self._prefetch, None
        put_back_s, put_back = self._release(held, now_s)
        details: dict[str, Any] = {"previous_state": str(was)}
        if held is not None:
            details.update(put_back=put_back, put_back_s=put_back_s)
        self._clock.spend(DEVICE, "reset", self._timing.reset_s + put_back_s, **details)

    def describe(self) -> dict[str, Any]:
        pucks, pins = self.capacity
        return {
            "state": str(self._state),
            "mounted": str(self.mounted) if self.mounted else None,
            "dewar": f"{pucks} pucks x {pins} pins",
            "pins_present": sum(p.present for p in self.inventory()),
            "supports_exchange": self.supports_exchange,
            "supports_prefetch": self.supports_prefetch,
            "prefetched": str(self.prefetched) if self.prefetched else None,
        }

    # --- internals -----------------------------------------------------------------

    def _fetch(
        self, location: Location, action: str, full_s: float, swap_s: float, **details: Any
    ) -> None:
        """Take the pin from the dewar (or from the gripper if prefetched), or raise what
        stopped the robot. ``full_s``: the move without prefetch; ``swap_s``: its
        goniometer part. ``details`` go to the record of a move that worked."""
        pin = str(location)
        pin_faults = self._pin_faults(location)
        with self._world.lock:
            world_pin = self._world.pins.get(location)
            barcode = world_pin.barcode if world_pin else None
        now_s = self._clock.now()
        with self._lock:
            held, self._prefetch = self._prefetch, None
        lead_s = 0.0  # putting back a prefetched pin that is not this one
        extra: dict[str, Any] = {}
        if held is not None and held.location == location:
            left_s = max(0.0, held.ready_s - now_s)
            move_s = swap_s + left_s
            extra.update(prefetched=True, prefetch_saved_s=full_s - move_s)
            if held.missing:
                # the gripper found the place empty while fetching; the robot knows it now
                self._clock.spend(DEVICE, action, left_s, pin=pin, error="pin missing", **extra)
                raise self._pin_missing(pin)
        else:
            lead_s, put_back = self._release(held, now_s)
            if held is not None:
                extra.update(put_back=put_back, put_back_s=lead_s)
            move_s = full_s
            absent = world_pin is None or not world_pin.present
            if absent or self._faults.should_fire("pin_missing", pin, pin_faults):
                self._clock.spend(
                    DEVICE,
                    action,
                    lead_s + move_s * MISSING_PIN_FRACTION,
                    pin=pin,
                    error="pin missing",
                    **extra,
                )
                raise self._pin_missing(pin)
        self._check_robot_fault(
            pin, action, lead_s + move_s * MISSING_PIN_FRACTION, pin_faults, **extra
        )
        if self._faults.should_fire("load_fails", pin, pin_faults):
            self._clock.spend(
                DEVICE, action, lead_s + move_s, pin=pin, error="load failed", **extra
            )
            raise LoadError(
                DEVICE,
                f"{action} of {pin} failed (pin dropped back into its place); retry or skip it",
                pin=pin,
            )
        self._clock.spend(
            DEVICE, action, lead_s + move_s, pin=pin, barcode=barcode, **details, **extra
        )

    @staticmethod
    def _pin_missing(pin: str) -> PinMissingError:
        return PinMissingError(
            DEVICE,
            f"no pin found at {pin}; check the puck and the sample sheet, or skip this sample",
            pin=pin,
        )

    def _release(self, held: _Prefetch | None, now_s: float) -> tuple[float, str | None]:
        """Beamline time to end a prefetch not used (finish the fetch, put the pin back)
        and the pin put back (None if the gripper found no pin)."""
        if held is None:
            return 0.0, None
        left_s = max(0.0, held.ready_s - now_s)
        if held.missing:
            return left_s, None
        return left_s + self._timing.put_back_s, str(held.location)

    def _fetch_left_s(self) -> float:
        """Beamline time until a prefetch under way has its pin in the gripper."""
        with self._lock:
            held = self._prefetch
        return max(0.0, held.ready_s - self._clock.now()) if held is not None else 0.0

    def _check_robot_fault(
        self,
        pin: str,
        action: str,
        spent_s: float,
        pin_faults: frozenset[str] = frozenset(),
        **details: Any,
    ) -> None:
        """Raise SampleChangerFault (robot in FAULT) if one fires, after ``spent_s``."""
        if not self._faults.should_fire("sample_changer_fault", pin, pin_faults):
            return
        self._clock.spend(DEVICE, action, spent_s, pin=pin, error="robot fault", **details)
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

    def _refuse_unless_ready(self, pin: str, prefetch: bool = False) -> None:
        """Raise if the robot is in FAULT or busy (call with ``self._lock`` held)."""
        verb, doing = ("prefetch", "prefetching") if prefetch else ("move to", "moving")
        if self._state is SampleChangerState.FAULT:
            raise SampleChangerFault(
                DEVICE,
                f"in FAULT ({self._fault_reason}); cannot {verb} {pin} until reset()",
                pin=pin,
            )
        if self._state is not SampleChangerState.READY:
            raise DeviceError(
                DEVICE, f"busy ({self._state}); wait for READY before {doing} {pin}", pin=pin
            )

    def _begin(self, state: SampleChangerState, pin: str, refuse_if_mounted: bool = False) -> None:
        with self._lock:
            self._refuse_unless_ready(pin)
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
