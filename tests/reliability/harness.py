"""A night on the embedded station (instant clock, LIMS over HTTP, SQLite workflow database)
with faults injected at chosen points of ``mxpresse``, run until every sample is final, then
accounted for (``accounting``).

Injection points: an engine subscriber (:class:`Triggers`) runs an action, in the engine's
thread, when a given node of a given sample's run starts, e.g. ``FaultPlan.add(pin, kind)``
at ``collect``: the simulator then fires the fault at that node's next device opportunity.
Each phase of ``mxpresse`` is the node that does it (:data:`PHASE_NODE`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bes.engine.events import EngineEvent, NodeStarted, WorkflowStarted
from bes.queue import NewEntry, QueueEntry
from bes.station import Station, open_station
from bes.station.night import Night, NightReport
from bes.station.report import RunReport
from tests.reliability.accounting import (
    FAST_PARAMETERS,
    LimsTally,
    Snapshot,
    check_books,
    check_lims,
    leftovers,
    read_books,
    sheet_of_good_pins,
)
from tests.workflows.helpers import GOOD_PIN

PHASES = ("mount", "mesh", "characterisation", "collection", "unmount")
PHASE_NODE = {
    "mount": "mount",
    "mesh": "mesh_first",
    "characterisation": "characterise",
    "collection": "collect",
    "unmount": "unmount",
}


class Triggers:
    """Engine subscriber: ``at(sample, node, action)`` runs ``action()`` once, when ``node``
    of a run on ``sample`` starts (``sample`` None: any run after the current one)."""

    def __init__(self) -> None:
        self._pending: list[tuple[str | None, str, str | None, Callable[[], None]]] = []
        self._sample: str | None = None
        self._run: str | None = None
        self._lock = threading.Lock()

    def at(self, sample: str | None, node: str, action: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append((sample, node, self._run if sample is None else None, action))

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, WorkflowStarted):
            self._sample, self._run = event.inputs.get("sample"), event.run_id
            return
        if not isinstance(event, NodeStarted):
            return
        with self._lock:
            due = [
                p
                for p in self._pending
                if p[1] == event.node_id
                and (p[0] == self._sample if p[0] is not None else p[2] != event.run_id)
            ]
            for item in due:
                self._pending.remove(item)
        for *_, action in due:
            action()


class LimsOutage:
    """Stops the station's embedded LIMS and starts it again on the same port and tokens."""

    def __init__(self, station: Station) -> None:
        self.station = station
        self.service: Any = station.lims_service
        self.stops = 0

    @property
    def down(self) -> bool:
        return not self.service.running

    def stop(self) -> None:
        if not self.down:
            self.service.stop()
            self.stops += 1

    def start(self) -> None:
        if self.down:
            from lims.service.embedded import start_embedded

            old = self.service
            self.service = start_embedded(
                self.station.data_dir / "lims",
                port=old.port,
                token=old.token,
                reader_token=old.reader_token,
            )

    def close(self) -> None:
        """Stop a LIMS started here (the station stops only the one it started)."""
        if self.service is not self.station.lims_service:
            self.service.stop()


