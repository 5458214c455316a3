"""A night: samples queued on the station's queue and run unattended, one after the other.

``plan_demo(n)`` or ``plan_sheet(sheet)`` give the entries, :class:`Night` queues and runs
them (or, with ``resume``, continues the unfinished entries a stopped or killed night left
in the queue file) and returns a :class:`NightReport`: every entry in its final state, the
beamline and wall time, samples per beamline hour.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bes.hal.sample_changer import Location
from bes.queue import NewEntry, QueueEntry, SampleState
from bes.queue.states import ACTIVE, FINAL
from bes.station.queue_runner import StationQueue

if TYPE_CHECKING:
    from types import FrameType

    from bes.engine.events import Subscriber
    from bes.queue.events import Subscriber as QueueSubscriber
    from bes.queue.store import RecoveryPolicy
    from bes.station.report import RunReport
    from bes.station.station import Station
    from lims.sheet import SampleSheet

logger = logging.getLogger(__name__)

DEFAULT_RECIPE = "mxpresse"
DEFAULT_DEMO_SAMPLES = 24
"""``bes night`` without a sheet: one night of the first 24 pins of the dewar."""


class NightError(ValueError):
    """The night cannot start as asked (the message says why and what to do)."""


# -- what to run -------------------------------------------------------------------------------


def plan_demo(
    count: int,
    *,
    recipe: str = DEFAULT_RECIPE,
    parameters: Mapping[str, Any] | None = None,
    pucks: int = 24,
    pins_per_puck: int = 16,
) -> list[NewEntry]:
    """The first ``count`` pins of the dewar, puck by puck (``1:1``, ``1:2`` ...)."""
    capacity = pucks * pins_per_puck
    common = dict(parameters or {})
    if not 1 <= count <= capacity:
        raise NightError(f"--demo takes 1 to {capacity} samples (the dewar), got {count}")
    return [
        NewEntry(f"{i // pins_per_puck + 1}:{i % pins_per_puck + 1}", recipe, dict(common))
        for i in range(count)
    ]


def plan_sheet(
    sheet: SampleSheet,
    sample_ids: Mapping[str, int] | None = None,
    *,
    recipe: str = DEFAULT_RECIPE,
    parameters: Mapping[str, Any] | None = None,
) -> list[NewEntry]:
    """One entry per sample of a LIMS sample sheet (``lims.sheet``), in sheet order; the
    proposal and visit of the sheet; ``sample_ids``: location -> blSampleId once loaded."""
    proposal = sheet.proposal.proposalCode + sheet.proposal.proposalNumber
    common = {
        "proposal": proposal,
        "visit_number": sheet.session.visit_number,
        **dict(parameters or {}),
    }
    entries = []
    for container in sheet.containers:
        puck = container.record.sampleChangerLocation
        if puck is None:
            raise NightError(
                f"container {container.record.code!r} has no sampleChangerLocation: "
                "the queue cannot tell where its pins are"
            )
        for sample in container.samples:
            location = f"{puck}:{sample.record.location}"
            try:
                Location.parse(location)
            except ValueError as exc:
                raise NightError(f"sample {sample.record.name!r}: {exc}") from None
            lims_id = (sample_ids or {}).get(location)
            entries.append(NewEntry(location, recipe, dict(common), sample_lims_id=lims_id))
    if not entries:
        raise NightError("the sample sheet holds no samples")
    return entries


# -- how it went -------------------------------------------------------------------------------


@dataclass
class NightReport:
    """A night as it ended."""

    entries: list[QueueEntry]
    """The night's entries as the queue holds them now (final unless the night was stopped)."""
    reports: dict[int, RunReport]
    """The last run report of each entry run by this process."""
    started: dt.datetime
    wall_s: float
    beamline_s: float
    queue_state: str
    queue_reason: str | None
    interrupted: list[QueueEntry] = field(default_factory=list)
    """Entries found mid-sample from an earlier process (``--resume``)."""

    @property
    def unfinished(self) -> list[QueueEntry]:
        return [e for e in self.entries if e.state not in FINAL]

    @property
    def complete(self) -> bool:
        """Every entry reached a final state."""
        return not self.unfinished

    def counts(self) -> dict[str, int]:
        """Entries per state, then per outcome of the DONE ones (``DONE collected``...)."""
        counter: collections.Counter[str] = collections.Counter()
        for entry in self.entries:
            if entry.state is SampleState.DONE:
                counter[f"DONE {entry.outcome or '?'}"] += 1
            else:
                counter[entry.state.name] += 1
        return dict(sorted(counter.items()))

    @property
    def samples_run(self) -> int:
        """Entries that ended DONE or FAILED in this process (attempts that used the beam)."""
        return sum(1 for e in self.entries if e.id in self.reports)

    @property
    def samples_per_beamline_hour(self) -> float | None:
        n = self.samples_run
        return n / (self.beamline_s / 3600.0) if n and self.beamline_s > 0 else None

    @property
    def samples_per_wall_second(self) -> float | None:
        n = self.samples_run
        return n / self.wall_s if n and self.wall_s > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started.isoformat(timespec="seconds"),
            "samples": len(self.entries),
            "complete": self.complete,
            "queue_state": self.queue_state,
            "queue_reason": self.queue_reason,
            "counts": self.counts(),
            "wall_s": round(self.wall_s, 3),
            "beamline_s": round(self.beamline_s, 3),
            "samples_per_beamline_hour": self.samples_per_beamline_hour,
            "samples_per_wall_second": self.samples_per_wall_second,
            "entries": [e.to_json() for e in self.entries],
        }


