"""The states of a queue entry and of the queue, and their transition tables, declared once.

Each table is a tuple of ``transitions`` configs (trigger, source, dest, conditions). Triggers
are :class:`SampleTrigger` / :class:`QueueTrigger` members; conditions are the functions
below, called with the ``transitions`` ``EventData`` (the machines use ``send_event=True``),
so a type checker sees every reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Protocol, cast

from transitions import EventData


class QueueStateError(RuntimeError):
    """A trigger that the current state does not allow: ``cannot pause: queue is IDLE``."""


class SampleState(Enum):
    """Where one queue entry is in its life."""

    QUEUED = "QUEUED"
    MOUNTING = "MOUNTING"
    MOUNTED = "MOUNTED"
    RUNNING = "RUNNING"
    UNMOUNTING = "UNMOUNTING"
    DONE = "DONE"
    """The recipe ran to its end; its verdict (``collected``, ``no_diffraction`` ...) is the
    entry's ``outcome``."""
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    ABORTED = "ABORTED"
    INTERRUPTED = "INTERRUPTED"
    """bes stopped (crash, ``kill -9``) while the entry was mounting, mounted, running or
    unmounting; found so at the next start, then re-queued or skipped by policy."""


ACTIVE: frozenset[SampleState] = frozenset(
    {SampleState.MOUNTING, SampleState.MOUNTED, SampleState.RUNNING, SampleState.UNMOUNTING}
)
"""The sample is on its way to, on, or coming back from the goniometer."""
FINAL: frozenset[SampleState] = frozenset(
    {
        SampleState.DONE,
        SampleState.FAILED,
        SampleState.SKIPPED,
        SampleState.ABORTED,
        SampleState.INTERRUPTED,
    }
)
"""Nothing more happens to the entry unless a person (or the recovery policy) re-queues it."""
PHASES: tuple[SampleState, ...] = (
    SampleState.MOUNTING,
    SampleState.MOUNTED,
    SampleState.RUNNING,
    SampleState.UNMOUNTING,
)
"""The active states in the order a sample goes through them."""


class SampleTrigger(StrEnum):
    MOUNT = "mount"
    MOUNTED = "mounted"
    START = "start"
    UNMOUNT = "unmount"
    FINISH = "finish"
    FAIL = "fail"
    SKIP = "skip"
    ABORT = "abort"
    INTERRUPT = "interrupt"
    REQUEUE = "requeue"


PHASE_TRIGGERS: dict[SampleState, SampleTrigger] = {
    SampleState.MOUNTED: SampleTrigger.MOUNTED,
    SampleState.RUNNING: SampleTrigger.START,
    SampleState.UNMOUNTING: SampleTrigger.UNMOUNT,
}
"""The trigger that moves a sample into each phase after MOUNTING."""


_ACTIVE = list(PHASES)
_RETRYABLE = [
    SampleState.FAILED,
    SampleState.ABORTED,
    SampleState.SKIPPED,
    SampleState.INTERRUPTED,
]

SAMPLE_TRANSITIONS: tuple[dict[str, Any], ...] = (
    {"trigger": SampleTrigger.MOUNT, "source": SampleState.QUEUED, "dest": SampleState.MOUNTING},
    {
        "trigger": SampleTrigger.MOUNTED,
        "source": SampleState.MOUNTING,
        "dest": SampleState.MOUNTED,
    },
    {"trigger": SampleTrigger.START, "source": SampleState.MOUNTED, "dest": SampleState.RUNNING},
    {
        "trigger": SampleTrigger.UNMOUNT,
        "source": [SampleState.MOUNTED, SampleState.RUNNING],
        "dest": SampleState.UNMOUNTING,
    },
    # A recipe that leaves the pin mounted (unmount_at_end false) ends from RUNNING.
    {
        "trigger": SampleTrigger.FINISH,
        "source": [SampleState.RUNNING, SampleState.UNMOUNTING],
        "dest": SampleState.DONE,
    },
    {"trigger": SampleTrigger.FAIL, "source": _ACTIVE, "dest": SampleState.FAILED},
    # Skip a waiting entry, the current one (its run is aborted), or an interrupted one.
    {
        "trigger": SampleTrigger.SKIP,
        "source": [SampleState.QUEUED, *_ACTIVE, SampleState.INTERRUPTED],
        "dest": SampleState.SKIPPED,
    },
    {"trigger": SampleTrigger.ABORT, "source": _ACTIVE, "dest": SampleState.ABORTED},
    {"trigger": SampleTrigger.INTERRUPT, "source": _ACTIVE, "dest": SampleState.INTERRUPTED},
    {"trigger": SampleTrigger.REQUEUE, "source": _RETRYABLE, "dest": SampleState.QUEUED},
)


class QueueState(Enum):
    """What the queue manager is doing."""

    IDLE = "IDLE"
    RUNNING = "RUNNING"
    PAUSING = "PAUSING"
    """A pause was asked for; it takes effect at the next step boundary of the current run
    (or between samples when the runner offers no step boundaries)."""
    PAUSED = "PAUSED"
    """Held by a person, or waiting for the beamline (then it resumes by itself)."""
    STOPPING = "STOPPING"
    """Stop after the current sample."""
    ABORTING = "ABORTING"
    FAULT = "FAULT"
    """A beamline-level fault (sample changer): waits for a person or a configured recovery."""


