"""The transition tables: every declared transition works and is reported to the hook; every
undeclared one is refused with a message that says what is possible."""

from __future__ import annotations

from typing import Any

import pytest

from bes.queue import QUEUE_TRANSITIONS, SAMPLE_TRANSITIONS, QueueStateError
from bes.queue.machines import QueueMachine, SampleMachine
from bes.queue.states import (
    PHASES,
    QueueState,
    QueueTrigger,
    SampleState,
    SampleTrigger,
    no_sample_in_progress,
    paused_for_beamline,
    sample_in_progress,
)


def _rows(table: tuple[dict[str, Any], ...]) -> list[tuple[Any, Any, Any, tuple[Any, ...]]]:
    rows = []
    for row in table:
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        rows += [
            (row["trigger"], s, row["dest"], tuple(row.get("conditions", ()))) for s in sources
        ]
    return rows


@pytest.mark.parametrize(("trigger", "source", "dest", "conditions"), _rows(SAMPLE_TRANSITIONS))
def test_every_sample_transition_works_and_reaches_the_hook(
    trigger: SampleTrigger, source: SampleState, dest: SampleState, conditions: tuple[Any, ...]
) -> None:
    seen: list[tuple[Any, ...]] = []
    machine = SampleMachine("1:3", source, on_transition=lambda *change: seen.append(change))
    assert machine.fire(trigger, "why", run_id="run-1") is dest
    assert seen == [(source, dest, "why", "run-1")]
    assert (machine.reason, machine.run_id) == ("why", "run-1")
    assert machine.history[-1].to_state is dest
    assert machine.history[-1].from_state is source


def _queue_in(state: QueueState, current: int | None, via: QueueTrigger | None) -> QueueMachine:
    """A queue machine brought into ``state`` by declared transitions."""
    machine = QueueMachine()
    machine.current = current
    paths = {
        QueueState.IDLE: [],
        QueueState.RUNNING: [QueueTrigger.START],
        QueueState.PAUSING: [QueueTrigger.START, QueueTrigger.PAUSE],
        QueueState.PAUSED: [QueueTrigger.START, via or QueueTrigger.WAIT_BEAMLINE],
        QueueState.STOPPING: [QueueTrigger.START, QueueTrigger.STOP],
        QueueState.ABORTING: [QueueTrigger.START, QueueTrigger.ABORT],
        QueueState.FAULT: [QueueTrigger.START, QueueTrigger.FAULT],
    }
    if state is QueueState.PAUSED and via is QueueTrigger.PAUSE:
        paths[state] = [QueueTrigger.START, QueueTrigger.PAUSE, QueueTrigger.STEP_DONE]
    for trigger in paths[state]:
        machine.fire(trigger)
    assert machine.state is state
    return machine


@pytest.mark.parametrize(("trigger", "source", "dest", "conditions"), _rows(QUEUE_TRANSITIONS))
def test_every_queue_transition_works_when_its_conditions_hold(
    trigger: QueueTrigger, source: QueueState, dest: QueueState, conditions: tuple[Any, ...]
) -> None:
    current = 7 if sample_in_progress in conditions else None
    via = QueueTrigger.PAUSE if no_sample_in_progress in conditions else None
    machine = _queue_in(source, current, via)
    seen: list[tuple[Any, ...]] = []
    machine._on_transition = lambda *change: seen.append(change)
    assert machine.fire(trigger, "why") is dest
    assert seen == [(source, dest, "why", None)]
    assert machine.last_trigger is trigger


def test_undeclared_sample_triggers_are_refused_with_what_is_possible() -> None:
    declared = {(row[0], row[1]) for row in _rows(SAMPLE_TRANSITIONS)}
    for state in SampleState:
        for trigger in SampleTrigger:
            if (trigger, state) in declared:
                continue
            machine = SampleMachine("2:5", state)
            with pytest.raises(
                QueueStateError, match=f"cannot {trigger}: sample 2:5 is {state.name}"
            ):
                machine.fire(trigger)
            assert machine.state is state and machine.history == []


def test_undeclared_queue_triggers_are_refused_with_what_is_possible() -> None:
    declared = {(row[0], row[1]) for row in _rows(QUEUE_TRANSITIONS)}
    for state in QueueState:
        for trigger in QueueTrigger:
            if (trigger, state) in declared:
                continue
            machine = _queue_in(state, None, None)
            with pytest.raises(QueueStateError, match=f"^cannot {trigger}: queue is {state.name}"):
                machine.fire(trigger)
            assert machine.state is state
    with pytest.raises(
        QueueStateError, match=r"^cannot pause: queue is IDLE; possible now: start$"
    ):
        QueueMachine().fire(QueueTrigger.PAUSE)


def test_conditions_decide_and_explain() -> None:
    person = _queue_in(QueueState.PAUSED, None, QueueTrigger.PAUSE)
    with pytest.raises(QueueStateError, match=r"paused by a person \(use resume\)"):
        person.fire(QueueTrigger.BEAMLINE_READY)
    beam = _queue_in(QueueState.PAUSED, None, QueueTrigger.WAIT_BEAMLINE)
    beam.fire(QueueTrigger.PAUSE, "a person takes over")  # PAUSED -> PAUSED
    with pytest.raises(QueueStateError, match="paused by a person"):
        beam.fire(QueueTrigger.BEAMLINE_READY)
    with pytest.raises(QueueStateError, match="paused by a person"):  # a person decides
        beam.fire(QueueTrigger.FAULT)
    # stop while paused: after the sample in progress, or at once without one
    assert _queue_in(QueueState.PAUSED, 3, None).fire(QueueTrigger.STOP) is QueueState.STOPPING
    assert _queue_in(QueueState.PAUSED, None, None).fire(QueueTrigger.STOP) is QueueState.IDLE
    assert paused_for_beamline.__doc__ and sample_in_progress.__doc__


def test_a_hook_that_fails_leaves_the_machine_where_it_was() -> None:
    def refuse(*_: Any) -> None:
        raise OSError("disk full")

    machine = SampleMachine("1:1", on_transition=refuse)
    with pytest.raises(OSError, match="disk full"):
        machine.fire(SampleTrigger.MOUNT)
    assert machine.state is SampleState.QUEUED and machine.history == []


def test_the_lifecycle_of_a_collected_sample() -> None:
    machine = SampleMachine("1:1")
    triggers = [SampleTrigger.MOUNT, SampleTrigger.MOUNTED, SampleTrigger.START]
    for trigger in [*triggers, SampleTrigger.UNMOUNT, SampleTrigger.FINISH]:
        machine.fire(trigger)
    assert [c.to_state for c in machine.history] == [*PHASES, SampleState.DONE]
