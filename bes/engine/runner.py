"""``run_workflow``: run one recipe on pypushflow actors, in this process, and say how it ended."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ewokscore.graph.graph_io import update_default_inputs
from ewokscore.variable import value_from_transfer

from bes.engine.actors import INFOKEY, BesWorkflow
from bes.engine.context import UNUSED_INPUTS_KEY, RunContext
from bes.engine.events import (
    NodeError,
    Subscriber,
    WorkflowEnded,
    WorkflowStarted,
    emit,
    summarise,
)
from bes.engine.recipes import Recipe, input_items, load_recipe, node_name
from bes.engine.registry import TaskRegistry
from bes.engine.scheduler import Scheduler, beamline_time

STATUSES = ("finished", "failed", "aborted")


@dataclass(frozen=True)
class WorkflowResult:
    """How a workflow run ended."""

    run_id: str
    workflow: str
    status: str
    """``finished``, ``failed`` or ``aborted``."""
    outputs: dict[str, Any]
    """Outputs of the last end node that finished (ewoksppf's rule for a workflow's result)."""
    error: NodeError | None
    """For ``failed``: the node, kind (``exception``, ``timeout``, ...), message, traceback."""
    node_executions: dict[str, int]
    """How often each node ran (loops run a node many times)."""
    node_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The last outputs of each node that finished."""
    duration_s: float = 0.0
    abort_reason: str | None = None
    unused_inputs: tuple[str, ...] = ()
    """Run inputs that no task of the recipe takes."""
    abandoned_thread: bool = False
    """True if a task that did not react to abort or timeout was still running at the end."""

    @property
    def ok(self) -> bool:
        return self.status == "finished"

    @property
    def detail(self) -> str:
        """``finished``, ``failed: timeout`` (the error kind), or ``aborted``."""
        if self.status == "failed" and self.error is not None:
            return f"failed: {self.error.kind}"
        return self.status

    @property
    def nodes_executed(self) -> int:
        return sum(self.node_executions.values())


def run_workflow(
    recipe: str | Path | Mapping[str, Any] | Recipe,
    inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    context: RunContext | None = None,
    *,
    subscribers: Iterable[Subscriber] = (),
    registry: TaskRegistry | None = None,
    run_id: str | None = None,
) -> WorkflowResult:
    """Run ``recipe`` (a name in ``workflows/``, a JSON file, a graph dict or a Recipe).

    ``inputs``: ``{name: value}`` sets ``name`` on every node whose task takes it; a list of
    ewoks input items is used as is. ``context`` reaches every task as ``self.context``;
    its recorder and ``subscribers`` get the events. A recipe that fails validation or
    names a forbidden task raises RecipeError / RecipeRefused before anything runs; any
    other outcome is a WorkflowResult (``finished``, ``failed`` or ``aborted``).
    """
    context = context if context is not None else RunContext()
    loaded = load_recipe(recipe, registry)
    taskgraph = loaded.task_graph()
    items, unused = input_items(loaded, taskgraph.graph, inputs)
    context.state[UNUSED_INPUTS_KEY] = unused
    if items:
        try:
            update_default_inputs(taskgraph.graph, items)
        except KeyError as exc:
            nodes = ", ".join(node_name(n) for n in taskgraph.graph.nodes)
            raise ValueError(
                f"input for unknown node {exc}; nodes of {loaded.name!r}: {nodes}"
            ) from None

    run_id = run_id or uuid.uuid4().hex
    listeners = [*([context.recorder] if context.recorder is not None else []), *subscribers]
    scheduler = Scheduler(
        graph=taskgraph.graph,
        context=context,
        run_id=run_id,
        workflow=loaded.name,
        subscribers=listeners,
    )
    workflow = BesWorkflow(taskgraph, scheduler)
    if listeners:
        emit(
            listeners,
            WorkflowStarted(
                run_id=run_id,
                workflow=loaded.name,
                time=time.time(),
                beamline_time_s=beamline_time(context),
                inputs=summarise(_inputs_as_dict(inputs)),
                source=str(loaded.source) if loaded.source else None,
                recipe_sha256=recipe_sha256(loaded),
                recipe_version=_str_or_none(loaded.mxbes.get("version")),
            ),
        )

    start = time.monotonic()
    if context.limits.workflow_timeout_s is not None:
        scheduler.deadline = start + context.limits.workflow_timeout_s
    start_data = {
        INFOKEY: {"varinfo": None, "execinfo": None, "task_options": {"context": context}}
    }
    scheduler.run(lambda: workflow.start_actor.trigger(start_data))
    duration = time.monotonic() - start

    status = scheduler.status or "finished"
    result = WorkflowResult(
        run_id=run_id,
        workflow=loaded.name,
        status=status,
        outputs=_outputs(workflow) if status == "finished" else {},
        error=scheduler.error if status == "failed" else None,
        node_executions=dict(scheduler.executions),
        node_outputs=scheduler.node_outputs,
        duration_s=duration,
        abort_reason=(context.abort_reason or "abort requested") if status == "aborted" else None,
        unused_inputs=unused,
        abandoned_thread=scheduler.abandoned_thread,
    )
    if listeners:
        emit(
            listeners,
            WorkflowEnded(
                run_id=run_id,
                workflow=loaded.name,
                time=time.time(),
                beamline_time_s=beamline_time(context),
                status=result.status,
                error=result.error,
                outputs=summarise(result.outputs),
                node_executions=result.node_executions,
                duration_s=duration,
            ),
        )
    return result


def recipe_sha256(recipe: Recipe) -> str:
    """SHA-256 of the recipe's JSON with sorted keys: the same graph gives the same hash
    whether it came from a file or a REST client."""
    text = json.dumps(recipe.raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _outputs(workflow: BesWorkflow) -> dict[str, Any]:
    data = workflow.stop_actor.outData
    if not data or "WorkflowException" in data:
        return {}
    return {str(k): value_from_transfer(v) for k, v in data.items() if k != INFOKEY}


def _inputs_as_dict(inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> Any:
    if inputs is None:
        return {}
    if isinstance(inputs, Mapping):
        return dict(inputs)
    return [dict(item) for item in inputs]
