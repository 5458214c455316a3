"""Mount and unmount the sample with the sample changer, each robot action recorded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from bes.tasks.mx_state import MxTask

MOUNT_POSITIONS = {"phiy": 0.0, "sampx": 0.0, "sampy": 0.0, "omega": 0.0}
"""Where the centring motors go after a mount: the pin's nominal position."""


class MountSample(MxTask, output_names=["mounted"]):
    """Mount the run's sample (exchange with the one mounted when the robot can). Without a
    sample location the sample mounted now is used; with neither, a clear error."""

    def run(self) -> None:
        run = self.sample_run
        changer = self.beamline.sample_changer
        wanted = run.location
        mounted = changer.mounted
        if wanted is None:
            if mounted is None:
                raise ValueError("no sample to work on: give sample='puck:pin' or mount one first")
            run.location = mounted
        elif mounted != wanted:
            if mounted is not None and changer.supports_exchange:
                robot_move(self, "LOAD", lambda: changer.exchange(wanted), str(wanted))
            else:
                if mounted is not None:
                    robot_move(self, "UNLOAD", changer.unload, str(mounted))
                robot_move(self, "LOAD", lambda: changer.load(wanted), str(wanted))
            run.mounted_by_run = True
            self.beamline.goniometer.move_many(MOUNT_POSITIONS)
        self.outputs.mounted = str(run.location)
        self.report("sample", str(run.location))


class UnmountSample(MxTask, output_names=["unmounted"]):
    """Put the pin back (unless ``unmount_at_end`` is false or nothing is mounted)."""

    def run(self) -> None:
        run = self.sample_run
        changer = self.beamline.sample_changer
        self.outputs.unmounted = False
        if run.parameters.unmount_at_end and changer.mounted is not None:
            robot_move(self, "UNLOAD", changer.unload, str(changer.mounted))
            self.outputs.unmounted = True


def robot_move(task: MxTask, action: str, move: Callable[[], None], location: str) -> None:
    """Run a sample-changer move and record it (LIMS RobotAction), ERROR and re-raise on a
    fault."""
    lims = task.sample_run.lims
    start = datetime.now(UTC)
    try:
        move()
    except Exception as exc:
        lims.robot_action(
            action,
            start=start,
            end=datetime.now(UTC),
            status="ERROR",
            message=f"{type(exc).__name__}: {exc}",
            location=location,
        )
        raise
    lims.robot_action(
        action, start=start, end=datetime.now(UTC), status="SUCCESS", location=location
    )
