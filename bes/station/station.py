"""``open_station``: the beamline, the workflow database (with its recorder), the LIMS and
the data directory that ``bes run`` and ``bes night`` work with, opened together and closed
together.

Embedded default: the simulated beamline, ``DATA_DIR/workflows.db`` and a LIMS served from
this process on a free loopback port (``DATA_DIR/lims``: SQLite file, tokens, outbox), so a
fresh checkout runs a whole experiment with nothing else started. At a facility the same
station points at PostgreSQL (``db_url``) and the facility's LIMS (``lims_url``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bes.config import SIMULATED_BEAMLINE
from bes.engine.context import Limits, RunContext, install_signal_abort
from bes.hal import Beamline

if TYPE_CHECKING:
    from bes.engine.events import Subscriber
    from bes.engine.recipes import Recipe
    from bes.record.database import Database
    from bes.record.recorder import Recorder
    from bes.station.lims_embedded import RunningLims
    from bes.station.report import RunReport
    from lims.client import LimsClient

CLOCK_MODES = ("instant", "scaled", "real")
DEFAULT_DATA_DIR = Path("bes-data")
LIMS_FOLDER = "lims"
"""The embedded LIMS's folder in the data directory (as ``bes lims serve --data-dir``)."""
EMBEDDED_OUTBOX = "outbox.sqlite"
"""The outbox of the embedded LIMS's client, in ``DATA_DIR/lims`` (``bes lims flush``)."""
REMOTE_OUTBOX = "lims-outbox.sqlite"
"""The outbox of the client of a LIMS given by URL, in the data directory."""


@dataclass
class Station:
    """An open station. Use it as a context manager, or call :meth:`close`."""

    beamline: Beamline
    data_dir: Path
    database: Database
    recorder: Recorder
    lims: LimsClient | None = None
    """The LIMS client; None with ``no_lims``."""
    lims_service: RunningLims | None = None
    """The embedded LIMS when the station serves its own; None for a LIMS given by URL."""
    lims_token: str | None = field(default=None, repr=False)
    """The writer token of the LIMS (for a second client, e.g. loading a sample sheet)."""
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    def context(self, **limits: Any) -> RunContext:
        """A new run context (own abort flag and state) with the station's beamline,
        recorder and LIMS client; ``limits``: :class:`~bes.engine.Limits` fields."""
        return RunContext(
            beamline=self.beamline,
            recorder=self.recorder,
            lims=self.lims,
            limits=Limits(**limits),
        )

    @property
    def lims_url(self) -> str | None:
        return self.lims.url if self.lims is not None else None

    def lims_counts(self) -> dict[str, int] | None:
        """Rows per LIMS table, or None without a LIMS or when it does not answer."""
        if self.lims is None:
            return None
        from lims.client import LimsError

        if self.lims.down or not self.lims.health():  # one try: no retries when it is down
            return None
        try:
            return self.lims.counts()
        except LimsError:
            return None

    def describe(self) -> dict[str, str]:
        """What is where, one line each (the ``bes run`` header)."""
        clock = getattr(self.beamline.clock, "mode", None)
        if self.lims is None:
            lims = "none (--no-lims)"
        elif self.lims_service is not None:
            lims = f"embedded, {self.lims.url} (data {self.data_dir / LIMS_FOLDER})"
        else:
            lims = self.lims.url
        return {
            "beamline": f"{self.beamline.name}" + (f" (clock {clock})" if clock else ""),
            "data": str(self.data_dir),
            "workflow database": self.database.display_url,
            "LIMS": lims,
        }

    def run(
        self,
        recipe: str | Path | Recipe,
        inputs: Mapping[str, Any],
        *,
        subscribers: Iterable[Subscriber] = (),
        labels: Mapping[str, Any] | None = None,
        handle_signals: bool = True,
        context: RunContext | None = None,
        run_id: str | None = None,
        **limits: Any,
    ) -> RunReport:
        """Run ``recipe`` once with ``inputs`` in a new context and report it: the run's
        summary, the LIMS records it added, its id in the workflow database (committed when
        this returns). ``labels``: the recorder's run labels (``session``, ``sample`` ...);
        ``handle_signals``: Ctrl-C / SIGTERM abort the run (main thread only). ``context``: a
        context made by :meth:`context` (so the caller holds its abort flag and pause point;
        ``limits`` are then ignored); ``run_id``: the run's id (a new one by default)."""
        from bes.engine.runner import run_workflow
        from bes.station.report import RunReport, summary_of

        if context is None:
            context = self.context(**limits)
        run_id = run_id or uuid.uuid4().hex
        if labels:
            self.recorder.label_run(run_id, **labels)
        before = self.lims_counts()
        start_s = self.beamline.clock.now()
        guard = install_signal_abort(context) if handle_signals else contextlib.nullcontext()
        with guard:
            result = run_workflow(recipe, inputs, context, subscribers=subscribers, run_id=run_id)
        beamline_s = self.beamline.clock.now() - start_s
        if result.status == "aborted":
            _close_lims_records(context, result.abort_reason or context.abort_reason)
        self.recorder.flush()
        after = self.lims_counts() if before is not None else None
        records = (
            {
                name: count - before.get(name, 0)
                for name, count in after.items()
                if count != before.get(name, 0)
            }
            if before is not None and after is not None
            else None
        )
        error = str(result.error) if result.error is not None else None
        if result.status == "aborted":
            error = result.abort_reason or context.abort_reason or "abort requested"
        sample = inputs.get("sample")
        return RunReport(
            recipe=result.workflow,
            sample=str(sample) if sample is not None else None,
            run_id=result.run_id,
            status=result.status,
            detail=result.detail,
            summary=summary_of(result, context, beamline_s),
            database=self.database.display_url,
            error=error,
            lims_records=records,
            lims_pending=self.lims.pending() if self.lims is not None else 0,
            outputs=dict(result.outputs or {}),
        )

    def close(self) -> None:
        """Write what the recorder holds, close the LIMS client (its outbox file stays for
        ``bes lims flush``), stop the embedded LIMS. Safe to call twice."""
        self._stack.close()

    def __enter__(self) -> Station:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_station(
    *,
    beamline_config: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    data_dir: Path = DEFAULT_DATA_DIR,
    db_url: str | None = None,
    lims_url: str | None = None,
    lims_token: str | None = None,
    no_lims: bool = False,
    clock: str | None = None,
    sample_sheet: Path | None = None,
    seed: int | None = None,
) -> Station:
    """Open the beamline, the workflow database and the LIMS.

    ``beamline_config``: TOML file (default: the simulated beamline); ``overrides``:
    component -> {key: value} on top of it; ``clock``: ``instant``, ``scaled`` or ``real``
    (the config's mode otherwise); ``sample_sheet`` and ``seed``: the simulated world's pins
    and seed. ``db_url``: default ``sqlite:///DATA_DIR/workflows.db`` (created or upgraded).
    ``lims_url``: the LIMS to write to (token: ``lims_token``, else the writer token of
    ``DATA_DIR/lims/tokens.json``; outbox ``DATA_DIR/lims-outbox.sqlite``); without it the
    station serves its own LIMS from ``DATA_DIR/lims``; ``no_lims``: write to no LIMS.

    Raises ``BeamlineConfigError`` / ``ValueError`` for a bad config, sheet or option,
    ``DatabaseError`` for an unusable database, ``RuntimeError`` when the LIMS cannot start.
    Whatever was opened before the failure is closed again.
    """
    if clock is not None and clock not in CLOCK_MODES:
        raise ValueError(f"unknown clock mode {clock!r}; known: {', '.join(CLOCK_MODES)}")
    if no_lims and lims_url is not None:
        raise ValueError("give either a LIMS url or no_lims, not both")
    if sample_sheet is not None and not Path(sample_sheet).is_file():
        raise ValueError(f"sample sheet {sample_sheet} does not exist")
    merged = _merge(
        overrides,
        {"clock": {"mode": clock}} if clock else None,
        {"world": {"sheet": str(sample_sheet)}} if sample_sheet is not None else None,
        {"world": {"seed": seed}} if seed is not None else None,
    )
    beamline = Beamline.from_config(beamline_config or SIMULATED_BEAMLINE, overrides=merged or None)

    from bes.record.database import default_url, open_database
    from bes.record.recorder import Recorder

    data_dir = Path(data_dir)
    stack = contextlib.ExitStack()
    with stack:  # closes what was opened if anything below fails
        data_dir.mkdir(parents=True, exist_ok=True)
        database = open_database(db_url or default_url(data_dir), upgrade=True)
        stack.callback(database.dispose)
        recorder = Recorder(database, beamline=beamline)
        stack.callback(recorder.close)
        client, service, token = _open_lims(stack, data_dir, lims_url, lims_token, no_lims)
        station = Station(
            beamline=beamline,
            data_dir=data_dir,
            database=database,
            recorder=recorder,
            lims=client,
            lims_service=service,
            lims_token=token,
            _stack=stack.pop_all(),
        )
    return station


