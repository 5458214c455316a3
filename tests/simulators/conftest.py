"""Fixtures for the simulated devices: an instant clock, the default profile and a small
sample world whose pins are known (from a sample sheet)."""

from __future__ import annotations

from typing import Any

import pytest

from bes.hal import DeviceAction, Location
from simulators.beam import SimBeam, SimShutter
from simulators.camera import SimCamera
from simulators.clock import SimClock
from simulators.faults import FaultPlan
from simulators.goniometer import SimGoniometer
from simulators.profile import TimingProfile, load_profile
from simulators.sample_changer import SimSampleChanger
from simulators.triggers import Trigger, TriggerLine
from simulators.world import SampleWorld
from simulators.world_builder import world_from_sheet

CRYSTAL_AT_MM = (0.05, 0.02, 0.0)
"""Where the sheet puts the crystal of pin 1:1 (sample frame)."""

KNOWN_SHEET: dict[str, Any] = {
    "pins": [
        {
            "location": "1:1",
            "name": "lyso-known",
            "barcode": "DM0101",
            "loop": {"centre_mm": [0.05, 0.02, 0.0], "size_um": [300.0, 200.0]},
            "crystals": [{"position_mm": list(CRYSTAL_AT_MM), "size_um": [60, 40, 30]}],
        },
        {"location": "1:2", "loop": {"centre_mm": [0.0, 0.0, 0.0]}},  # empty loop
        {"location": "1:3", "present": False},
        {"location": "1:4", "loop": False},  # a pin without loop
        {"location": "1:5", "protein": "thaumatin", "crystals": [{"position_mm": [0, 0, 0]}]},
    ]
}
"""A dewar with five known places; every other place is empty (no pin)."""


def mount(world: SampleWorld, location: str) -> None:
    """Put a pin on the goniometer without the sample changer (goniometer/camera tests)."""
    with world.lock:
        world.mounted = Location.parse(location)


@pytest.fixture
def clock() -> SimClock:
    return SimClock("instant")


@pytest.fixture(scope="session")
def profile() -> TimingProfile:
    return load_profile()


@pytest.fixture
def world() -> SampleWorld:
    return world_from_sheet(KNOWN_SHEET)


@pytest.fixture
def faults() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def trigger_line() -> TriggerLine:
    return TriggerLine()


@pytest.fixture
def actions(clock: SimClock) -> list[DeviceAction]:
    """Every device action reported on the clock, in order."""
    seen: list[DeviceAction] = []
    clock.subscribe(seen.append)
    return seen


@pytest.fixture
def triggers(trigger_line: TriggerLine) -> list[Trigger]:
    """Every trigger the goniometer fires, in order."""
    seen: list[Trigger] = []
    trigger_line.connect(seen.append)
    return seen


@pytest.fixture
def gonio(
    clock: SimClock,
    profile: TimingProfile,
    world: SampleWorld,
    faults: FaultPlan,
    trigger_line: TriggerLine,
) -> SimGoniometer:
    return SimGoniometer(
        clock=clock, profile=profile, world=world, faults=faults, triggers=trigger_line
    )


@pytest.fixture
def changer(
    clock: SimClock, profile: TimingProfile, world: SampleWorld, faults: FaultPlan
) -> SimSampleChanger:
    return SimSampleChanger(clock=clock, profile=profile, world=world, faults=faults)


@pytest.fixture
def beam(clock: SimClock, profile: TimingProfile, world: SampleWorld, faults: FaultPlan) -> SimBeam:
    return SimBeam(clock=clock, profile=profile, world=world, faults=faults)


@pytest.fixture
def shutter(clock: SimClock, profile: TimingProfile, world: SampleWorld) -> SimShutter:
    return SimShutter(clock=clock, profile=profile, world=world)


@pytest.fixture
def camera(clock: SimClock, profile: TimingProfile, world: SampleWorld) -> SimCamera:
    return SimCamera(clock=clock, profile=profile, world=world)
