"""Simulated MD3-like goniometer: centring motors, continuous omega rotation, raster lines.

Moves take the trapezoid time of the slowest motor (``profile.goniometer.move_time``).
The pose lives in ``world.pose`` (shared with the detector and the camera). A rotation or
raster line fires one :class:`~simulators.triggers.Trigger` per frame on the trigger line,
at the beamline time the frame starts, carrying the pose at the frame's start and end.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bes.hal.clock import DeviceAction
from bes.hal.errors import ActionInterrupted, MotorLimitError, MotorTimeout
from bes.hal.goniometer import MOTOR_NAMES, RasterLine
from simulators.actions import mounted_pin, reported_action
from simulators.clock import SimClock
from simulators.faults import FaultPlan
from simulators.geometry import centred_pose
from simulators.profile import TimingProfile
from simulators.triggers import Trigger, TriggerLine
from simulators.world import SampleWorld

DEVICE = "goniometer"


@dataclass(frozen=True)
class _Motion:
    """A move in progress: linear in time between two poses (enough to stop it midway)."""

    start_pose: dict[str, float]
    end_pose: dict[str, float]
    start_s: float
    end_s: float

    def pose_at(self, t_s: float) -> dict[str, float]:
        span = self.end_s - self.start_s
        f = 1.0 if span <= 0 else min(1.0, max(0.0, (t_s - self.start_s) / span))
        return {m: v + f * (self.end_pose[m] - v) for m, v in self.start_pose.items()}


class SimGoniometer:
    """The simulated goniometer (implements ``bes.hal.Goniometer``)."""

    name = DEVICE
    motor_names: tuple[str, ...] = MOTOR_NAMES

    def __init__(
        self,
        clock: SimClock,
        profile: TimingProfile,
        world: SampleWorld,
        faults: FaultPlan | None = None,
        triggers: TriggerLine | None = None,
    ) -> None:
        self._clock = clock
        self._timing = profile.goniometer
        self._world = world
        self._faults = faults if faults is not None else FaultPlan()
        self._triggers = triggers if triggers is not None else TriggerLine()
        missing = [m for m in MOTOR_NAMES if m not in self._timing.limits]
        if missing:
            raise ValueError(f"timing profile {profile.source}: no limits for motor(s) {missing}")
        self._lock = threading.RLock()
        self._motion: _Motion | None = None
        self._busy_until_s = 0.0
        self._pending_error: MotorTimeout | None = None
        self._stops = 0

    # --- reading -------------------------------------------------------------------

    def read(self, motor: str) -> float:
        self._check_motor(motor)
        with self._world.lock:
            return float(self._world.pose[motor])

    def positions(self) -> dict[str, float]:
        with self._world.lock:
            return {m: float(self._world.pose[m]) for m in MOTOR_NAMES}

    def limits(self, motor: str) -> tuple[float, float]:
        self._check_motor(motor)
        return self._timing.limits[motor]

    def speed(self, motor: str) -> float:
        self._check_motor(motor)
        return self._timing.speed(motor)

    @property
    def busy(self) -> bool:
        """True while a move started with ``wait=False`` has not finished in beamline time."""
        return self._clock.now() < self._busy_until_s

    # --- moving --------------------------------------------------------------------

    def move(self, motor: str, position: float, wait: bool = True) -> None:
        self.move_many({motor: position}, wait=wait)

    def move_many(self, positions: Mapping[str, float], wait: bool = True) -> None:
        """Move motors together; the move lasts as long as the slowest motor's trapezoid.

        ``wait=False``: the positions are set at once and the goniometer is busy until the
        move's end in beamline time; :meth:`wait` lets that time pass.
        """
        targets = self._check_targets(positions)
        if wait:
            self.wait()
            self._move_blocking(targets, "move")
            return
        with self._lock:
            start_pose = self.positions()
            duration_s, slowest = self._move_duration(start_pose, targets)
            start_s = max(self._clock.now(), self._busy_until_s)
            error = self._timeout_fault(targets, slowest)
            if error is not None:
                duration_s = self._timing.motor_timeout_s
                self._pending_error = error
            else:
                end_pose = {**start_pose, **targets}
                self._motion = _Motion(start_pose, end_pose, start_s, start_s + duration_s)
                self._set_pose(end_pose)
            self._busy_until_s = start_s + duration_s
        self._clock.report(
            DeviceAction(
                device=DEVICE,
                action="move",
                start_s=start_s,
                duration_s=duration_s,
                wall_s=0.0,
                details={
                    "targets": targets,
                    "slowest": slowest,
                    "wait": False,
                    **({"error": str(error)} if error is not None else {}),
                },
            )
        )

    def wait(self, timeout_s: float | None = None) -> None:
        """Let beamline time pass until every ``wait=False`` move has ended; raise its error."""
        with self._lock:
            until_s = self._busy_until_s
        remaining_s = until_s - self._clock.now()
        if timeout_s is not None and remaining_s > timeout_s:
            self._clock.sleep(timeout_s)
            raise MotorTimeout(
                DEVICE,
                f"moves still running {remaining_s - timeout_s:.3f} s after the {timeout_s:g} s "
                "wait timeout; wait longer or stop()",
                pin=mounted_pin(self._world)[0],
            )
        self._clock.advance_to(until_s)
        with self._lock:
            error, self._pending_error = self._pending_error, None
        if error is not None:
            raise error

    def move_to_beam(self, point_mm: tuple[float, float, float]) -> None:
        """Put a sample-frame point on the rotation axis at the beam (phiy, sampx, sampy).

        phiz (the axis height, aligned once by staff) is not touched.
        """
        self.move_many(centred_pose(point_mm))

    def stop(self) -> None:
        """Stop every motor where it is now; a running rotation or raster ends at its next frame."""
        now_s = self._clock.now()
        with self._lock:
            self._stops += 1
            if self._motion is not None and now_s < self._motion.end_s:
                self._set_pose(self._motion.pose_at(now_s))
            self._motion = None
            self._busy_until_s = min(self._busy_until_s, now_s)
        self._clock.spend(DEVICE, "stop", 0.0)

    # --- scans ---------------------------------------------------------------------

    def rotate(
        self, start_deg: float, end_deg: float, speed_deg_s: float, n_triggers: int = 0
    ) -> None:
        """Continuous omega rotation with ``n_triggers`` evenly spaced frames.

        Omega first goes back by the run-up distance, accelerates to reach the speed at
        ``start_deg``, and decelerates past ``end_deg`` (it stops at ``end_deg`` plus the
        run-down). A speed above the profile's maximum is capped (``details`` says so).
        """
        if not speed_deg_s > 0:
            raise ValueError(f"rotation speed must be > 0 deg/s, got {speed_deg_s!r}")
        if start_deg == end_deg:
            raise ValueError(f"rotation from {start_deg:g} to {end_deg:g} deg has no range")
        if n_triggers < 0:
            raise ValueError(f"n_triggers must be >= 0, got {n_triggers}")
        speed = min(float(speed_deg_s), self._timing.omega_speed_deg_s)
        acceleration = self._timing.acceleration("omega")
        direction = math.copysign(1.0, end_deg - start_deg)
        ramp_deg = speed * speed / (2.0 * acceleration)
        ramp_s = speed / acceleration
        run_up = start_deg - direction * ramp_deg
        run_down = end_deg + direction * ramp_deg
        self._check_targets({"omega": run_up})
        self._check_targets({"omega": run_down})
        self.wait()
        self._move_blocking({"omega": run_up}, "move")
        frames = max(n_triggers, 1)
        step_deg = (end_deg - start_deg) / frames
        frame_s = abs(step_deg) / speed
        stops = self._stops
        with reported_action(
            self._clock,
            DEVICE,
            "rotate",
            start_deg=start_deg,
            end_deg=end_deg,
            speed_deg_s=speed,
            requested_speed_deg_s=speed_deg_s,
            speed_capped=speed < speed_deg_s,
            n_triggers=n_triggers,
            frame_s=frame_s,
            ramp_s=ramp_s,
            pin=mounted_pin(self._world)[0],
        ):
            self._clock.sleep(ramp_s)
            self._set_pose({"omega": start_deg})
            base = self.positions()
            for i in range(frames):
                self._check_stopped(stops, "rotation")
                pose_start = {**base, "omega": start_deg + i * step_deg}
                pose_end = {**base, "omega": start_deg + (i + 1) * step_deg}
                if n_triggers:
                    self._triggers.fire(
                        Trigger(i, pose_start, pose_end, frame_s, self._clock.now())
                    )
                self._clock.sleep(frame_s)
                self._set_pose(pose_end)
            self._check_stopped(stops, "rotation")
            self._clock.sleep(ramp_s)
            self._set_pose({"omega": run_down})

    def raster(self, lines: Sequence[RasterLine]) -> None:
        """Run raster lines in order: move to each line's start, then sweep to its end.

        A line is split into ``n_points`` equal segments swept one per trigger, so ``start``
        and ``end`` are the outer edges of the first and last points. A line needing more
        than a motor's maximum speed is swept at that speed (triggers come slower).
        """
        for number, line in enumerate(lines):
            self._check_line(line, number)
        self.wait()
        index = 0
        stops = self._stops
        for number, line in enumerate(lines):
            self._check_stopped(stops, "raster")
            self._move_blocking(self._check_targets(line.start), "move", raster_line=number)
            index = self._sweep_line(line, number, index, stops)

    def _sweep_line(self, line: RasterLine, number: int, first_index: int, stops: int) -> int:
        start = {m: float(v) for m, v in line.start.items()}
        end = {m: float(v) for m, v in line.end.items()}
        line_s = line.n_points * line.exposure_s
        needed = max(abs(end[m] - start[m]) / line_s / self._timing.speed(m) for m in start)
        point_s = line.exposure_s * max(1.0, needed)
        overhead_s = self._timing.raster_line_overhead_s
        with reported_action(
            self._clock,
            DEVICE,
            "raster_line",
            line=number,
            n_points=line.n_points,
            exposure_s=line.exposure_s,
            point_s=point_s,
            overhead_s=overhead_s,
            speed_limited=needed > 1.0,
            pin=mounted_pin(self._world)[0],
        ):
            self._clock.sleep(overhead_s)
            base = self.positions()
            for i in range(line.n_points):
                self._check_stopped(stops, "raster")
                f0, f1 = i / line.n_points, (i + 1) / line.n_points
                pose_start = {**base, **{m: start[m] + f0 * (end[m] - start[m]) for m in start}}
                pose_end = {**base, **{m: start[m] + f1 * (end[m] - start[m]) for m in start}}
                self._triggers.fire(
                    Trigger(
                        first_index + i, pose_start, pose_end, line.exposure_s, self._clock.now()
                    )
                )
                self._clock.sleep(point_s)
                self._set_pose(pose_end)
        return first_index + line.n_points

    # --- internals -----------------------------------------------------------------

    def _move_blocking(self, targets: dict[str, float], action: str, **details: Any) -> None:
        start_pose = self.positions()
        duration_s, slowest = self._move_duration(start_pose, targets)
        error = self._timeout_fault(targets, slowest)
        if error is not None:
            self._clock.spend(
                DEVICE, action, self._timing.motor_timeout_s, targets=targets, error=str(error)
            )
            raise error
        end_pose = {**start_pose, **targets}
        start_s = self._clock.now()
        motion = _Motion(start_pose, end_pose, start_s, start_s + duration_s)
        with self._lock:
            stops = self._stops
            self._motion = motion
        try:
            self._clock.spend(
                DEVICE, action, duration_s, targets=targets, slowest=slowest, **details
            )
        except ActionInterrupted:
            self._set_pose(motion.pose_at(self._clock.now()))
            raise
        self._check_stopped(stops, "move")
        self._set_pose(end_pose)

    def _move_duration(
        self, start_pose: Mapping[str, float], targets: Mapping[str, float]
    ) -> tuple[float, str | None]:
        times = {m: self._timing.move_time(m, v - start_pose[m]) for m, v in targets.items()}
        if not times or max(times.values()) == 0.0:
            return 0.0, None
        slowest = max(times, key=lambda m: times[m])
        return times[slowest], slowest

    def _timeout_fault(
        self, targets: Mapping[str, float], slowest: str | None
    ) -> MotorTimeout | None:
        if slowest is None:
            return None
        pin, pin_faults = mounted_pin(self._world)
        if not self._faults.should_fire("motor_timeout", pin, pin_faults):
            return None
        return MotorTimeout(
            DEVICE,
            f"{slowest} did not reach {targets[slowest]:g} within "
            f"{self._timing.motor_timeout_s:g} s (still at {self.read(slowest):g}); "
            "check the motor, then retry the move",
            pin=pin,
        )

    def _check_stopped(self, stops: int, what: str) -> None:
        if self._stops != stops:
            raise ActionInterrupted(
                DEVICE,
                f"{what} stopped at omega {self.read('omega'):g} deg",
                pin=mounted_pin(self._world)[0],
            )

    def _check_motor(self, motor: str) -> None:
        if motor not in MOTOR_NAMES:
            raise ValueError(f"unknown motor {motor!r}; known: {', '.join(MOTOR_NAMES)}")

    def _check_targets(self, positions: Mapping[str, float]) -> dict[str, float]:
        targets: dict[str, float] = {}
        for motor, value in positions.items():
            self._check_motor(motor)
            low, high = self._timing.limits[motor]
            target = float(value)
            if not low <= target <= high:
                raise MotorLimitError(
                    DEVICE,
                    f"{motor} target {target:g} is outside its limits [{low:g}, {high:g}]; "
                    "choose a position within them",
                    pin=mounted_pin(self._world)[0],
                )
            targets[motor] = target
        return targets

    def _check_line(self, line: RasterLine, number: int) -> None:
        if not line.start:
            raise ValueError(f"raster line {number}: no motor to move; give start and end")
        if set(line.start) != set(line.end):
            raise ValueError(
                f"raster line {number}: start moves {sorted(line.start)} but end moves "
                f"{sorted(line.end)}; give both ends for the same motors"
            )
        if line.n_points < 1 or not line.exposure_s > 0:
            raise ValueError(
                f"raster line {number}: needs n_points >= 1 and exposure_s > 0, got "
                f"{line.n_points} points of {line.exposure_s!r} s"
            )
        self._check_targets(line.start)
        self._check_targets(line.end)

    def _set_pose(self, pose: Mapping[str, float]) -> None:
        with self._world.lock:
            self._world.pose.update(pose)

    def describe(self) -> dict[str, Any]:
        """Positions, limits and speeds, for ``bes sim info``."""
        return {
            "positions": {m: round(v, 4) for m, v in self.positions().items()},
            "limits": {m: self._timing.limits[m] for m in MOTOR_NAMES},
            "speeds": {m: self._timing.speed(m) for m in MOTOR_NAMES},
            "busy": self.busy,
        }
