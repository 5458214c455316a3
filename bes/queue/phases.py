"""An engine subscriber that tells the queue how a workflow run goes: its run id, the sample's
phases (MOUNTED after the mount node, RUNNING from the next step, UNMOUNTING at the unmount
node) and, optionally, a pause point after each finished node.

A runner passes ``PhaseReporter(control)`` in the run's subscribers (``Station.run(...,
subscribers=[...])``). The pause point blocks inside the engine's event delivery, which
holds the scheduler's lock: an abort of the run still gets through (the queue wakes the
pause point first), but a workflow or task timeout counts the paused time.
"""

from __future__ import annotations

from collections.abc import Iterable

from bes.engine.events import EngineEvent, NodeEnded, NodeStarted, WorkflowStarted
from bes.queue.control import RunControl
from bes.queue.states import SampleState

MOUNT_TASKS = ("bes.tasks.sample.MountSample",)
UNMOUNT_TASKS = ("bes.tasks.sample.UnmountSample",)
SETUP_TASKS = ("bes.tasks.prepare.PrepareRun",)
"""Nodes that run before the sample is worked on: they do not start the RUNNING phase."""


class PhaseReporter:
    """Turns engine events of one run into ``RunControl`` calls."""

    def __init__(
        self,
        control: RunControl,
        *,
        pause_points: bool = True,
        mount_tasks: Iterable[str] = MOUNT_TASKS,
        unmount_tasks: Iterable[str] = UNMOUNT_TASKS,
        setup_tasks: Iterable[str] = SETUP_TASKS,
    ) -> None:
        self.control = control
        self.pause_points = pause_points
        self._mount = frozenset(mount_tasks)
        self._unmount = frozenset(unmount_tasks)
        self._setup = frozenset(setup_tasks)

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, WorkflowStarted):
            self.control.started(event.run_id)
        elif isinstance(event, NodeStarted):
            task = event.task_identifier
            if task in self._unmount:
                self.control.phase(SampleState.UNMOUNTING)
            elif task not in self._mount and task not in self._setup:
                self.control.phase(SampleState.RUNNING)
        elif isinstance(event, NodeEnded) and event.status == "finished":
            if event.task_identifier in self._mount:
                self.control.phase(SampleState.MOUNTED)
            if self.pause_points:
                self.control.checkpoint()
