"""The simulated sample changer mounts pins in profile time and fails with typed errors
that name the device and the pin."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bes.hal import (
    DeviceAction,
    DeviceError,
    LoadError,
    Location,
    PinMissingError,
    SampleChanger,
    SampleChangerFault,
    SampleChangerState,
)
from simulators.clock import SimClock
from simulators.faults import FaultPlan
from simulators.goniometer import SimGoniometer
from simulators.profile import DEFAULT_PROFILE, TimingProfile
from simulators.sample_changer import MOUNT_POSE, SimSampleChanger
from simulators.world import SampleWorld
from simulators.world_builder import world_from_sheet
from tests.simulators.conftest import KNOWN_SHEET

L11, L12, L13 = Location(1, 1), Location(1, 2), Location(1, 3)


def test_implements_the_hal_protocol(changer: SimSampleChanger) -> None:
    assert isinstance(changer, SampleChanger)
    assert changer.state is SampleChangerState.READY
    assert changer.mounted is None
    assert changer.supports_exchange and changer.supports_prefetch
    assert changer.prefetched is None


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


# --- prefetch: fetch the next pin while the mounted one is collected -------------------

L15 = Location(1, 5)


def test_profile_splits_load_and_exchange_into_fetch_and_swap(profile: TimingProfile) -> None:
    timing = profile.sample_changer
    assert 0 < timing.fetch_s < timing.load_s
    assert timing.load_swap_s == pytest.approx(timing.load_s - timing.fetch_s)
    assert timing.exchange_swap_s == pytest.approx(timing.exchange_s - timing.fetch_s)
    assert timing.exchange_s < 40.0  # ISARA exchange under about 40 s


def test_a_fetch_longer_than_a_load_is_refused_naming_the_profile(tmp_path: Path) -> None:
    text = DEFAULT_PROFILE.read_text().replace("fetch_s = 15.0", "fetch_s = 30.0")
    assert "fetch_s = 30.0" in text
    path = tmp_path / "slow.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"slow.toml \[sample_changer\]: fetch_s = 30.0 must"):
        TimingProfile.load(path)


def test_prefetch_returns_at_once_and_reports_a_background_action(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile, actions: list[DeviceAction]
) -> None:
    changer.load(L11)
    now = clock.now()
    inventory = changer.inventory()
    changer.prefetch(L12)
    assert clock.now() == now  # the beamline's timeline does not wait
    assert changer.prefetched == L12
    assert changer.mounted == L11 and changer.state is SampleChangerState.READY
    assert changer.inventory() == inventory
    assert changer.describe()["prefetched"] == "1:2"
    prefetch = actions[-1]
    assert (prefetch.device, prefetch.action) == ("sample_changer", "prefetch")
    assert prefetch.start_s == now and prefetch.wall_s == 0.0
    assert prefetch.duration_s == pytest.approx(profile.sample_changer.fetch_s)
    assert prefetch.details["pin"] == "1:2" and prefetch.details["background"] is True
    changer.prefetch(L12)  # already under way: nothing new
    assert len([a for a in actions if a.action == "prefetch"]) == 1


def test_exchange_after_a_long_collection_takes_only_the_swap(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile, actions: list[DeviceAction]
) -> None:
    timing = profile.sample_changer
    changer.load(L11)
    changer.prefetch(L12)
    clock.sleep(120.0)  # the collection of 1:1
    start = clock.now()
    changer.exchange(L12)
    assert clock.now() - start == pytest.approx(timing.exchange_s - timing.fetch_s)
    assert changer.mounted == L12 and changer.prefetched is None
    assert changer.state is SampleChangerState.READY
    exchange = actions[-1]
    assert exchange.action == "exchange" and exchange.details["prefetched"] is True
    assert exchange.details["prefetch_saved_s"] == pytest.approx(timing.fetch_s)
    assert exchange.details["unloaded"] == "1:1" and exchange.details["pin"] == "1:2"


def test_exchange_after_a_short_collection_waits_for_the_rest_of_the_fetch(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile, gonio: SimGoniometer
) -> None:
    timing = profile.sample_changer
    changer.load(L11)
    changer.prefetch(L12)
    started = clock.now()
    gonio.rotate(0.0, 90.0, 30.0)  # a few seconds of goniometer work meanwhile
    collected = clock.now() - started
    assert 0 < collected < timing.fetch_s
    changer.exchange(L12)
    took = clock.now() - started - collected
    assert took == pytest.approx(timing.exchange_swap_s + timing.fetch_s - collected)
    assert changer.mounted == L12


def test_prefetch_then_immediate_exchange_takes_the_whole_exchange(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile
) -> None:
    changer.load(L11)
    start = clock.now()
    changer.prefetch(L12)
    changer.exchange(L12)
    assert clock.now() - start == pytest.approx(profile.sample_changer.exchange_s)


def test_load_with_nothing_mounted_uses_the_prefetch(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile
) -> None:
    timing = profile.sample_changer
    changer.prefetch(L11)
    clock.sleep(60.0)
    changer.exchange(L11)  # nothing mounted: a load
    assert clock.now() == pytest.approx(60.0 + timing.load_s - timing.fetch_s)
    assert changer.mounted == L11 and changer.prefetched is None


def test_exchange_with_another_pin_puts_the_prefetched_one_back(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile, actions: list[DeviceAction]
) -> None:
    timing = profile.sample_changer
    changer.load(L11)
    changer.prefetch(L12)
    clock.sleep(120.0)
    start = clock.now()
    changer.exchange(L15)
    assert clock.now() - start == pytest.approx(timing.put_back_s + timing.exchange_s)
    assert changer.mounted == L15 and changer.prefetched is None
    exchange = actions[-1]
    assert exchange.details["put_back"] == "1:2"
    assert exchange.details["put_back_s"] == pytest.approx(timing.put_back_s)
    assert "prefetched" not in exchange.details


def test_a_wasted_prefetch_still_under_way_is_finished_then_put_back(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile
) -> None:
    timing = profile.sample_changer
    changer.load(L11)
    changer.prefetch(L12)
    clock.sleep(5.0)
    start = clock.now()
    changer.exchange(L15)
    expected = (timing.fetch_s - 5.0) + timing.put_back_s + timing.exchange_s
    assert clock.now() - start == pytest.approx(expected)


def test_a_second_prefetch_puts_the_first_back_in_the_background(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile, actions: list[DeviceAction]
) -> None:
    timing = profile.sample_changer
    changer.load(L11)
    changer.prefetch(L12)
    clock.sleep(5.0)
    now = clock.now()
    changer.prefetch(L15)
    assert clock.now() == now and changer.prefetched == L15
    second = actions[-1]
    put_back_s = timing.fetch_s - 5.0 + timing.put_back_s
    assert second.details["replaced"] == "1:2" and second.details["put_back"] == "1:2"
    assert second.duration_s == pytest.approx(put_back_s + timing.fetch_s)
    clock.sleep(put_back_s + timing.fetch_s)
    start = clock.now()
    changer.exchange(L15)
    assert clock.now() - start == pytest.approx(timing.exchange_swap_s)


def test_unload_waits_for_a_fetch_under_way_and_the_load_then_is_short(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile
) -> None:
    timing = profile.sample_changer
    changer.load(L11)
    changer.prefetch(L12)
    clock.sleep(5.0)
    start = clock.now()
    changer.unload()
    assert clock.now() - start == pytest.approx(timing.fetch_s - 5.0 + timing.unload_s)
    assert changer.prefetched == L12  # still in the gripper
    start = clock.now()
    changer.load(L12)
    assert clock.now() - start == pytest.approx(timing.load_swap_s)


def _error_without_prefetch(
    profile: TimingProfile, call: str, location: Location, fault: str | None = None
) -> str:
    """The error message the same move raises on a fresh changer, without any prefetch."""
    world = world_from_sheet(KNOWN_SHEET)
    faults = FaultPlan()
    if fault:
        faults.add(str(location), fault)
    fresh = SimSampleChanger(clock=SimClock("instant"), profile=profile, world=world, faults=faults)
    if call == "exchange":
        fresh.load(L11)
    with pytest.raises(DeviceError) as error:
        getattr(fresh, call)(location)
    return str(error.value)


def test_a_missing_pin_prefetched_raises_at_the_exchange_as_without_prefetch(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile, actions: list[DeviceAction]
) -> None:
    changer.load(L11)
    changer.prefetch(L13)  # no pin there: found now, not raised while 1:1 is collected
    assert changer.prefetched == L13
    assert actions[-1].details["error"] == "pin missing"
    clock.sleep(120.0)
    start = clock.now()
    with pytest.raises(PinMissingError) as error:
        changer.exchange(L13)
    assert str(error.value) == _error_without_prefetch(profile, "exchange", L13)
    assert error.value.pin == "1:3"
    assert clock.now() == start  # the robot knew already; nothing moved
    assert changer.mounted == L11  # the old pin stays, as without prefetch
    assert changer.state is SampleChangerState.READY and changer.prefetched is None


def test_a_pin_missing_fault_fires_at_the_prefetch_and_is_raised_by_the_load(
    changer: SimSampleChanger, faults: FaultPlan, clock: SimClock, world: SampleWorld
) -> None:
    world.pins[L12].faults.add("pin_missing")
    changer.prefetch(L12)
    assert faults.fired == [("pin_missing", "1:2")]  # the gripper found the place empty
    clock.sleep(3.0)
    with pytest.raises(PinMissingError, match=r"sample_changer \(pin 1:2\): no pin found at 1:2"):
        changer.load(L12)
    assert faults.fired == [("pin_missing", "1:2")]  # not drawn twice
    assert changer.mounted is None and changer.state is SampleChangerState.READY


def test_a_load_failure_of_a_prefetched_pin_is_raised_by_the_exchange(
    changer: SimSampleChanger, faults: FaultPlan, clock: SimClock, profile: TimingProfile
) -> None:
    faults.add("1:2", "load_fails")
    changer.load(L11)
    changer.prefetch(L12)
    clock.sleep(120.0)
    start = clock.now()
    with pytest.raises(LoadError) as error:
        changer.exchange(L12)
    assert str(error.value) == _error_without_prefetch(profile, "exchange", L12, "load_fails")
    assert clock.now() - start == pytest.approx(profile.sample_changer.exchange_swap_s)
    assert changer.mounted == L11 and changer.state is SampleChangerState.READY


def test_prefetch_is_refused_clearly_when_the_profile_does_not_support_it(
    clock: SimClock, profile: TimingProfile, world: SampleWorld, actions: list[DeviceAction]
) -> None:
    no_prefetch = replace(
        profile, sample_changer=replace(profile.sample_changer, supports_prefetch=False)
    )
    changer = SimSampleChanger(clock=clock, profile=no_prefetch, world=world)
    assert not changer.supports_prefetch
    with pytest.raises(DeviceError, match="cannot prefetch 1:2: this sample changer does not") as e:
        changer.prefetch(L12)
    assert e.value.device == "sample_changer" and e.value.pin == "1:2"
    assert changer.prefetched is None and clock.now() == 0.0 and actions == []


def test_prefetch_of_the_mounted_pin_or_in_fault_is_refused(
    clock: SimClock, profile: TimingProfile, world: SampleWorld
) -> None:
    faults = FaultPlan(per_pin={"1:2": ["sample_changer_fault"]}, once=True)
    changer = SimSampleChanger(clock=clock, profile=profile, world=world, faults=faults)
    changer.load(L11)
    with pytest.raises(LoadError, match="cannot prefetch 1:1: it is mounted"):
        changer.prefetch(L11)
    with pytest.raises(SampleChangerFault):
        changer.exchange(L12)
    with pytest.raises(SampleChangerFault, match="cannot prefetch 1:5 until reset"):
        changer.prefetch(L15)
    assert changer.prefetched is None


def test_reset_clears_the_prefetch_and_puts_the_pin_back(
    changer: SimSampleChanger, clock: SimClock, profile: TimingProfile, actions: list[DeviceAction]
) -> None:
    timing = profile.sample_changer
    changer.load(L11)
    changer.prefetch(L12)
    clock.sleep(60.0)
    start = clock.now()
    changer.reset()
    assert changer.prefetched is None and changer.mounted == L11
    assert clock.now() - start == pytest.approx(timing.reset_s + timing.put_back_s)
    assert actions[-1].details["put_back"] == "1:2"
    start = clock.now()
    changer.exchange(L12)  # no prefetch left: the whole exchange
    assert clock.now() - start == pytest.approx(timing.exchange_s)