def _open_lims(
    stack: contextlib.ExitStack,
    data_dir: Path,
    lims_url: str | None,
    lims_token: str | None,
    no_lims: bool,
) -> tuple[LimsClient | None, RunningLims | None, str | None]:
    if no_lims:
        return None, None, None
    from lims.client import LimsClient

    if lims_url is not None:
        token = lims_token or _token_file_writer(data_dir / LIMS_FOLDER)
        client = LimsClient(lims_url, token, outbox=data_dir / REMOTE_OUTBOX)
        stack.callback(client.close)
        return client, None, token

    from bes.station.lims_embedded import start_station_lims

    folder = data_dir / LIMS_FOLDER
    service = start_station_lims(folder)
    stack.callback(service.stop)
    client = LimsClient(service.url, service.token, outbox=folder / EMBEDDED_OUTBOX)
    stack.callback(_close_client, client)
    return client, service, service.token


def _close_lims_records(context: RunContext, reason: str | None) -> None:
    """An aborted MX run runs no fault handler: end its LIMS workflow and sample status here,
    so that the LIMS does not show it running for ever."""
    from bes.tasks.mx_state import STATE_KEY, SampleRun

    run = context.state.get(STATE_KEY)
    if isinstance(run, SampleRun):
        text = f"aborted: {reason or 'abort requested'}"
        run.lims.sample_status("aborted", text)
        run.lims.end_workflow("Error", text)


def _close_client(client: LimsClient) -> None:
    """Deliver what waits in the outbox while the embedded LIMS still runs, then close."""
    from lims.client import LimsError

    if client.pending():
        with contextlib.suppress(LimsError):
            client.flush()
    client.close()


def _token_file_writer(folder: Path) -> str:
    from lims.tokens import TOKENS_FILE, read_token

    return read_token(folder / TOKENS_FILE)


def _merge(*layers: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Component overrides, later layers winning key by key."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for component, values in (layer or {}).items():
            merged.setdefault(component, {}).update(values)
    return merged