# -- running it --------------------------------------------------------------------------------


class Night:
    """The station's queue run unattended until every entry of the night is final (or the
    night is stopped: ``stop()``, ``abort()``, a signal, a fault that needs a person)."""

    def __init__(
        self,
        station: Station,
        *,
        policy: RecoveryPolicy = "requeue",
        recover_sample_changer: bool = True,
        prefetch: bool = True,
        poll_s: float = 1.0,
        engine_subscribers: Iterable[Subscriber] = (),
        queue_subscribers: Iterable[QueueSubscriber] = (),
        on_report: Callable[[QueueEntry, RunReport], None] | None = None,
    ) -> None:
        self.station = station
        self.queue = StationQueue(
            station,
            policy=policy,
            recover_sample_changer=recover_sample_changer,
            prefetch=prefetch,
            poll_s=poll_s,
            subscribers=engine_subscribers,
            on_report=on_report,
        )
        self._queue_subscribers = list(queue_subscribers)

    @property
    def manager(self) -> Any:
        return self.queue.manager

    def unfinished(self) -> list[QueueEntry]:
        """Entries an earlier night left: waiting, or found mid-sample."""
        return [e for e in self.queue.store.list() if e.state not in FINAL]

    def add(self, entries: Sequence[NewEntry]) -> list[QueueEntry]:
        """Check every entry first, then queue them all (nothing is queued when one is bad)."""
        for number, entry in enumerate(entries, 1):
            try:
                self.queue.store.validate(entry)
            except ValueError as exc:
                raise NightError(f"sample {number} ({entry.location}): {exc}") from None
        return [self.manager.add(entry) for entry in entries]

    def run(
        self, entries: Sequence[QueueEntry] | None = None, *, handle_signals: bool = True
    ) -> NightReport:
        """Run the queue until it is idle; the report covers ``entries`` (default: every
        unfinished entry when the night starts, including those a crash left mid-sample)."""
        ids = [e.id for e in (entries if entries is not None else self.unfinished())]
        interrupted_before = {e.id for e in self.unfinished() if e.state in ACTIVE}
        clock = self.station.beamline.clock
        started = dt.datetime.now()
        wall0, beamline0 = time.monotonic(), clock.now()
        unsubscribe = [self.manager.subscribe(s) for s in self._queue_subscribers]
        guard = _signals(self) if handle_signals else contextlib.nullcontext()
        try:
            with guard:
                self.manager.start("night started")
                self._wait()
        finally:
            for undo in unsubscribe:
                undo()
        store = self.queue.store
        final = [store.get(i) for i in ids]
        status = self.manager.status()
        return NightReport(
            entries=final,
            reports={i: r for i, r in self.queue.reports.items() if i in set(ids)},
            started=started,
            wall_s=time.monotonic() - wall0,
            beamline_s=clock.now() - beamline0,
            queue_state=status["state"],
            queue_reason=status["reason"],
            interrupted=[e for e in final if e.id in interrupted_before],
        )

    def _wait(self) -> None:
        manager = self.manager
        while not manager.wait_idle(0.2):
            if manager.waiting_for_person:
                reason = manager.status()["reason"]
                logger.error("the queue is in FAULT and needs a person: %s", reason)
                with contextlib.suppress(Exception):
                    manager.stop(f"night ended: FAULT needs a person ({reason})")

    def stop(self, reason: str = "stop asked: ending after the current sample") -> None:
        with contextlib.suppress(Exception):
            self.manager.stop(reason)

    def abort(self, reason: str = "abort asked") -> None:
        with contextlib.suppress(Exception):
            self.manager.abort(reason)

    def close(self) -> None:
        self.queue.close()

    def __enter__(self) -> Night:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _signals(night: Night) -> Iterator[None]:
    """Ctrl-C: first stop after the current sample, then abort it; SIGTERM: abort. Main
    thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = [0]

    def on_int(signum: int, frame: FrameType | None) -> None:
        presses[0] += 1
        if presses[0] == 1:
            logger.warning("Ctrl-C: the night stops after the current sample (again: abort it)")
            night.stop("interrupted (Ctrl-C): stop after the current sample")
        elif presses[0] == 2:
            night.abort("interrupted (Ctrl-C twice)")
        else:
            raise KeyboardInterrupt

    def on_term(signum: int, frame: FrameType | None) -> None:
        night.abort(f"signal {signal.Signals(signum).name}")

    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, on_int),
        signal.SIGTERM: signal.signal(signal.SIGTERM, on_term),
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
