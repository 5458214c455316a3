"""The simulated clock keeps honest beamline time in every mode and can be interrupted."""

from __future__ import annotations

import threading
import time

import pytest

from bes.hal import ActionInterrupted, Clock, DeviceAction
from simulators.clock import SimClock
from simulators.faults import FaultPlan
from simulators.profile import TimingProfile


def test_instant_clock_adds_up_without_waiting() -> None:
    clock = SimClock("instant")
    assert isinstance(clock, Clock)
    seen: list[DeviceAction] = []
    unsubscribe = clock.subscribe(seen.append)
    clock.spend("sample_changer", "load", 25.0, pin="1:1")
    clock.spend("goniometer", "move omega", 0.37)
    assert clock.now() == pytest.approx(25.37)
    assert [a.action for a in seen] == ["load", "move omega"]
    assert seen[0].duration_s == 25.0 and seen[0].details == {"pin": "1:1"}
    assert seen[0].wall_s < 1.0  # nothing waited for real
    unsubscribe()
    clock.spend("shutter", "open", 0.01)
    assert len(seen) == 2


def test_scaled_clock_waits_the_scaled_time() -> None:
    clock = SimClock("scaled", factor=50.0)
    start = time.monotonic()
    clock.sleep(1.0)  # 20 ms for real
    assert time.monotonic() - start >= 0.019
    assert clock.now() == pytest.approx(1.0)


def test_advance_to_never_goes_back() -> None:
    clock = SimClock()
    clock.sleep(10)
    clock.advance_to(5)
    assert clock.now() == 10
    clock.advance_to(12.5)
    assert clock.now() == 12.5


def test_interrupt_wakes_a_sleeper_with_partial_time() -> None:
    clock = SimClock("real")
    errors: list[BaseException] = []

    def long_exposure() -> None:
        try:
            clock.spend("detector", "exposure", 30.0)
        except ActionInterrupted as exc:
            errors.append(exc)

    worker = threading.Thread(target=long_exposure)
    worker.start()
    time.sleep(0.1)
    clock.interrupt()
    worker.join(timeout=2)
    assert not worker.is_alive()
    assert errors and "interrupted after" in str(errors[0])
    assert 0.05 < clock.now() < 5.0


@pytest.mark.parametrize(("mode", "factor"), [("fast", 1.0), ("scaled", 0.0)])
def test_bad_clock_settings_are_refused(mode: str, factor: float) -> None:
    with pytest.raises(ValueError, match=mode if mode == "fast" else "factor"):
        SimClock(mode, factor)


def test_profile_move_time_follows_a_trapezoid() -> None:
    gonio = TimingProfile.load().goniometer
    # long move: cruise at 360 deg/s plus one ramp time (v/a) plus settling
    assert gonio.move_time("omega", 90.0) == pytest.approx(90 / 360 + 360 / 3600 + gonio.settle_s)
    # short move: never reaches full speed
    a = gonio.translation_acceleration_mm_s2
    short = gonio.move_time("sampx", 0.05)
    assert short == pytest.approx(2 * (0.05 / a) ** 0.5 + gonio.settle_s)
    assert gonio.move_time("phiy", 0.0) == 0.0


def test_fault_plan_per_pin_and_random_rate() -> None:
    plan = FaultPlan(per_pin={"1:2": ["load_fails"]}, once=True)
    assert plan.should_fire("load_fails", "1:2")
    assert not plan.should_fire("load_fails", "1:2")  # once
    assert not plan.should_fire("load_fails", "1:3")
    assert plan.should_fire("beam_loss", "1:4", pin_faults={"beam_loss"})
    rates = [FaultPlan(rate=0.3, seed=s).should_fire("motor_timeout", "1:1") for s in range(400)]
    assert 0.2 < sum(rates) / len(rates) < 0.4
    with pytest.raises(ValueError, match="unknown fault kind 'fire'"):
        FaultPlan(per_pin={"1:1": ["fire"]})
