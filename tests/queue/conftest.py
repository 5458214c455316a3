"""Queue fixtures: a queue store in a temporary folder, a fake runner with seeded outcomes, a
fake beamline whose beam and sample changer the test switches, a recorder that keeps rows."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bes.hal.errors import SampleChangerFault
from bes.hal.sample_changer import SampleChangerState
from bes.queue import NewEntry, QueueEntry, QueueManager, QueueStore, RunControl, SampleState

KINDS = ("good", "no_diffraction", "failed")
OUTCOME = {"good": "collected", "no_diffraction": "no_diffraction", "failed": "failed"}


def location(i: int) -> str:
    """The i-th pin (from 0) of 16-pin pucks: ``1:1`` ... ``1:16``, ``2:1`` ..."""
    return f"{i // 16 + 1}:{i % 16 + 1}"


def mx_entry(i: int, **parameters: Any) -> NewEntry:
    return NewEntry(
        location(i),
        "mxpresse",
        {"sessionId": "mx1234-1", "mesh_box_um": 20.0, **parameters},
        sample_lims_id=100 + i,
    )


@dataclass
class FakeResult:
    status: str
    outcome: str
    run_id: str
    error: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)


class FakeRunner:
    """Runs an entry in ``steps`` steps of ``step_s`` with a pause point after each; its
    result follows ``plan[location]`` (``good``, ``no_diffraction``, ``failed``, ``fault``:
    a SampleChangerFault on the first attempt, then good). ``calls`` counts calls per entry."""

    def __init__(
        self,
        plan: dict[str, str] | None = None,
        steps: int = 3,
        step_s: float = 0.0,
        checkpoints: bool = True,
        on_call: Callable[[QueueEntry], None] | None = None,
        changer: FakeChanger | None = None,
    ) -> None:
        self.plan = plan or {}
        self.steps = steps
        self.step_s = step_s
        self.checkpoints = checkpoints
        self.on_call = on_call
        self.changer = changer
        self.calls: Counter[int] = Counter()
        self.inputs: dict[int, list[dict[str, Any]]] = {}
        self.in_step = threading.Event()
        """Set while a run is between its first and last step (tests time commands on it)."""
        self._lock = threading.Lock()

    def __call__(self, entry: QueueEntry, control: RunControl) -> FakeResult:
        with self._lock:
            self.calls[entry.id] += 1
            attempt = self.calls[entry.id]
            self.inputs.setdefault(entry.id, []).append(entry.inputs())
        if self.on_call is not None:
            self.on_call(entry)
        run_id = uuid.uuid4().hex
        control.started(run_id)
        kind = self.plan.get(entry.location, "good")
        if kind == "fault" and attempt == 1:
            if self.changer is not None:
                self.changer.state = SampleChangerState.FAULT
            raise SampleChangerFault("sample_changer", "gripper lost the pin", pin=entry.location)
        if control.aborted:
            return FakeResult("aborted", "aborted", run_id, control.abort_reason)
        control.phase(SampleState.MOUNTED)
        for _ in range(self.steps):
            control.phase(SampleState.RUNNING)
            self.in_step.set()
            aborted = control.wait_aborted(self.step_s) if self.step_s else control.aborted
            if not aborted and self.checkpoints:
                control.checkpoint()
            if aborted or control.aborted:
                self.in_step.clear()
                return FakeResult("aborted", "aborted", run_id, control.abort_reason)
        self.in_step.clear()
        control.phase(SampleState.UNMOUNTING)
        if kind == "failed":
            return FakeResult("failed", "failed", run_id, "node 'collect': DetectorError: stopped")
        outcome = OUTCOME.get(kind, "collected")
        return FakeResult("finished", outcome, run_id, summary={"reason": f"{outcome} (fake)"})


class FakeBeam:
    def __init__(self) -> None:
        self.available = True


class FakeChanger:
    def __init__(self) -> None:
        self.state = SampleChangerState.READY
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1
        self.state = SampleChangerState.READY


class FakeBeamline:
    """What the queue asks of a beamline: beam, sample changer state and reset."""

    def __init__(self) -> None:
        self.beam = FakeBeam()
        self.sample_changer = FakeChanger()


class FakeRecorder:
    """Keeps the rows the queue records (``Recorder.sample_transition`` / ``queue_event``)."""

    def __init__(self) -> None:
        self.transitions: list[dict[str, Any]] = []
        self.queue_events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def sample_transition(self, sample: str, to_state: Any, **fields: Any) -> None:
        with self._lock:
            self.transitions.append({"sample": sample, "to_state": to_state, **fields})

    def queue_event(self, action: str, **fields: Any) -> None:
        with self._lock:
            self.queue_events.append({"action": action, **fields})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QueueStore]:
    with QueueStore.in_dir(tmp_path / "data") as queue_store:
        yield queue_store


@pytest.fixture
def recorder() -> FakeRecorder:
    return FakeRecorder()


@pytest.fixture
def make_manager(
    store: QueueStore, recorder: FakeRecorder
) -> Iterator[Callable[..., QueueManager]]:
    """``make_manager(runner, **options)``: a manager on the test's store and recorder,
    closed at the end of the test."""
    made: list[QueueManager] = []

    def make(runner: Any, **options: Any) -> QueueManager:
        options.setdefault("poll_s", 0.005)
        manager = QueueManager(store, runner, recorder=recorder, **options)  # type: ignore[arg-type]
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close(timeout_s=5)