class QueueTrigger(StrEnum):
    START = "start"
    PAUSE = "pause"
    STEP_DONE = "step_done"
    RESUME = "resume"
    WAIT_BEAMLINE = "wait_beamline"
    BEAMLINE_READY = "beamline_ready"
    STOP = "stop"
    SAMPLE_DONE = "sample_done"
    FINISH = "finish"
    ABORT = "abort"
    ABORT_DONE = "abort_done"
    FAULT = "fault"
    RECOVER = "recover"


class QueueModel(Protocol):
    """What the queue conditions read from the model."""

    last_trigger: QueueTrigger | None
    """The trigger that led into the current state."""
    current: int | None
    """The id of the entry being run, or None between samples."""


def _queue_model(event: EventData) -> QueueModel:
    return cast(QueueModel, event.model)


def paused_for_beamline(event: EventData) -> bool:
    """The queue holds because the beamline was not ready, not because a person paused it."""
    return _queue_model(event).last_trigger is QueueTrigger.WAIT_BEAMLINE


def sample_in_progress(event: EventData) -> bool:
    """An entry is being run (a pause or stop then waits for it)."""
    return _queue_model(event).current is not None


def no_sample_in_progress(event: EventData) -> bool:
    return _queue_model(event).current is None


CONDITION_TEXT: dict[object, str] = {
    paused_for_beamline: "it was paused by a person (use resume)",
    sample_in_progress: "no sample is running",
    no_sample_in_progress: "a sample is running",
}
"""Why a trigger was refused when a condition did not hold."""

Q = QueueState
QUEUE_TRANSITIONS: tuple[dict[str, Any], ...] = (
    {"trigger": QueueTrigger.START, "source": Q.IDLE, "dest": Q.RUNNING},
    {"trigger": QueueTrigger.PAUSE, "source": Q.RUNNING, "dest": Q.PAUSING},
    # A person pausing a queue that waits for the beam keeps it paused when the beam returns.
    {"trigger": QueueTrigger.PAUSE, "source": Q.PAUSED, "dest": Q.PAUSED},
    {"trigger": QueueTrigger.STEP_DONE, "source": Q.PAUSING, "dest": Q.PAUSED},
    {"trigger": QueueTrigger.RESUME, "source": [Q.PAUSING, Q.PAUSED, Q.FAULT], "dest": Q.RUNNING},
    {"trigger": QueueTrigger.WAIT_BEAMLINE, "source": Q.RUNNING, "dest": Q.PAUSED},
    {
        "trigger": QueueTrigger.BEAMLINE_READY,
        "source": Q.PAUSED,
        "dest": Q.RUNNING,
        "conditions": [paused_for_beamline],
    },
    {"trigger": QueueTrigger.STOP, "source": [Q.RUNNING, Q.PAUSING], "dest": Q.STOPPING},
    {
        "trigger": QueueTrigger.STOP,
        "source": Q.PAUSED,
        "dest": Q.STOPPING,
        "conditions": [sample_in_progress],
    },
    {
        "trigger": QueueTrigger.STOP,
        "source": [Q.PAUSED, Q.FAULT],
        "dest": Q.IDLE,
        "conditions": [no_sample_in_progress],
    },
    {"trigger": QueueTrigger.SAMPLE_DONE, "source": Q.STOPPING, "dest": Q.IDLE},
    {"trigger": QueueTrigger.FINISH, "source": Q.RUNNING, "dest": Q.IDLE},
    {
        "trigger": QueueTrigger.ABORT,
        "source": [Q.RUNNING, Q.PAUSING, Q.PAUSED, Q.STOPPING, Q.FAULT],
        "dest": Q.ABORTING,
    },
    {"trigger": QueueTrigger.ABORT_DONE, "source": Q.ABORTING, "dest": Q.IDLE},
    {"trigger": QueueTrigger.FAULT, "source": [Q.RUNNING, Q.PAUSING], "dest": Q.FAULT},
    # Waiting for the beam, the sample changer found in FAULT: it will not clear by itself.
    {
        "trigger": QueueTrigger.FAULT,
        "source": Q.PAUSED,
        "dest": Q.FAULT,
        "conditions": [paused_for_beamline],
    },
    {"trigger": QueueTrigger.RECOVER, "source": Q.FAULT, "dest": Q.RUNNING},
)


@dataclass(frozen=True)
class StateChange:
    """One transition of an entry or of the queue, as kept in their histories."""

    time: float
    """Wall clock, seconds since the epoch."""
    from_state: Any
    """The state left (a SampleState or QueueState; None for an entry just added)."""
    to_state: Any
    reason: str | None = None
    run_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "from_state": self.from_state.name if self.from_state is not None else None,
            "to_state": self.to_state.name,
            "reason": self.reason,
            "run_id": self.run_id,
        }


def declared_moves(table: tuple[dict[str, Any], ...]) -> frozenset[tuple[Enum, Enum]]:
    """Every (source, dest) pair a table allows, whatever the trigger."""
    moves: set[tuple[Enum, Enum]] = set()
    for row in table:
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        moves.update((source, row["dest"]) for source in sources)
    return frozenset(moves)
