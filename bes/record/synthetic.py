"""Synthetic engine event streams: what a run of ``nodes`` nodes reports, without running
anything. For load tests and the ingest benchmark (``bench/db.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from bes.engine.events import (
    ConditionCheck,
    ConditionEvaluated,
    EngineEvent,
    MetadataReported,
    NodeEnded,
    NodeError,
    NodeStarted,
    WorkflowEnded,
    WorkflowStarted,
)


def run_events(
    run_id: str,
    *,
    workflow: str = "synthetic",
    nodes: int = 8,
    inputs: dict[str, object] | None = None,
    start: float | None = None,
    step_s: float = 2.0,
    fail_at: int | None = None,
    metadata: Mapping[str, tuple[Any, str | None]] | None = None,
) -> Iterator[EngineEvent]:
    """WorkflowStarted; per node NodeStarted, a MetadataReported (``max_score``), NodeEnded
    and a ConditionEvaluated (``done``, taken at the last node); WorkflowEnded.
    ``2 + 4 * nodes`` events; beamline time advances ``step_s`` per node.

    ``fail_at``: that node fails and the run ends ``failed`` there. ``metadata``: more items
    ``{key: (value, unit)}`` reported by the first node."""
    t = time.time() if start is None else start
    common: dict[str, Any] = {"run_id": run_id, "workflow": workflow}
    yield WorkflowStarted(**common, time=t, beamline_time_s=0.0, inputs=dict(inputs or {}))
    for index in range(nodes):
        node = f"step_{index}"
        bt = index * step_s
        failed = index == fail_at
        yield NodeStarted(
            **common,
            time=t,
            beamline_time_s=bt,
            node_id=node,
            task_identifier="bes.tasks.synthetic.Step",
            execution=1,
            inputs={"index": index},
        )
        extra = dict(metadata or {}) if index == 0 else {}
        for key, (value, unit) in {"max_score": (float(index), None), **extra}.items():
            yield MetadataReported(
                **common,
                time=t,
                beamline_time_s=bt + step_s / 2,
                node_id=node,
                execution=1,
                key=key,
                value=value,
                unit=unit,
            )
        error = NodeError(node, "bes.tasks.synthetic.Step", "exception", f"Boom: at {index}")
        yield NodeEnded(
            **common,
            time=t,
            beamline_time_s=bt + step_s,
            node_id=node,
            task_identifier="bes.tasks.synthetic.Step",
            execution=1,
            status="failed" if failed else "finished",
            outputs={} if failed else {"index": index, "done": index == nodes - 1},
            error=error if failed else None,
            duration_s=1e-4,
        )
        if failed:
            yield WorkflowEnded(
                **common,
                time=t,
                beamline_time_s=bt + step_s,
                status="failed",
                error=error,
                node_executions={f"step_{i}": 1 for i in range(index + 1)},
            )
            return
        last = index == nodes - 1
        yield ConditionEvaluated(
            **common,
            time=t,
            beamline_time_s=bt + step_s,
            source=node,
            target="end",
            checks=(ConditionCheck(output="done", expected=True, value=last, satisfied=last),),
            taken=last,
        )
    yield WorkflowEnded(
        **common,
        time=t,
        beamline_time_s=nodes * step_s,
        status="finished",
        node_executions={f"step_{i}": 1 for i in range(nodes)},
    )
