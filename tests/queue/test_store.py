"""The persisted queue: add, move, remove and their validation; what survives a reopen; what
a crash (or ``kill -9``) leaves and how the next start recovers it."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bes.queue import NewEntry, QueueStateError, QueueStore, SampleState
from bes.queue.states import ACTIVE, SAMPLE_TRANSITIONS, declared_moves
from tests.queue.conftest import mx_entry

S = SampleState


def test_entries_are_added_in_order_and_validated(store: QueueStore) -> None:
    ids = [store.add(mx_entry(i)) for i in range(3)]
    entries = store.list()
    assert [e.id for e in entries] == ids
    assert [e.position for e in entries] == [1, 2, 3]
    first = store.get(ids[0])
    assert (first.location, first.recipe, first.state, first.attempts) == (
        "1:1",
        "mxpresse",
        S.QUEUED,
        0,
    )
    assert first.parameters["run_number"] == 1  # explicit: a re-queue moves to the next
    assert first.inputs()["sample"] == "1:1" and first.inputs()["sample_lims_id"] == 100
    assert store.next_queued() == first
    assert [c.to_state for c in store.history(ids[0])] == [S.QUEUED]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (NewEntry("1-3", "mxpresse"), "bad sample location '1-3'; expected 'puck:pin'"),
        (NewEntry("0:3", "mxpresse"), "puck and pin count from 1"),
        (NewEntry("1:3", "mxpresse2"), "unknown workflow 'mxpresse2'; known: .*mxpresse"),
        (NewEntry("1:3", "mxpresse", {"mesh_box_um": -5}), "bad parameter mesh_box_um=-5"),
        (NewEntry("1:3", "mxpresse", {"mesh_boxes": 5}), "unknown parameter 'mesh_boxes'"),
        (NewEntry("1:3", "mxpresse", {"sample": "2:2"}), "parameter.* sample not allowed"),
        (NewEntry("1:3", "mxpresse", {"x": object()}), "parameters must be JSON values"),
        (NewEntry("1:3", "mxpresse", sample_lims_id=0), "bad sample_lims_id 0"),
        (
            NewEntry("1:3", "mxpresse", {"mesh_rows": 60, "mesh_cols": 60}),
            "3600 points exceed mesh_max_points",
        ),
        (NewEntry("1:3", "beamline_check", {"exposure_s": 1}), "it takes: .*step_deg"),
    ],
)
def test_a_bad_entry_is_refused_with_the_reason_and_nothing_is_stored(
    store: QueueStore, entry: NewEntry, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.add(entry)
    assert store.list() == []


def test_move_and_remove_keep_positions_contiguous(store: QueueStore) -> None:
    a, b, c, d = (store.add(mx_entry(i)) for i in range(4))
    store.move(d, 1)
    assert [e.id for e in store.list()] == [d, a, b, c]
    store.move(d, 99)  # past the end: last
    assert [e.id for e in store.list()] == [a, b, c, d]
    store.remove(b)
    assert [(e.id, e.position) for e in store.list()] == [(a, 1), (c, 2), (d, 3)]
    e = store.add(mx_entry(5), position=2)
    assert [x.id for x in store.list()] == [a, e, c, d]
    assert e > d  # ids are never reused
    with pytest.raises(ValueError, match="positions count from 1"):
        store.move(a, 0)
    with pytest.raises(KeyError, match="no queue entry 999"):
        store.move(999, 1)


def test_an_entry_being_worked_on_cannot_be_removed(store: QueueStore) -> None:
    entry_id = store.add(mx_entry(0))
    store.update_state(entry_id, S.MOUNTING, "taken")
    with pytest.raises(
        QueueStateError, match=f"cannot remove queue entry {entry_id}: it is MOUNTING"
    ):
        store.remove(entry_id)
    store.update_state(entry_id, S.FAILED, "robot")
    store.remove(entry_id)
    assert store.list() == [] and store.history(entry_id) == []


def test_update_state_follows_the_sample_table(store: QueueStore) -> None:
    entry_id = store.add(mx_entry(0))
    with pytest.raises(QueueStateError, match="from QUEUED to DONE"):
        store.update_state(entry_id, S.DONE, "too soon")
    for state in (S.MOUNTING, S.MOUNTED, S.RUNNING, S.UNMOUNTING):
        store.update_state(entry_id, state, state.name.lower(), run_id="run-1")
    done = store.update_state(entry_id, S.DONE, "collected", outcome="collected")
    assert (done.state, done.outcome, done.run_id, done.attempts) == (
        S.DONE,
        "collected",
        "run-1",
        1,
    )
    assert done.ended_time is not None and done.started_time is not None
    assert [c.to_state for c in store.history(entry_id)] == [
        S.QUEUED,
        S.MOUNTING,
        S.MOUNTED,
        S.RUNNING,
        S.UNMOUNTING,
        S.DONE,
    ]


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    with QueueStore.in_dir(tmp_path) as first:
        a = first.add(mx_entry(0))
        b = first.add(mx_entry(1, prefix="lyso"))
        first.move(b, 1)
        first.update_state(a, S.MOUNTING, "taken")
        first.update_state(a, S.FAILED, "robot")
    assert (tmp_path / "queue.sqlite").is_file()
    with QueueStore.in_dir(tmp_path) as second:
        assert [(e.id, e.state) for e in second.list()] == [(b, S.QUEUED), (a, S.FAILED)]
        assert second.get(b).parameters["prefix"] == "lyso"
        assert [c.to_state for c in second.history(a)] == [S.QUEUED, S.MOUNTING, S.FAILED]
        assert second.counts()[S.FAILED] == 1 and sum(second.counts().values()) == 2


def _crashed_store(path: Path) -> dict[SampleState, int]:
    """A queue as a crash leaves it: one entry in each active state, one QUEUED, one DONE
    (states written directly, as the dead process had committed them)."""
    ids = {}
    with QueueStore(path) as store:
        for i, state in enumerate(
            [S.MOUNTING, S.MOUNTED, S.RUNNING, S.UNMOUNTING, S.QUEUED, S.DONE]
        ):
            ids[state] = store.add(mx_entry(i))
    db = sqlite3.connect(path)
    with db:
        for state, entry_id in ids.items():
            if state is not S.QUEUED:
                db.execute(
                    "UPDATE entries SET state = ?, attempts = 1, run_id = ? WHERE id = ?",
                    (state.name, f"run-{entry_id}", entry_id),
                )
    db.close()
    return ids


@pytest.mark.parametrize("policy", ["requeue", "skip"])
def test_recover_marks_interrupted_entries_and_applies_the_policy(
    tmp_path: Path, policy: str
) -> None:
    path = tmp_path / "queue.sqlite"
    ids = _crashed_store(path)
    seen = []
    with QueueStore(path) as store:
        recovered = store.recover(policy, on_change=lambda e, c: seen.append((e.id, c.to_state)))  # type: ignore[arg-type]
        assert sorted(e.id for e in recovered) == sorted(ids[s] for s in ACTIVE)
        final = S.QUEUED if policy == "requeue" else S.SKIPPED
        for state in ACTIVE:
            entry = store.get(ids[state])
            history = store.history(entry.id)
            assert entry.state is final
            assert history[-2].to_state is S.INTERRUPTED
            assert history[-2].reason == f"interrupted: bes stopped during {state.name}"
            assert history[-2].run_id == f"run-{entry.id}"
            assert (ids[state], S.INTERRUPTED) in seen and (ids[state], final) in seen
            # never collected twice silently: a re-run writes a new run number
            assert entry.parameters["run_number"] == (2 if policy == "requeue" else 1)
        assert store.get(ids[S.QUEUED]).state is S.QUEUED
        assert store.get(ids[S.DONE]).state is S.DONE
        assert store.recover(policy) == []  # nothing left to recover
        if policy == "requeue":
            assert store.next_queued().id == ids[S.MOUNTING]  # the first unfinished goes first


def test_recover_refuses_an_unknown_policy(store: QueueStore) -> None:
    with pytest.raises(ValueError, match="unknown recovery policy 'retry'; known: requeue, skip"):
        store.recover("retry")  # type: ignore[arg-type]


CHURN = """
import sys
from bes.queue.store import QueueStore
from bes.queue.entries import NewEntry
from bes.queue.states import SampleState as S
store = QueueStore(sys.argv[1], validate=lambda entry: entry)
ids = [store.add(NewEntry(f"1:{i + 1}", "mxpresse", {"run_number": 1})) for i in range(8)]
print("ready", flush=True)
path = [S.MOUNTING, S.MOUNTED, S.RUNNING, S.UNMOUNTING, S.FAILED, S.QUEUED]
n = 0
while True:
    for entry_id in ids:
        store.update_state(entry_id, path[n % len(path)], f"step {n}", run_id=f"run-{n}")
    n += 1
"""


def test_kill_9_at_any_moment_leaves_a_consistent_queue(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    moves = declared_moves(SAMPLE_TRANSITIONS)
    for delay_s in (0.05, 0.13, 0.21):
        path.unlink(missing_ok=True)
        child = subprocess.Popen(
            [sys.executable, "-c", CHURN, str(path)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        time.sleep(delay_s)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        with QueueStore(path, validate=lambda entry: entry) as store:
            assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            entries = store.list()
            assert len(entries) == 8
            assert sum(len(store.history(e.id)) for e in entries) > 8  # it was killed mid-churn
            for entry in entries:
                history = store.history(entry.id)
                assert history[-1].to_state is entry.state  # state and history committed together
                assert all(
                    (a.to_state, b.to_state) in moves for a, b in itertools.pairwise(history)
                )
            store.recover("requeue")
            assert not [e for e in store.list() if e.state in ACTIVE]
