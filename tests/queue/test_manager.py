"""The queue manager with a fake runner: a seeded night, commands at random moments, beam
loss, sample changer faults, crash recovery, and what it records."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from bes.hal.sample_changer import SampleChangerState
from bes.queue import (
    WAITING_FOR_BEAM,
    QueueManager,
    QueueState,
    QueueStateError,
    QueueStore,
    SampleState,
    beamline_readiness,
)
from bes.queue.readiness import CHANGER_FAULT, NotReady
from bes.queue.states import (
    ACTIVE,
    FINAL,
    PHASES,
    QUEUE_TRANSITIONS,
    SAMPLE_TRANSITIONS,
    declared_moves,
)
from tests.queue.conftest import (
    KINDS,
    OUTCOME,
    FakeBeamline,
    FakeRecorder,
    FakeRunner,
    location,
    mx_entry,
)

S = SampleState
Q = QueueState
MakeManager = Callable[..., QueueManager]


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


def fill(store: QueueStore, n: int) -> list[int]:
    return [store.add(mx_entry(i)) for i in range(n)]


def assert_consistent(store: QueueStore, recorder: FakeRecorder) -> None:
    """Each entry's history is a walk through the sample table ending in its state, and the
    workflow database got the same transitions."""
    moves = declared_moves(SAMPLE_TRANSITIONS)
    for entry in store.list():
        history = store.history(entry.id)
        assert history[0].to_state is S.QUEUED and history[-1].to_state is entry.state
        for before, after in itertools.pairwise(history):
            assert after.from_state is before.to_state
            assert (after.from_state, after.to_state) in moves
        recorded = [t["to_state"] for t in recorder.transitions if t["sample"] == entry.location]
        assert recorded == [c.to_state for c in history[1:]]


def test_a_seeded_night_of_24_samples_ends_with_counts_matching_the_truth(
    store: QueueStore, recorder: FakeRecorder, make_manager: MakeManager
) -> None:
    rng = random.Random(8)
    plan = {location(i): rng.choices(KINDS, weights=[6, 3, 2])[0] for i in range(24)}
    runner = FakeRunner(plan)
    manager = make_manager(runner)
    ids = [manager.add(mx_entry(i)).id for i in range(24)]
    manager.start()
    assert manager.wait_idle(10)

    entries = store.list()
    assert all(e.state in FINAL for e in entries)
    truth = {kind: sum(1 for k in plan.values() if k == kind) for kind in KINDS}
    counts = manager.status()["counts"]
    assert counts["DONE"] == truth["good"] + truth["no_diffraction"]
    assert counts["FAILED"] == truth["failed"]
    assert all(e.outcome == OUTCOME[plan[e.location]] for e in entries)
    assert runner.calls == {entry_id: 1 for entry_id in ids}  # nothing run twice
    good = next(e for e in entries if e.state is S.DONE)
    assert [c.to_state for c in store.history(good.id)] == [S.QUEUED, *PHASES, S.DONE]
    assert store.history(good.id)[-1].run_id == good.run_id is not None
    failed = next(e for e in entries if e.state is S.FAILED)
    assert "DetectorError" in (failed.reason or "")
    assert_consistent(store, recorder)
    actions = [e["action"] for e in recorder.queue_events]
    assert actions[:24] == ["added"] * 24 and actions[24:] == ["running", "idle"]
    assert manager.status()["state"] == "IDLE" and manager.status()["current"] is None
    assert [h["id"] for h in manager.history()] == ids


def test_commands_at_random_moments_leave_consistent_final_states(
    store: QueueStore, recorder: FakeRecorder, make_manager: MakeManager
) -> None:
    rng = random.Random(2024)
    plan = {location(i): rng.choice(KINDS) for i in range(24)}
    runner = FakeRunner(plan, steps=3, step_s=0.002)
    manager = make_manager(runner)
    ids = fill(store, 24)
    commands: dict[str, Callable[[], Any]] = {
        "pause": manager.pause,
        "resume": manager.resume,
        "stop": manager.stop,
        "abort": manager.abort,
        "skip": manager.skip,
        "skip_waiting": lambda: manager.skip(rng.choice(ids)),
        "start": manager.start,
    }
    weights = {"pause": 3, "resume": 3, "stop": 1, "abort": 1, "skip": 2, "skip_waiting": 1}
    done, refused = [], []
    manager.start()
    for _ in range(120):
        time.sleep(rng.uniform(0, 0.006))
        if manager.state is Q.IDLE:
            name = "start"
        else:
            name = rng.choices(list(weights), weights=list(weights.values()))[0]
        try:
            commands[name]()
            done.append(name)
        except QueueStateError as exc:
            refused.append((name, str(exc)))
    # then let it run to the end
    deadline = time.monotonic() + 10
    while store.next_queued() is not None or manager.state is not Q.IDLE:
        assert time.monotonic() < deadline
        if manager.state in (Q.PAUSED, Q.PAUSING, Q.FAULT):
            manager.resume()
        elif manager.state is Q.IDLE:
            manager.start()
        time.sleep(0.002)
    assert manager.wait_idle(5)

    assert {"pause", "resume", "abort", "skip", "start"} <= set(done)
    assert all(text.startswith(f"cannot {name.split('_')[0]}") for name, text in refused)
    entries = store.list()
    assert not [e for e in entries if e.state not in FINAL]
    for entry in entries:
        assert runner.calls[entry.id] == entry.attempts <= 1  # nothing run twice
        if entry.state is S.DONE:
            assert entry.outcome == OUTCOME[plan[entry.location]]
        if entry.state is S.FAILED:
            assert plan[entry.location] == "failed"
        if entry.attempts == 0:
            assert entry.state is S.SKIPPED  # skipped while waiting
    counts = store.counts()  # every ended run has a cause: no spontaneous aborts or skips
    assert counts[S.ABORTED] <= done.count("abort")
    assert counts[S.SKIPPED] <= done.count("skip") + done.count("skip_waiting")
    assert counts[S.DONE] + counts[S.FAILED] >= 1
    assert_consistent(store, recorder)
    queue_moves = declared_moves(QUEUE_TRANSITIONS)
    history = manager.queue_history()
    assert all((c.from_state, c.to_state) in queue_moves for c in history)
    assert all(b.from_state is a.to_state for a, b in itertools.pairwise(history))


def test_pause_takes_effect_after_the_current_step_and_resume_goes_on(
    store: QueueStore, make_manager: MakeManager
) -> None:
    runner = FakeRunner(steps=50, step_s=0.002)
    manager = make_manager(runner)
    first, second = fill(store, 2)
    manager.start()
    wait_for(runner.in_step.is_set)
    manager.pause()
    wait_for(lambda: manager.state is Q.PAUSED)
    status = manager.status()
    assert status["current"]["id"] == first and status["current"]["state"] == "RUNNING"
    assert manager.queue_history()[-1].reason == "paused after a step of the current sample"
    time.sleep(0.02)
    assert store.get(first).state is S.RUNNING and runner.calls[second] == 0
    manager.resume()
    assert manager.wait_idle(5)
    assert [store.get(i).state for i in (first, second)] == [S.DONE, S.DONE]


def test_without_pause_points_a_pause_waits_for_the_end_of_the_sample(
    store: QueueStore, make_manager: MakeManager
) -> None:
    runner = FakeRunner(steps=10, step_s=0.002, checkpoints=False)
    manager = make_manager(runner)
    first, second = fill(store, 2)
    manager.start()
    wait_for(runner.in_step.is_set)
    manager.pause()
    assert manager.state is Q.PAUSING
    wait_for(lambda: manager.state is Q.PAUSED)
    assert store.get(first).state is S.DONE and store.get(second).state is S.QUEUED
    assert manager.status()["current"] is None
    assert manager.queue_history()[-1].reason == "paused between samples"
    manager.stop()  # nothing in progress: IDLE at once
    assert manager.wait_idle(5)
    assert store.get(second).state is S.QUEUED and runner.calls[second] == 0


def test_stop_ends_after_the_current_sample(store: QueueStore, make_manager: MakeManager) -> None:
    runner = FakeRunner(steps=10, step_s=0.002)
    manager = make_manager(runner)
    ids = fill(store, 3)
    manager.start()
    wait_for(runner.in_step.is_set)
    manager.stop()
    assert manager.state is Q.STOPPING
    assert manager.wait_idle(5)
    assert [store.get(i).state for i in ids] == [S.DONE, S.QUEUED, S.QUEUED]
    manager.start()  # the rest runs on a new start
    assert manager.wait_idle(5)
    assert [store.get(i).state for i in ids] == [S.DONE] * 3


def test_abort_ends_the_current_run_now_and_goes_idle(
    store: QueueStore, make_manager: MakeManager
) -> None:
    aborted: list[str] = []
    runner = FakeRunner(steps=1000, step_s=0.002)
    manager = make_manager(runner, abort_current=aborted.append)
    first, second = fill(store, 2)
    manager.start()
    wait_for(runner.in_step.is_set)
    manager.abort("beamline scientist needs the beam")
    assert manager.wait_idle(5)
    entry = store.get(first)
    assert (entry.state, entry.reason) == (S.ABORTED, "beamline scientist needs the beam")
    assert aborted == ["beamline scientist needs the beam"]
    assert store.get(second).state is S.QUEUED
    with pytest.raises(
        QueueStateError, match=r"^cannot abort: queue is IDLE; possible now: start$"
    ):
        manager.abort()


def test_skip_ends_the_current_sample_and_the_queue_goes_on(
    store: QueueStore, make_manager: MakeManager
) -> None:
    runner = FakeRunner(steps=1000, step_s=0.002)
    manager = make_manager(runner)
    first, second, third = fill(store, 3)
    manager.skip(third, "no time for this one")
    manager.start()
    wait_for(runner.in_step.is_set)
    runner.steps = 2
    manager.skip()
    assert manager.wait_idle(5)
    assert [store.get(i).state for i in (first, second, third)] == [S.SKIPPED, S.DONE, S.SKIPPED]
    assert store.get(first).reason == "skipped by a person" and runner.calls[third] == 0
    with pytest.raises(QueueStateError, match="no sample is running"):
        manager.skip()


def test_a_failed_sample_stops_the_queue_only_without_keep_going(
    store: QueueStore, make_manager: MakeManager
) -> None:
    runner = FakeRunner({"1:1": "failed"})
    manager = make_manager(runner, keep_going=False)
    ids = fill(store, 3)
    manager.start()
    assert manager.wait_idle(5)
    assert [store.get(i).state for i in ids] == [S.FAILED, S.QUEUED, S.QUEUED]
    assert "failed; keep_going off" in (manager.queue_history()[-2].reason or "")


def test_a_runner_error_fails_the_sample_and_the_queue_goes_on(
    store: QueueStore, make_manager: MakeManager
) -> None:
    def runner(entry: Any, control: Any) -> Any:
        if entry.location == "1:1":
            raise RuntimeError("LIMS unreachable")
        return FakeRunner()(entry, control)

    manager = make_manager(runner)
    first, second = fill(store, 2)
    manager.start()
    assert manager.wait_idle(5)
    assert store.get(first).state is S.FAILED
    assert store.get(first).reason == "runner error: RuntimeError: LIMS unreachable"
    assert store.get(second).state is S.DONE


def test_beam_loss_pauses_the_queue_and_it_resumes_by_itself(
    store: QueueStore, make_manager: MakeManager
) -> None:
    beamline = FakeBeamline()
    violations = []

    def lose_beam_after_the_second(entry: Any) -> None:
        if not beamline.beam.available:
            violations.append(entry.id)
        if entry.location == "1:2":
            beamline.beam.available = False

    runner = FakeRunner(on_call=lose_beam_after_the_second)
    manager = make_manager(runner, beamline=beamline)
    ids = fill(store, 4)
    manager.start()
    wait_for(lambda: manager.state is Q.PAUSED)
    assert manager.status()["reason"] == WAITING_FOR_BEAM
    time.sleep(0.02)
    assert [store.get(i).state for i in ids] == [S.DONE, S.DONE, S.QUEUED, S.QUEUED]
    beamline.beam.available = True
    assert manager.wait_idle(5)
    assert [store.get(i).state for i in ids] == [S.DONE] * 4
    assert violations == []
    reasons = [(c.to_state, c.reason) for c in manager.queue_history()]
    assert (Q.PAUSED, WAITING_FOR_BEAM) in reasons
    assert (Q.RUNNING, "the beamline is ready again") in reasons


def test_a_person_pausing_during_a_beam_wait_keeps_it_paused(
    store: QueueStore, make_manager: MakeManager
) -> None:
    beamline = FakeBeamline()
    beamline.beam.available = False
    manager = make_manager(FakeRunner(), beamline=beamline)
    (entry_id,) = fill(store, 1)
    manager.start()
    wait_for(lambda: manager.state is Q.PAUSED)
    manager.pause("checking the crystal by hand")
    beamline.beam.available = True
    time.sleep(0.03)
    assert manager.state is Q.PAUSED and store.get(entry_id).state is S.QUEUED
    manager.resume()
    assert manager.wait_idle(5)
    assert store.get(entry_id).state is S.DONE


def test_the_default_readiness_asks_for_beam_and_a_ready_sample_changer() -> None:
    beamline = FakeBeamline()
    check = beamline_readiness(beamline)  # type: ignore[arg-type]
    assert check() is None
    beamline.sample_changer.state = "LOADING"  # type: ignore[assignment]
    assert check() == "waiting for the sample changer (state LOADING)"
    beamline.sample_changer.state = SampleChangerState.FAULT
    fault = check()
    assert isinstance(fault, NotReady) and fault.fault and fault.resettable
    assert fault.reason == "sample changer in FAULT before the next sample (it needs a reset)"
    beamline.beam.available = False
    assert check() == WAITING_FOR_BEAM


def test_a_sample_changer_fault_is_recovered_once_by_a_reset(
    store: QueueStore, make_manager: MakeManager
) -> None:
    beamline = FakeBeamline()
    runner = FakeRunner({"1:2": "fault"}, changer=beamline.sample_changer)
    manager = make_manager(runner, beamline=beamline, recover_sample_changer=True)
    ids = fill(store, 3)
    manager.start()
    assert manager.wait_idle(5)
    assert [store.get(i).state for i in ids] == [S.DONE] * 3
    assert beamline.sample_changer.resets == 1
    assert runner.calls[ids[1]] == 2 and store.get(ids[1]).attempts == 2
    history = [c.to_state for c in store.history(ids[1])]
    assert history == [S.QUEUED, S.MOUNTING, S.FAILED, S.QUEUED, S.MOUNTING, *PHASES[1:], S.DONE]
    assert store.history(ids[1])[2].reason.startswith("beamline fault: SampleChangerFault")
    # the retry writes a new run number: nothing overwritten
    assert [call["run_number"] for call in runner.inputs[ids[1]]] == [1, 2]
    states = [c.to_state for c in manager.queue_history()]
    assert states[:4] == [Q.RUNNING, Q.FAULT, Q.RUNNING, Q.IDLE]


def test_without_recovery_a_fault_waits_for_a_person(
    store: QueueStore, make_manager: MakeManager
) -> None:
    beamline = FakeBeamline()
    runner = FakeRunner({"1:1": "fault"}, changer=beamline.sample_changer)
    manager = make_manager(runner, beamline=beamline)
    ids = fill(store, 2)
    manager.start()
    wait_for(lambda: manager.state is Q.FAULT)
    assert "gripper lost the pin" in manager.status()["reason"]
    time.sleep(0.02)
    assert manager.state is Q.FAULT and store.get(ids[0]).state is S.QUEUED
    beamline.sample_changer.reset()  # a person looks at the robot, then resumes
    manager.resume()
    assert manager.wait_idle(5)
    assert [store.get(i).state for i in ids] == [S.DONE, S.DONE]


def fault_the_changer_during(beamline: FakeBeamline, pin: str) -> Callable[[Any], None]:
    """A runner hook: the sample changer goes to FAULT during the run of ``pin`` without
    the run raising it (as when the unmount of a sample that failed on its own fault meets
    a robot fault)."""

    def hook(entry: Any) -> None:
        if entry.location == pin:
            beamline.sample_changer.state = SampleChangerState.FAULT

    return hook


def test_a_changer_left_in_fault_between_samples_is_a_fault_reset_once(
    store: QueueStore, make_manager: MakeManager
) -> None:
    beamline = FakeBeamline()
    runner = FakeRunner(on_call=fault_the_changer_during(beamline, "1:1"))
    manager = make_manager(runner, beamline=beamline, recover_sample_changer=True)
    ids = fill(store, 2)
    manager.start()
    assert manager.wait_idle(5)
    assert [store.get(i).state for i in ids] == [S.DONE, S.DONE]
    assert beamline.sample_changer.resets == 1
    assert runner.calls[ids[1]] == 1  # not a retry: the next entry waited for the reset
    moves = [(c.from_state, c.to_state, c.reason) for c in manager.queue_history()]
    assert (Q.RUNNING, Q.FAULT, CHANGER_FAULT.reason) in moves
    assert (Q.FAULT, Q.RUNNING, f"sample changer reset; going on with entry {ids[1]}") in moves
    assert not [m for m in moves if m[1] is Q.PAUSED]


def test_without_recovery_a_changer_left_in_fault_waits_for_a_person(
    store: QueueStore, make_manager: MakeManager
) -> None:
    beamline = FakeBeamline()
    runner = FakeRunner(on_call=fault_the_changer_during(beamline, "1:1"))
    manager = make_manager(runner, beamline=beamline)
    ids = fill(store, 2)
    manager.start()
    wait_for(lambda: manager.state is Q.FAULT)
    assert manager.status()["reason"] == CHANGER_FAULT.reason
    assert manager.waiting_for_person
    manager.resume("resumed without looking at the robot")  # still in FAULT: FAULT again
    wait_for(lambda: manager.state is Q.FAULT)
    assert store.get(ids[1]).state is S.QUEUED and beamline.sample_changer.resets == 0
    beamline.sample_changer.reset()  # a person resets the robot, then resumes
    manager.resume()
    assert manager.wait_idle(5)
    assert [store.get(i).state for i in ids] == [S.DONE, S.DONE]


def test_a_changer_that_faults_during_a_beam_wait_turns_the_wait_into_a_fault(
    store: QueueStore, make_manager: MakeManager
) -> None:
    beamline = FakeBeamline()
    beamline.beam.available = False
    manager = make_manager(FakeRunner(), beamline=beamline, recover_sample_changer=True)
    (entry_id,) = fill(store, 1)
    manager.start()
    wait_for(lambda: manager.state is Q.PAUSED)
    beamline.sample_changer.state = SampleChangerState.FAULT
    beamline.beam.available = True
    assert manager.wait_idle(5)
    assert store.get(entry_id).state is S.DONE
    states = [c.to_state for c in manager.queue_history()]
    assert states == [Q.RUNNING, Q.PAUSED, Q.FAULT, Q.RUNNING, Q.IDLE]
    assert beamline.sample_changer.resets == 1


def test_a_changer_in_fault_with_nothing_left_to_mount_lets_the_queue_end(
    store: QueueStore, make_manager: MakeManager
) -> None:
    beamline = FakeBeamline()
    runner = FakeRunner(on_call=fault_the_changer_during(beamline, "1:1"))
    manager = make_manager(runner, beamline=beamline, recover_sample_changer=True)
    fill(store, 1)
    manager.start()
    assert manager.wait_idle(5)
    assert manager.status()["reason"] == "queue empty"
    assert beamline.sample_changer.resets == 0  # the next start meets the fault


def test_start_recovers_what_a_crash_left_and_nothing_is_collected_twice(
    store: QueueStore, recorder: FakeRecorder, make_manager: MakeManager
) -> None:
    ids = fill(store, 3)
    for state in (S.MOUNTING, S.MOUNTED, S.RUNNING):  # the dead process's last commits
        store.update_state(ids[0], state, "before the crash", run_id="run-dead")
    store.update_state(ids[1], S.MOUNTING, "taken")
    store.update_state(ids[1], S.FAILED, "robot")
    runner = FakeRunner()
    manager = make_manager(runner, policy="skip")
    manager.start()
    assert manager.wait_idle(5)
    first = store.get(ids[0])
    assert first.state is S.SKIPPED and runner.calls[ids[0]] == 0
    assert [c.to_state for c in store.history(ids[0])][-2:] == [S.INTERRUPTED, S.SKIPPED]
    assert store.get(ids[1]).state is S.FAILED and store.get(ids[2]).state is S.DONE
    interrupted = [t for t in recorder.transitions if t["to_state"] is S.INTERRUPTED]
    assert [t["reason"] for t in interrupted] == ["interrupted: bes stopped during RUNNING"]
    assert interrupted[0]["run_id"] == "run-dead"
    manager.retry(ids[0])
    manager.start()
    assert manager.wait_idle(5)
    assert store.get(ids[0]).state is S.DONE and runner.calls[ids[0]] == 1
    assert runner.inputs[ids[0]][0]["run_number"] == 2


def test_subscribers_see_entry_queue_and_sample_events(
    store: QueueStore, make_manager: MakeManager
) -> None:
    events: list[dict[str, Any]] = []
    manager = make_manager(FakeRunner())
    unsubscribe = manager.subscribe(events.append)
    manager.add(mx_entry(0))
    manager.start()
    assert manager.wait_idle(5)
    unsubscribe()
    manager.add(mx_entry(1))
    kinds = [(e["type"], e.get("action") or e.get("to_state")) for e in events]
    assert kinds[0] == ("entry", "added")
    assert ("queue", "RUNNING") in kinds and ("sample", "DONE") in kinds
    assert kinds[-1] == ("queue", "IDLE") and len([k for k in kinds if k[0] == "entry"]) == 1


def test_entries_cannot_change_under_a_running_sample(
    store: QueueStore, make_manager: MakeManager
) -> None:
    runner = FakeRunner(steps=1000, step_s=0.002)
    manager = make_manager(runner)
    first, second = fill(store, 2)
    manager.start()
    wait_for(runner.in_step.is_set)
    with pytest.raises(QueueStateError, match=f"cannot remove queue entry {first}: it is RUNNING"):
        manager.remove(first)
    manager.move(second, 1)
    manager.remove(second)
    with pytest.raises(QueueStateError, match="cannot start: queue is RUNNING"):
        manager.start()
    manager.abort()
    assert manager.wait_idle(5)
    assert [e.id for e in store.list()] == [first]
    assert not [e for e in store.list() if e.state in ACTIVE]
