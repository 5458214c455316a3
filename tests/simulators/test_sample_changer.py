"""The simulated sample changer mounts pins in profile time and fails with typed errors
that name the device and the pin."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bes.hal import (
    DeviceAction,
    LoadError,
    Location,
    PinMissingError,
    SampleChanger,
    SampleChangerFault,
    SampleChangerState,
)
from simulators.clock import SimClock
from simulators.faults import FaultPlan
from simulators.profile import TimingProfile
from simulators.sample_changer import MOUNT_POSE, SimSampleChanger
from simulators.world import SampleWorld

L11, L12, L13 = Location(1, 1), Location(1, 2), Location(1, 3)


def test_implements_the_hal_protocol(changer: SimSampleChanger) -> None:
    assert isinstance(changer, SampleChanger)
    assert changer.state is SampleChangerState.READY
    assert changer.mounted is None
    assert changer.supports_exchange and changer.supports_prefetch


def test_inventory_lists_every_place_with_presence_and_barcode(
    changer: SimSampleChanger, profile: TimingProfile
) -> None:
    inventory = changer.inventory()
    timing = profile.sample_changer
    assert len(inventory) == timing.pucks * timing.pins_per_puck
    by_place = {info.location: info for info in inventory}
    assert by_place[L11].present and by_place[L11].barcode == "DM0101"
    assert by_place[L12].present
    assert not by_place[L13].present  # the sheet says no pin
    assert not by_place[Location(2, 1)].present  # not in the sheet at all


def test_load_takes_load_time_mounts_and_resets_the_pose(
    changer: SimSampleChanger,
    clock: SimClock,
    profile: TimingProfile,
    world: SampleWorld,
    actions: list[DeviceAction],
) -> None:
    world.pose.update(omega=123.0, phiy=1.5, phiz=0.1)
    changer.load(L11)
    assert clock.now() == pytest.approx(profile.sample_changer.load_s)
    assert changer.mounted == L11 and world.mounted == L11
    assert changer.state is SampleChangerState.READY
    assert all(world.pose[m] == v for m, v in MOUNT_POSE.items())
    assert world.pose["phiz"] == 0.1  # axis alignment is not the robot's business
    (load,) = actions
    assert (load.device, load.action, load.details["pin"]) == ("sample_changer", "load", "1:1")
    assert load.details["barcode"] == "DM0101"


def test_unload_and_exchange_take_their_profile_times(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile
) -> None:
    timing = profile.sample_changer
    changer.load(L11)
    changer.exchange(L12)
    assert changer.mounted == L12
    assert clock.now() == pytest.approx(timing.load_s + timing.exchange_s)
    changer.unload()
    assert changer.mounted is None
    assert clock.now() == pytest.approx(timing.load_s + timing.exchange_s + timing.unload_s)
    changer.unload()  # nothing mounted: nothing to do
    assert clock.now() == pytest.approx(timing.load_s + timing.exchange_s + timing.unload_s)


def test_exchange_without_robot_support_unloads_then_loads(
    clock: SimClock, profile: TimingProfile, world: SampleWorld
) -> None:
    no_exchange = replace(
        profile, sample_changer=replace(profile.sample_changer, supports_exchange=False)
    )
    changer = SimSampleChanger(clock=clock, profile=no_exchange, world=world)
    changer.load(L11)
    changer.exchange(L12)
    timing = profile.sample_changer
    assert changer.mounted == L12
    assert clock.now() == pytest.approx(2 * timing.load_s + timing.unload_s)


def test_missing_pin_raises_and_leaves_the_robot_ready(
    changer: SimSampleChanger, world: SampleWorld
) -> None:
    with pytest.raises(PinMissingError) as error:
        changer.load(L13)
    assert error.value.device == "sample_changer" and error.value.pin == "1:3"
    assert str(error.value).startswith("sample_changer (pin 1:3): no pin found at 1:3")
    assert changer.state is SampleChangerState.READY
    assert changer.mounted is None and world.mounted is None


def test_pin_missing_fault_on_a_present_pin(
    changer: SimSampleChanger, faults: FaultPlan, world: SampleWorld
) -> None:
    world.pins[L12].faults.add("pin_missing")  # as a sample sheet would
    with pytest.raises(PinMissingError, match=r"sample_changer \(pin 1:2\)"):
        changer.load(L12)
    assert world.pins[L12].present  # the pin stays in the dewar
    assert changer.mounted is None and changer.state is SampleChangerState.READY
    assert faults.fired == [("pin_missing", "1:2")]


def test_load_fails_fault_raises_load_error(
    changer: SimSampleChanger, faults: FaultPlan, clock: SimClock, profile: TimingProfile
) -> None:
    faults.add("1:1", "load_fails")
    with pytest.raises(LoadError, match=r"sample_changer \(pin 1:1\): load of 1:1 failed"):
        changer.load(L11)
    assert changer.mounted is None and changer.state is SampleChangerState.READY
    assert clock.now() == pytest.approx(profile.sample_changer.load_s)


def test_robot_fault_needs_a_reset(
    clock: SimClock, profile: TimingProfile, world: SampleWorld
) -> None:
    faults = FaultPlan(per_pin={"1:1": ["sample_changer_fault"]}, once=True)
    changer = SimSampleChanger(clock=clock, profile=profile, world=world, faults=faults)
    with pytest.raises(SampleChangerFault, match=r"sample_changer \(pin 1:1\): robot fault"):
        changer.load(L11)
    assert changer.state is SampleChangerState.FAULT and changer.mounted is None
    with pytest.raises(SampleChangerFault, match="until reset"):
        changer.load(L12)
    changer.reset()
    assert changer.state is SampleChangerState.READY
    changer.load(L11)  # the fault fired once
    assert changer.mounted == L11


def test_loading_over_a_mounted_pin_is_refused_clearly(changer: SimSampleChanger) -> None:
    changer.load(L11)
    with pytest.raises(
        LoadError, match="pin 1:1 is still mounted; unload it first or use exchange"
    ):
        changer.load(L12)
    assert changer.mounted == L11


def test_location_outside_the_dewar_is_named(changer: SimSampleChanger) -> None:
    with pytest.raises(ValueError, match=r"location 25:1 is outside the dewar \(24 pucks x 16"):
        changer.load(Location(25, 1))
    with pytest.raises(ValueError, match="location 1:17"):
        changer.exchange(Location(1, 17))


def test_exchange_to_a_missing_pin_keeps_the_old_one(changer: SimSampleChanger) -> None:
    changer.load(L11)
    with pytest.raises(PinMissingError):
        changer.exchange(L13)
    assert changer.mounted == L11


def test_describe(changer: SimSampleChanger) -> None:
    changer.load(L11)
    info = changer.describe()
    assert info["state"] == "READY" and info["mounted"] == "1:1"
    assert info["pins_present"] == 4
