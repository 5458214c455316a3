"""The simulated goniometer moves in profile time, fires one trigger per frame and fails
the way a real one does (limits, timeouts, stops)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bes.hal import (
    ActionInterrupted,
    DeviceAction,
    Goniometer,
    MotorLimitError,
    MotorTimeout,
    RasterLine,
)
from simulators.clock import SimClock
from simulators.faults import FaultPlan
from simulators.geometry import sample_to_lab
from simulators.goniometer import SimGoniometer
from simulators.profile import TimingProfile
from simulators.triggers import Trigger
from simulators.world import SampleWorld
from tests.simulators.conftest import mount


def test_implements_the_hal_protocol(gonio: SimGoniometer) -> None:
    assert isinstance(gonio, Goniometer)
    assert gonio.positions() == dict.fromkeys(gonio.motor_names, 0.0)
    assert gonio.limits("sampx") == (-2.5, 2.5)
    assert gonio.speed("omega") == 360.0


def test_omega_90_takes_the_trapezoid_time(
    gonio: SimGoniometer, clock: SimClock, profile: TimingProfile, actions: list[DeviceAction]
) -> None:
    gonio.move("omega", 90.0)
    # cruise at 360 deg/s, plus one ramp time v/a, plus settling
    expected = 90 / 360 + 360 / 3600 + profile.goniometer.settle_s
    assert clock.now() == pytest.approx(expected)
    assert gonio.read("omega") == 90.0
    (move,) = actions
    assert (move.device, move.action) == ("goniometer", "move")
    assert move.duration_s == pytest.approx(expected)
    assert move.details["targets"] == {"omega": 90.0}


def test_move_many_lasts_as_long_as_the_slowest_motor(
    gonio: SimGoniometer, clock: SimClock, profile: TimingProfile
) -> None:
    gonio.move_many({"omega": 10.0, "phiy": 1.0, "sampx": 0.01})
    timing = profile.goniometer
    assert clock.now() == pytest.approx(timing.move_time("phiy", 1.0))
    assert gonio.positions()["phiy"] == 1.0 and gonio.positions()["omega"] == 10.0


def test_move_without_wait_sets_the_position_and_is_busy_until_its_end(
    gonio: SimGoniometer, clock: SimClock, profile: TimingProfile, world: SampleWorld
) -> None:
    duration = profile.goniometer.move_time("phiy", 1.0)
    gonio.move("phiy", 1.0, wait=False)
    assert clock.now() == 0.0
    assert gonio.read("phiy") == 1.0 and world.pose["phiy"] == 1.0
    assert gonio.busy
    gonio.move("phiy", 2.0, wait=False)  # queued behind the first
    gonio.wait()
    assert clock.now() == pytest.approx(2 * duration)
    assert not gonio.busy
    gonio.wait()  # nothing left: no time passes
    assert clock.now() == pytest.approx(2 * duration)


def test_wait_with_a_short_timeout_raises(gonio: SimGoniometer) -> None:
    gonio.move("phiy", 4.0, wait=False)
    with pytest.raises(MotorTimeout, match="still running"):
        gonio.wait(timeout_s=0.1)


def test_limits_are_enforced_and_named(gonio: SimGoniometer, clock: SimClock) -> None:
    with pytest.raises(MotorLimitError) as error:
        gonio.move("sampx", 3.0)
    message = str(error.value)
    assert message.startswith("goniometer")
    assert "sampx" in message and "3" in message and "[-2.5, 2.5]" in message
    assert gonio.read("sampx") == 0.0 and clock.now() == 0.0
    with pytest.raises(ValueError, match="unknown motor 'chi'; known: omega"):
        gonio.move("chi", 1.0)


@pytest.mark.parametrize("wait", [True, False])
def test_motor_timeout_fault_names_device_and_pin(
    gonio: SimGoniometer,
    world: SampleWorld,
    faults: FaultPlan,
    clock: SimClock,
    profile: TimingProfile,
    wait: bool,
) -> None:
    mount(world, "1:1")
    faults.add("1:1", "motor_timeout")
    with pytest.raises(MotorTimeout) as error:
        gonio.move("phiy", 0.5, wait=wait)
        gonio.wait()
    assert error.value.device == "goniometer" and error.value.pin == "1:1"
    assert "goniometer (pin 1:1)" in str(error.value) and "phiy" in str(error.value)
    assert clock.now() == pytest.approx(profile.goniometer.motor_timeout_s)
    assert gonio.read("phiy") == 0.0  # it never arrived


def test_rotation_fires_one_trigger_per_frame(
    gonio: SimGoniometer,
    clock: SimClock,
    profile: TimingProfile,
    triggers: list[Trigger],
    actions: list[DeviceAction],
) -> None:
    gonio.rotate(0.0, 10.0, speed_deg_s=100.0, n_triggers=10)
    assert [t.index for t in triggers] == list(range(10))
    assert [t.pose_start["omega"] for t in triggers] == pytest.approx(np.arange(10.0))
    assert [t.pose_end["omega"] for t in triggers] == pytest.approx(np.arange(1.0, 11.0))
    assert all(t.exposure_s == pytest.approx(0.01) for t in triggers)
    assert np.diff([t.time_s for t in triggers]) == pytest.approx(np.full(9, 0.01))
    # run-up move back by the ramp, accelerate, 0.1 s of frames, decelerate
    acceleration = profile.goniometer.omega_acceleration_deg_s2
    ramp_deg, ramp_s = 100.0**2 / (2 * acceleration), 100.0 / acceleration
    run_up_s = profile.goniometer.move_time("omega", ramp_deg)
    assert clock.now() == pytest.approx(run_up_s + 2 * ramp_s + 0.1)
    assert triggers[0].time_s == pytest.approx(run_up_s + ramp_s)
    assert gonio.read("omega") == pytest.approx(10.0 + ramp_deg)
    rotate = actions[-1]
    assert rotate.action == "rotate" and rotate.duration_s == pytest.approx(2 * ramp_s + 0.1)


def test_rotation_speed_is_capped_at_the_profile_maximum(
    gonio: SimGoniometer, triggers: list[Trigger], actions: list[DeviceAction]
) -> None:
    gonio.rotate(0.0, 36.0, speed_deg_s=1000.0, n_triggers=4)
    assert actions[-1].details["speed_deg_s"] == 360.0
    assert actions[-1].details["speed_capped"] is True
    assert triggers[0].exposure_s == pytest.approx(9.0 / 360.0)


def test_raster_lines_trigger_each_point_and_include_line_overhead(
    gonio: SimGoniometer,
    clock: SimClock,
    profile: TimingProfile,
    triggers: list[Trigger],
) -> None:
    lines = [
        RasterLine({"phiy": 0.0, "sampx": 0.0}, {"phiy": 0.1, "sampx": 0.0}, 5, 0.02),
        RasterLine({"phiy": 0.1, "sampx": 0.02}, {"phiy": 0.0, "sampx": 0.02}, 5, 0.02),
    ]
    gonio.raster(lines)
    assert [t.index for t in triggers] == list(range(10))
    assert [t.pose_start["phiy"] for t in triggers[:5]] == pytest.approx(
        [0, 0.02, 0.04, 0.06, 0.08]
    )
    assert triggers[4].pose_end["phiy"] == pytest.approx(0.1)
    assert triggers[5].pose_start["sampx"] == pytest.approx(0.02)  # snaked second line
    assert all(t.exposure_s == 0.02 for t in triggers)
    timing = profile.goniometer
    step_s = timing.move_time("sampx", 0.02)
    expected = 2 * (timing.raster_line_overhead_s + 5 * 0.02) + step_s
    assert clock.now() == pytest.approx(expected)
    assert gonio.positions()["phiy"] == pytest.approx(0.0)


def test_raster_faster_than_the_motors_is_slowed_down(
    gonio: SimGoniometer, triggers: list[Trigger], actions: list[DeviceAction]
) -> None:
    # 20 um boxes at 1 ms need 20 mm/s, more than phiy's top speed in the profile
    top = gonio.speed("phiy")
    assert top < 20.0
    gonio.raster([RasterLine({"phiy": 0.0}, {"phiy": 0.2}, 10, 0.001)])
    line = next(a for a in actions if a.action == "raster_line")
    assert line.details["speed_limited"] is True
    assert line.details["point_s"] == pytest.approx(0.02 / top)
    assert triggers[0].exposure_s == 0.001
    assert triggers[1].time_s - triggers[0].time_s == pytest.approx(0.02 / top)


def test_bad_raster_lines_are_refused_before_moving(gonio: SimGoniometer, clock: SimClock) -> None:
    with pytest.raises(ValueError, match="raster line 1: start moves"):
        gonio.raster(
            [
                RasterLine({"phiy": 0.0}, {"phiy": 0.1}, 3, 0.01),
                RasterLine({"phiy": 0.0}, {"sampx": 0.1}, 3, 0.01),
            ]
        )
    with pytest.raises(MotorLimitError, match="phiz"):
        gonio.raster([RasterLine({"phiz": 0.0}, {"phiz": 9.0}, 3, 0.01)])
    assert clock.now() == 0.0


def test_move_to_beam_puts_the_point_on_the_axis_in_the_beam(gonio: SimGoniometer) -> None:
    point = (0.1, -0.2, 0.05)
    gonio.move_to_beam(point)
    pose = gonio.positions()
    assert (pose["phiy"], pose["sampx"], pose["sampy"]) == pytest.approx((-0.1, 0.2, -0.05))
    for omega in (0.0, 47.0, 90.0, 200.0):
        gonio.move("omega", omega)
        lab = sample_to_lab(np.array(point), gonio.positions())[0]
        assert lab == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)


def test_stop_from_a_trigger_listener_ends_the_rotation(
    gonio: SimGoniometer, trigger_line, actions: list[DeviceAction]
) -> None:
    seen: list[int] = []

    def detector(trigger: Trigger) -> None:
        seen.append(trigger.index)
        if trigger.index == 3:
            gonio.stop()

    trigger_line.connect(detector)
    with pytest.raises(ActionInterrupted, match="rotation stopped at omega 4"):
        gonio.rotate(0.0, 10.0, speed_deg_s=10.0, n_triggers=10)
    assert seen == [0, 1, 2, 3]
    assert gonio.read("omega") == pytest.approx(4.0)
    assert "ActionInterrupted" in next(a for a in actions if a.action == "rotate").details["error"]


def test_stop_halts_a_move_started_without_wait(gonio: SimGoniometer, clock: SimClock) -> None:
    gonio.move("phiy", 2.0, wait=False)
    gonio.stop()
    assert gonio.read("phiy") == 0.0  # stopped before any beamline time passed
    assert not gonio.busy
    gonio.wait()
    assert clock.now() == 0.0


def test_clock_interruption_propagates_and_leaves_the_motor_part_way(
    profile: TimingProfile, world: SampleWorld
) -> None:
    clock = SimClock("real")
    gonio = SimGoniometer(clock=clock, profile=profile, world=world)
    errors: list[BaseException] = []

    def long_move() -> None:
        try:
            gonio.move("phiy", 4.0)  # about 2 s
        except ActionInterrupted as exc:
            errors.append(exc)

    worker = threading.Thread(target=long_move)
    worker.start()
    time.sleep(0.2)
    clock.interrupt()
    worker.join(timeout=5)
    assert errors, "the move should end with ActionInterrupted"
    assert 0.0 < gonio.read("phiy") < 4.0


def test_describe_reports_positions_limits_and_speeds(gonio: SimGoniometer) -> None:
    gonio.move("kappa", 30.0)
    info = gonio.describe()
    assert info["positions"]["kappa"] == 30.0
    assert info["limits"]["kappa"] == (0.0, 240.0)
    assert info["speeds"]["kappa"] == 30.0
