"""How engine events and caller calls become rows of the workflow database (pure functions:
the recorder calls them in the engine's thread, or hands them to the writer thread)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any

from bes.engine.events import ConditionEvaluated
from bes.record.summary import as_number

LABEL_INPUTS: dict[str, tuple[str, ...]] = {
    "sample": ("sample_id", "sample_lims_id", "sample", "sample_location", "blSampleId"),
    "session": ("session", "session_id", "sessionId"),
    "user_name": ("user", "initiator"),
    "request_id": ("request_id",),
    "beamline": ("beamline",),
}
"""Run labels the recorder takes from run inputs when the caller did not give them (the
MXCuBE start body names them so: ``sessionId``, ``sample_lims_id``, ``initiator`` ...)."""
LABELS = ("sample", "session", "user_name", "request_id", "beamline")
LABEL_LIMITS = {"sample": 128, "session": 64, "user_name": 64, "request_id": 64, "beamline": 64}


def metadata_row(
    run_id: str,
    node_id: str | None,
    execution: int | None,
    key: str,
    value: Any,
    unit: str | None,
    time_s: float,
    beamline_time_s: float | None,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "node_id": node_id,
        "execution": execution,
        "key": key,
        "value": value,
        "value_num": as_number(value),
        "unit": unit,
        "time": time_s,
        "beamline_time_s": beamline_time_s,
    }


def labels_from_inputs(inputs: Any) -> dict[str, Any]:
    if not isinstance(inputs, Mapping):
        return {}
    found: dict[str, Any] = {}
    for label, names in LABEL_INPUTS.items():
        for name in names:
            value = _scalar(inputs.get(name))
            if value is not None:
                found[label] = value
                break
    return found


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        return str(value) if str(value) else None
    if isinstance(value, Mapping):  # an MXCuBE LIMS sample record
        for key in ("blSampleId", "sampleId", "location", "name"):
            if value.get(key) is not None:
                return str(value[key])
    return None


def state_name(state: Any) -> str | None:
    if state is None:
        return None
    text = state.name if isinstance(state, Enum) else str(state)
    return text[:32]


def _json(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def decision_row(
    event: ConditionEvaluated, execution: int | None, reason: str | None
) -> dict[str, Any]:
    """The ``decisions`` row of an evaluated link (made in the writer thread)."""
    checks = event.checks
    return {
        "run_id": event.run_id,
        "node_id": event.source,
        "execution": execution,
        "target": event.target,
        "condition": " and ".join(f"{c.output} == {_json(c.expected)}" for c in checks) or "(none)",
        "value": {c.output: c.value for c in checks},
        "taken": event.taken,
        "reason": reason or explain_decision(event),
        "time": event.time,
        "beamline_time_s": event.beamline_time_s,
    }


def explain_decision(event: ConditionEvaluated) -> str:
    """``taken: done = true`` / ``not taken: done = true, not false``."""
    parts = [
        f"{c.output} = {_json(c.value)}" + ("" if c.satisfied else f", not {_json(c.expected)}")
        for c in event.checks
    ]
    return ("taken: " if event.taken else "not taken: ") + "; ".join(parts)
