"""A queue entry: one sample, the recipe to run on it and its parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bes.queue.states import SampleState


@dataclass(frozen=True)
class NewEntry:
    """What a person (sample sheet, REST client) asks the queue to do with one sample."""

    location: str
    """Dewar location ``puck:pin``."""
    recipe: str
    """Recipe name, e.g. ``mxpresse``."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """Recipe parameters (for MX recipes: ``bes.tasks.parameters.MxParameters`` names)."""
    sample_lims_id: int | None = None


@dataclass(frozen=True)
class QueueEntry:
    """An entry as the queue store holds it."""

    id: int
    position: int
    """1 for the first entry of the queue; finished entries keep their place."""
    location: str
    sample_lims_id: int | None
    recipe: str
    parameters: dict[str, Any]
    state: SampleState
    reason: str | None
    """Why the entry is in its state (the last transition's reason)."""
    outcome: str | None
    """The recipe's verdict on the sample (``collected``, ``no_diffraction`` ...) once run."""
    run_id: str | None
    """The workflow run of the last attempt (workflow database)."""
    attempts: int
    """How often the queue started the entry (went to MOUNTING)."""
    created_time: float
    updated_time: float
    started_time: float | None
    ended_time: float | None

    @property
    def sample(self) -> str:
        """How the workflow database names the sample: its location."""
        return self.location

    def inputs(self) -> dict[str, Any]:
        """The run inputs: the parameters with the sample's location and LIMS id."""
        inputs = {**self.parameters, "sample": self.location}
        if self.sample_lims_id is not None:
            inputs["sample_lims_id"] = self.sample_lims_id
        return inputs

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "position": self.position,
            "location": self.location,
            "sample_lims_id": self.sample_lims_id,
            "recipe": self.recipe,
            "parameters": dict(self.parameters),
            "state": self.state.name,
            "reason": self.reason,
            "outcome": self.outcome,
            "run_id": self.run_id,
            "attempts": self.attempts,
            "created_time": self.created_time,
            "updated_time": self.updated_time,
            "started_time": self.started_time,
            "ended_time": self.ended_time,
        }