class DatabaseLock:
    """Holds the workflow database's write lock (``BEGIN EXCLUSIVE``) for ``hold_s``, from
    another connection, as a long reader-writer (a backup, ``bes db`` maintenance) would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = 0
        self._threads: list[threading.Thread] = []

    def hold(self, hold_s: float) -> None:
        """Take the lock (returns once taken) and release it ``hold_s`` later."""
        import sqlite3

        taken = threading.Event()

        def run() -> None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                db.execute("BEGIN EXCLUSIVE")
                taken.set()
                threading.Event().wait(hold_s)
                db.execute("COMMIT")
            finally:
                db.close()

        thread = threading.Thread(target=run, name="test-db-lock", daemon=True)
        thread.start()
        self._threads.append(thread)
        assert taken.wait(30), "could not lock the workflow database"
        self.held += 1

    def join(self) -> None:
        for thread in self._threads:
            thread.join(30)


@dataclass
class Sample:
    """One pin of the night: ``phase`` where its fault strikes (None: no fault)."""

    location: str
    phase: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class NightRun:
    """The open station and night of a test, and what it saw."""

    station: Station
    night: Night
    triggers: Triggers
    lims: LimsOutage
    tally: LimsTally
    samples: list[Sample]
    entries: list[QueueEntry] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    reports: list[tuple[int, RunReport]] = field(default_factory=list)
    nights: list[NightReport] = field(default_factory=list)
    db_lock: DatabaseLock | None = None

    @property
    def faults(self) -> Any:
        return self.station.beamline.extras["faults"]

    def run(
        self, operator: Callable[[NightRun, NightReport], bool] | None = None, max_nights: int = 8
    ) -> NightReport:
        """Run the night; while it ends early, ``operator(self, report)`` may act (free the
        disk, ...) and answer True to resume it (``bes night --resume``)."""
        report = self.night.run(self.entries, handle_signals=False)
        self.nights.append(report)
        while not report.complete and operator is not None and len(self.nights) < max_nights:
            if not operator(self, report):
                break
            report = self.night.run(self.entries, handle_signals=False)
            self.nights.append(report)
        return report

    def entry(self, location: str) -> QueueEntry:
        return self.night.queue.store.get(
            next(e.id for e in self.entries if e.location == location)
        )

    def history(self, location: str) -> list[Any]:
        return self.night.queue.store.history(self.entry(location).id)

    def queue_moves(self) -> list[tuple[str, str, str]]:
        return [
            (e["from_state"], e["to_state"], e.get("reason") or "")
            for e in self.events
            if e["type"] == "queue"
        ]


@contextlib.contextmanager
def night_run(
    folder: Path, samples: list[Sample], *, overrides: dict[str, Any] | None = None
) -> Iterator[NightRun]:
    """A station and a night over ``samples`` (good pins), the faults of the simulator
    firing once (``FaultPlan(once=True)``). On leaving: the night and station are closed,
    then everything is accounted for and the test fails on any problem (records lost or
    doubled, threads or processes left behind)."""
    before = Snapshot()
    sheet = sheet_of_good_pins(folder / "world.json", [s.location for s in samples], GOOD_PIN)
    station = open_station(
        data_dir=folder / "data",
        clock="instant",
        sample_sheet=sheet,
        overrides={"faults": {"once": True}, **(overrides or {})},
    )
    problems: list[str] = []
    run: NightRun | None = None
    lims = LimsOutage(station)
    try:
        assert station.lims is not None
        tally = LimsTally(station.lims)
        triggers = Triggers()
        night = Night(station, poll_s=0.02, engine_subscribers=[triggers])
        try:
            run = NightRun(station, night, triggers, lims, tally, samples)
            run.db_lock = DatabaseLock(station.data_dir / "workflows.db")
            night.manager.subscribe(run.events.append)
            night.queue.on_report = lambda entry, report: run.reports.append((entry.id, report))
            run.entries = night.add(
                [
                    NewEntry(s.location, "mxpresse", {**FAST_PARAMETERS, **s.parameters})
                    for s in samples
                ]
            )
            yield run
        finally:
            night.close()
        changer = station.beamline.sample_changer
        if changer.mounted is not None:
            problems.append(f"pin {changer.mounted} left on the goniometer")
        if str(changer.state) != "READY":
            problems.append(f"sample changer left {changer.state}")
        lims.start()  # a LIMS still down at the end comes back: the outbox must replay
        if not tally.settle(30.0):
            problems.append(f"LIMS outbox not replayed: {station.lims.pending()} writes pending")
        assert station.recorder.flush(60.0), "the workflow database writer did not flush"
        books = read_books(station.data_dir)
        sent = [e for e in run.events if e["type"] != "sample"] if run else None
        problems += check_books(books, queue_events=len(sent) if sent is not None else None)
        problems += check_lims(tally, books, samples=len(samples))
        dropped = station.recorder.stats.dropped
        if dropped:
            problems.append(f"workflow database writer dropped {dropped} rows")
    finally:
        station.close()
        lims.close()
        if run is not None and run.db_lock is not None:
            run.db_lock.join()
    problems += [f"left behind: {item}" for item in leftovers(before)]
    assert not problems, "\n".join(problems)
