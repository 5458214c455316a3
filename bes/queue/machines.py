"""The two state machines: one :class:`SampleMachine` per queue entry, one
:class:`QueueMachine` for the queue. Both are ``transitions`` models built from the tables in
:mod:`bes.queue.states`; :meth:`~_Machine.fire` runs a trigger and turns a refusal into a
:class:`~bes.queue.states.QueueStateError` that says why and what is possible now.

``on_transition(from_state, to_state, reason, run_id)`` is called before the machine enters
``to_state``: when it raises (the store could not commit the change) the machine stays where it
was, so nothing acts on a state that is not persisted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from enum import Enum, StrEnum
from typing import Any, Generic, TypeVar, cast

from transitions import EventData, Machine, MachineError
from transitions.extensions import LockedMachine

from bes.queue.states import (
    CONDITION_TEXT,
    QUEUE_TRANSITIONS,
    SAMPLE_TRANSITIONS,
    QueueState,
    QueueStateError,
    QueueTrigger,
    SampleState,
    SampleTrigger,
    StateChange,
)

S = TypeVar("S", bound=Enum)
T = TypeVar("T", bound=StrEnum)

TransitionHook = Callable[[Any, Any, "str | None", "str | None"], None]
"""``on_transition(from_state, to_state, reason, run_id)``."""


class _Machine(Generic[S, T]):
    """A ``transitions`` model: ``state``, ``reason`` of the last change, ``history``."""

    state: S
    _states: type[S]
    _triggers: type[T]

    def __init__(
        self,
        subject: str,
        machine: Machine,
        on_transition: TransitionHook | None,
        history: Sequence[StateChange],
    ) -> None:
        self.subject = subject
        """How errors name the model: ``queue``, ``sample 1:3``."""
        self.reason: str | None = history[-1].reason if history else None
        self.run_id: str | None = history[-1].run_id if history else None
        self.history: list[StateChange] = list(history)
        self.last_trigger: T | None = None
        self._on_transition = on_transition
        self._machine = machine

    def fire(self, trigger: T, reason: str | None = None, run_id: str | None = None) -> S:
        """Run ``trigger``; the new state. QueueStateError when the current state (or a
        condition) does not allow it."""
        event = self._machine.events.get(str(trigger))
        if event is None:
            known = ", ".join(t.value for t in self._triggers)
            raise QueueStateError(f"unknown trigger {trigger!r} for {self.subject}; known: {known}")
        try:
            done = event.trigger(self, reason=reason, run_id=run_id, trigger=trigger)
        except MachineError:
            raise QueueStateError(self._refusal(trigger)) from None
        if not done:
            raise QueueStateError(self._refusal(trigger, conditions_failed=True))
        return self.state

    def allowed(self) -> list[str]:
        """The triggers declared from the current state (conditions not checked)."""
        return sorted(str(t) for t in self._machine.get_triggers(self.state.name))

    def _refusal(self, trigger: T, conditions_failed: bool = False) -> str:
        text = f"cannot {trigger}: {self.subject} is {self.state.name}"
        if conditions_failed:
            event = self._machine.events[str(trigger)]
            why = {
                CONDITION_TEXT.get(condition.func) or str(condition.func)
                for transition in event.transitions.get(self.state.name, [])
                for condition in transition.conditions
            }
            if why:
                text += " and " + " or ".join(sorted(why))
        possible = self.allowed()
        return text + (f"; possible now: {', '.join(possible)}" if possible else "")

    def _before_change(self, event: EventData) -> None:
        transition = event.transition
        assert transition is not None
        from_state = self._states[str(transition.source)]
        to_state = self._states[str(transition.dest)]
        reason = event.kwargs.get("reason")
        run_id = event.kwargs.get("run_id") or self.run_id
        if self._on_transition is not None:
            self._on_transition(from_state, to_state, reason, run_id)
        self.reason = reason
        self.run_id = run_id
        self.last_trigger = event.kwargs.get("trigger")
        self.history.append(StateChange(time.time(), from_state, to_state, reason, run_id))


def _machine_options(model: object, initial: Enum, table: Sequence[dict[str, Any]]) -> dict:
    return {
        "model": model,
        "states": type(initial),
        "initial": initial,
        "transitions": [dict(row) for row in table],
        "send_event": True,
        "auto_transitions": False,
    }


class SampleMachine(_Machine[SampleState, SampleTrigger]):
    """The life of one queue entry (table: ``SAMPLE_TRANSITIONS``). Driven by one thread at a
    time (the queue's worker, or the engine thread reporting a phase of the run)."""

    _states = SampleState
    _triggers = SampleTrigger

    def __init__(
        self,
        sample: str,
        state: SampleState = SampleState.QUEUED,
        on_transition: TransitionHook | None = None,
        history: Sequence[StateChange] = (),
    ) -> None:
        machine = Machine(
            **_machine_options(self, state, SAMPLE_TRANSITIONS),
            before_state_change=[self._before_change],
        )
        super().__init__(f"sample {sample}", machine, on_transition, history)


class QueueMachine(_Machine[QueueState, QueueTrigger]):
    """The queue's state (table: ``QUEUE_TRANSITIONS``). A ``LockedMachine``: API threads and
    the worker fire triggers. ``lock`` (default: a new ``RLock``) is the machine's lock; the
    queue manager shares it with its condition variable so that state and waits agree."""

    _states = QueueState
    _triggers = QueueTrigger

    def __init__(
        self,
        on_transition: TransitionHook | None = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.current: int | None = None
        """The entry being run (read by the stop conditions)."""
        self.lock = lock if lock is not None else threading.RLock()
        machine = LockedMachine(
            **_machine_options(self, QueueState.IDLE, QUEUE_TRANSITIONS),
            before_state_change=[self._before_change],
            machine_context=[cast(AbstractContextManager[None], self.lock)],
        )
        super().__init__("queue", machine, on_transition, ())
