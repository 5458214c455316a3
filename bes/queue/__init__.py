"""The sample-changer queue: persisted entries, their state machines and the manager that
runs them one after the other (``docs/queue.md``)."""

from bes.queue.control import RunControl, RunResult
from bes.queue.entries import NewEntry, QueueEntry
from bes.queue.machines import QueueMachine, SampleMachine
from bes.queue.manager import QueueManager, Runner
from bes.queue.readiness import WAITING_FOR_BEAM, beamline_readiness
from bes.queue.states import (
    QUEUE_TRANSITIONS,
    SAMPLE_TRANSITIONS,
    QueueState,
    QueueStateError,
    SampleState,
    StateChange,
)
from bes.queue.store import QUEUE_FILE, QueueStore
from bes.queue.validate import validate_entry

__all__ = [
    "QUEUE_FILE",
    "QUEUE_TRANSITIONS",
    "SAMPLE_TRANSITIONS",
    "WAITING_FOR_BEAM",
    "NewEntry",
    "QueueEntry",
    "QueueMachine",
    "QueueManager",
    "QueueState",
    "QueueStateError",
    "QueueStore",
    "RunControl",
    "RunResult",
    "Runner",
    "SampleMachine",
    "SampleState",
    "StateChange",
    "beamline_readiness",
    "validate_entry",
]
