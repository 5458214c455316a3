"""The base of every mxbes task: an ewokscore ``Task`` that can reach its run's context.

A task declares its inputs and outputs in the class statement and implements ``run()``::

    class MoveOmega(BesTask, input_names=["omega_deg"], output_names=["omega_deg"]):
        def run(self) -> None:
            goniometer = self.beamline.goniometer
            goniometer.move("omega", self.inputs.omega_deg)
            self.outputs.omega_deg = goniometer.read("omega")

The engine passes the :class:`~bes.engine.context.RunContext` to the constructor
(ewokscore's ``task_options``); ``self.context`` is the only way a task reaches the
beamline, recorder, LIMS client, abort flag and limits. A task run by a plain ewoks engine
has no context: ``self.context`` then raises a clear error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ewokscore import Task

if TYPE_CHECKING:
    from bes.engine.context import RunContext
    from bes.hal import Beamline


class BesTask(Task, register=False):  # type: ignore[call-arg]
    """An ewokscore Task with ``self.context`` (set by bes.engine when it creates the task)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Declared so that type checkers accept ``input_names=...`` in class statements.
        super().__init_subclass__(**kwargs)

    def __init__(self, *args: Any, context: RunContext | None = None, **kwargs: Any) -> None:
        self._context = context
        super().__init__(*args, **kwargs)

    @property
    def context(self) -> RunContext:
        if self._context is None:
            raise RuntimeError(
                f"task {type(self).__name__} runs without a bes.engine context; "
                "run its recipe with bes.engine.run_workflow"
            )
        return self._context

    @property
    def beamline(self) -> Beamline:
        """The run's beamline (a clear error if the run has none)."""
        return self.context.require_beamline()

    def check_abort(self) -> None:
        """Raise WorkflowAborted if the run was asked to stop (call between long steps)."""
        if self._context is not None:
            self._context.check_abort()

    def report(self, key: str, value: Any, unit: str | None = None) -> None:
        """Report a metadata item of this step with its unit (``self.report("resolution_a",
        1.8, "A")``): the workflow database stores it, and summarises well-known keys per run
        (docs/record.md). Does nothing when the task runs without a bes.engine context."""
        if self._context is not None:
            self._context.report(key, value, unit)

    def input(self, name: str, default: Any = None) -> Any:
        """The value of input ``name``, or ``default`` when it was not given."""
        return self.get_input_value(name, default)
