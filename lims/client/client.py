"""``LimsClient``: typed writes of ISPyB records over HTTP, safe against a LIMS that is down.

A write is sent at once when nothing waits before it; the LIMS answers and the write's
handle gets its id. When the LIMS does not answer (connection refused, timeout, 5xx after
``retries`` tries with backoff), the write goes to the durable outbox
(``lims.client.outbox``), the call returns a handle without id and the workflow goes on.
From then on writes queue behind it, in order, and a background thread replays the outbox
when the LIMS is back (``bes lims flush`` does the same from the command line). Each POST
carries an ``Idempotency-Key``, so a retried POST whose first answer was lost never creates
a second record. A write the LIMS refuses (4xx) raises :class:`LimsRejected` when it is sent
at once, and is kept as ``failed`` in the outbox (with the reason) when it is replayed. A
refused token raises :class:`LimsAuthError` and keeps the write queued for a flush with the
right token; the error holds the write's handle, so the records that depend on it queue
behind it, linked by its local id, and a flush stores the whole tree.

Without an outbox (``outbox=None``) writes raise :class:`LimsUnavailable` when the LIMS
cannot be reached (the sample-sheet loader works so).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from pydantic import BaseModel

from lims.client import records as r
from lims.client.handles import Handle, Ref, Visit, new_key
from lims.client.outbox import Entry, LocalRef, Outbox, Write

log = logging.getLogger(__name__)

BULK_CHUNK = 5000
"""Image quality indicators per request (the service takes up to 10,000)."""


class LimsError(Exception):
    """Base of the client's errors."""


class LimsUnavailable(LimsError):
    """The LIMS could not be reached (or answered 5xx) after every retry."""

    def __init__(self, request: str, url: str, reason: str) -> None:
        super().__init__(f"{request}: the LIMS at {url} is unreachable: {reason}")
        self.reason = reason


class LimsRejected(LimsError):
    """The LIMS refused a request (4xx); ``detail`` is its explanation."""

    def __init__(self, status: int, detail: str, request: str) -> None:
        super().__init__(f"{request}: the LIMS answered {status}: {detail}")
        self.status = status
        self.detail = detail


class LimsAuthError(LimsRejected):
    """401 or 403: the token is wrong or may only read.

    A write refused so, made through a client with an outbox, stays queued there (``kept``)
    for a flush with the right token, and so does every write after it. ``handle`` is then
    the handle of the record the refused call creates (None for an update): give it as the
    parent of the records that depend on it, as while the LIMS is down, and they queue too,
    linked to it by its local id."""

    kept: bool = False
    handle: Handle | None = None


@dataclass(frozen=True)
class Page:
    """A page of a read: ``total`` records match; ``results`` from ``skip``, at most ``limit``."""

    total: int
    results: list[dict[str, Any]]
    skip: int
    limit: int


@dataclass(frozen=True)
class FlushReport:
    delivered: int
    pending: int
    failed: int


class _Unreachable(Exception):
    pass


class _Unresolvable(Exception):
    pass


class LimsClient:
    """Writes and reads of an ISPyB-like LIMS (``lims.service``) at ``url``.

    ``outbox``: path of the outbox file (None: no outbox, writes raise when the LIMS is
    down). ``retries`` and ``backoff_s``: extra tries of one request on a connection error or
    5xx, waiting ``backoff_s``, 2x, 4x .. in between. ``replay_interval_s`` .. ``replay_max_s``:
    how often a LIMS that is down is tried again (doubling). ``auto_replay``: a background
    thread replays the outbox; without it, the next write after the interval tries.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        outbox: str | Path | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        replay_interval_s: float = 1.0,
        replay_max_s: float = 30.0,
        auto_replay: bool = True,
        outbox_synchronous: str = "NORMAL",
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"LIMS url {url!r} must start with http:// or https://")
        if retries < 0 or backoff_s < 0 or replay_interval_s <= 0:
            raise ValueError("retries and backoff_s must be >= 0 and replay_interval_s > 0")
        self.url = url.rstrip("/")
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.retries = retries
        self.backoff_s = backoff_s
        self.replay_interval_s = replay_interval_s
        self.replay_max_s = max(replay_max_s, replay_interval_s)
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"Bearer {token}"
        self._http.headers["User-Agent"] = "mxbes-lims-client"
        self._outbox = Outbox(outbox, synchronous=outbox_synchronous) if outbox else None
        self._flush_lock = threading.RLock()
        self._waiting: dict[str, Handle] = {}  # handles whose id the outbox will bring
        self._refused: dict[int, LimsRejected] = {}  # outbox seq -> why the LIMS refused it
        self._closing = threading.Event()
        self._down = False
        self._retry_delay_s = replay_interval_s
        self._retry_at = 0.0
        self.last_error: str | None = None
        self._replayer: threading.Thread | None = None
        if self._outbox is not None and auto_replay:
            self._replayer = threading.Thread(
                target=self._replay_loop, name="lims-outbox-replay", daemon=True
            )
            self._replayer.start()

    # -- proposal, session, samples -------------------------------------------------------

    def add_proposal(self, record: r.Proposal) -> Handle:
        return self._create("Proposal", "proposalId", "/proposals", (), record)

    def add_session(self, proposal: str, record: r.BLSession) -> Handle:
        path = f"/proposals/{_proposal(proposal)}/sessions"
        return self._create("BLSession", "sessionId", path, (), record)

    def add_protein(self, proposal: str, record: r.Protein) -> Handle:
        path = f"/proposals/{_proposal(proposal)}/proteins"
        return self._create("Protein", "proteinId", path, (), record)

    def add_crystal(self, protein: Ref, record: r.Crystal) -> Handle:
        """The crystal form with these fields (found or created: samples share it)."""
        return self._create("Crystal", "crystalId", "/proteins/{0}/crystals", (protein,), record)

    def add_container(self, visit: Visit, record: r.Container) -> Handle:
        return self._create("Container", "containerId", f"{visit.path}/containers", (), record)

    def add_sample(
        self, container: Ref, record: r.BLSample, *, crystal: Ref | None = None
    ) -> Handle:
        path = "/containers/{0}/samples"
        refs = {"crystalId": crystal}
        return self._create("BLSample", "blSampleId", path, (container,), record, refs)

    def update_sample(self, sample: Ref, record: r.BLSampleUpdate) -> None:
        self._update("/samples/{0}", sample, record)

    def add_robot_action(
        self, visit: Visit, record: r.RobotAction, *, sample: Ref | None = None
    ) -> Handle:
        path = f"{visit.path}/robot-actions"
        refs = {"blsampleId": sample}
        return self._create("RobotAction", "robotActionId", path, (), record, refs)

    def update_robot_action(self, action: Ref, record: r.RobotActionUpdate) -> None:
        self._update("/robot-actions/{0}", action, record)

    # -- workflows --------------------------------------------------------------------------

    def add_workflow(self, record: r.Workflow) -> Handle:
        return self._create("Workflow", "workflowId", "/workflows", (), record)

    def update_workflow(self, workflow: Ref, record: r.WorkflowUpdate) -> None:
        self._update("/workflows/{0}", workflow, record)

    def add_workflow_step(self, workflow: Ref, record: r.WorkflowStep) -> Handle:
        path = "/workflows/{0}/steps"
        return self._create("WorkflowStep", "workflowStepId", path, (workflow,), record)

    def update_workflow_step(self, step: Ref, record: r.WorkflowStepUpdate) -> None:
        self._update("/workflow-steps/{0}", step, record)

    def add_workflow_mesh(self, workflow: Ref, record: r.WorkflowMesh) -> Handle:
        path = "/workflows/{0}/meshes"
        return self._create("WorkflowMesh", "workflowMeshId", path, (workflow,), record)

    # -- data collections -------------------------------------------------------------------

    def add_data_group(
        self,
        visit: Visit,
        record: r.DataCollectionGroup,
        *,
        sample: Ref | None = None,
        workflow: Ref | None = None,
    ) -> Handle:
        path = f"{visit.path}/data-groups"
        refs = {"blSampleId": sample, "workflowId": workflow}
        return self._create("DataCollectionGroup", "dataCollectionGroupId", path, (), record, refs)

    def update_data_group(self, group: Ref, record: r.DataCollectionGroupUpdate) -> None:
        self._update("/data-groups/{0}", group, record)

    def add_data_collection(self, group: Ref, record: r.DataCollection) -> Handle:
        path = "/data-groups/{0}/data-collections"
        return self._create("DataCollection", "dataCollectionId", path, (group,), record)

    def update_data_collection(self, collection: Ref, record: r.DataCollectionUpdate) -> None:
        self._update("/data-collections/{0}", collection, record)

    def add_grid_info(
        self, collection: Ref, record: r.GridInfo, *, workflow_mesh: Ref | None = None
    ) -> Handle:
        path = "/data-collections/{0}/grids"
        refs = {"workflowMeshId": workflow_mesh}
        return self._create("GridInfo", "gridInfoId", path, (collection,), record, refs)

    def add_position(self, collection: Ref, record: r.Position) -> Handle:
        """The centred position a data collection starts from (sets its startPositionId)."""
        path = "/data-collections/{0}/position"
        return self._create("Position", "positionId", path, (collection,), record)

    def add_image_quality_indicators(
        self, collection: Ref, indicators: Sequence[r.ImageQualityIndicators]
    ) -> None:
        """Per-image scores in bulk; re-sending an image number updates that image."""
        path = "/data-collections/{0}/image-quality-indicators"
        refused: LimsAuthError | None = None
        for start in range(0, len(indicators), BULK_CHUNK):
            chunk = indicators[start : start + BULK_CHUNK]
            body = [_body(item, r.ImageQualityIndicators) for item in chunk]
            write = Write(
                "POST", path, key=new_key(), body=body, path_refs=self._refs((collection,))
            )
            try:
                self._submit(write)
            except LimsAuthError as exc:
                if not exc.kept:
                    raise
                refused = exc  # queued: the other chunks queue behind it
        if refused is not None:
            raise refused

    def add_xray_centring(self, group: Ref, record: r.XrayCentring) -> Handle:
        path = "/data-groups/{0}/xray-centrings"
        return self._create("XrayCentring", "xrayCentringId", path, (group,), record)

    # -- characterisation -------------------------------------------------------------------

    def add_screening(self, collection: Ref, record: r.Screening) -> Handle:
        path = "/data-collections/{0}/screenings"
        return self._create("Screening", "screeningId", path, (collection,), record)

    def add_screening_output(self, screening: Ref, record: r.ScreeningOutput) -> Handle:
        path = "/screenings/{0}/outputs"
        return self._create("ScreeningOutput", "screeningOutputId", path, (screening,), record)

    def add_screening_output_lattice(self, output: Ref, record: r.ScreeningOutputLattice) -> Handle:
        path = "/screening-outputs/{0}/lattices"
        kind, id_field = "ScreeningOutputLattice", "screeningOutputLatticeId"
        return self._create(kind, id_field, path, (output,), record)

    def add_screening_strategy(self, output: Ref, record: r.ScreeningStrategy) -> Handle:
        path = "/screening-outputs/{0}/strategies"
        kind, id_field = "ScreeningStrategy", "screeningStrategyId"
        return self._create(kind, id_field, path, (output,), record)

    def add_screening_strategy_wedge(
        self, strategy: Ref, record: r.ScreeningStrategyWedge
    ) -> Handle:
        path = "/screening-strategies/{0}/wedges"
        kind, id_field = "ScreeningStrategyWedge", "screeningStrategyWedgeId"
        return self._create(kind, id_field, path, (strategy,), record)

    def add_screening_strategy_sub_wedge(
        self, wedge: Ref, record: r.ScreeningStrategySubWedge
    ) -> Handle:
        path = "/screening-strategy-wedges/{0}/sub-wedges"
        kind, id_field = "ScreeningStrategySubWedge", "screeningStrategySubWedgeId"
        return self._create(kind, id_field, path, (wedge,), record)

    # -- processing -------------------------------------------------------------------------

    def add_auto_proc_program(self, collection: Ref, record: r.AutoProcProgram) -> Handle:
        path = "/data-collections/{0}/auto-proc-programs"
        kind, id_field = "AutoProcProgram", "autoProcProgramId"
        return self._create(kind, id_field, path, (collection,), record)

    def update_auto_proc_program(self, program: Ref, record: r.AutoProcProgramUpdate) -> None:
        """Status, end time and, once known, the summary (replacing an earlier one)."""
        self._update("/auto-proc-programs/{0}", program, record)

    # -- reads ------------------------------------------------------------------------------

    def get(self, resource: str, ident: Ref) -> dict[str, Any]:
        """One record, e.g. ``get("data-collections", handle)``."""
        ref = self._refs((ident,))[0]
        if not isinstance(ref, int):
            raise LimsError(f"{ident!r} is still in the outbox; the LIMS has no id for it yet")
        result: dict[str, Any] = self._read(f"/{resource}/{ref}", {})
        return result

    def page(self, resource: str, *, skip: int = 0, limit: int = 100, **filters: Any) -> Page:
        """A page of ``resource`` (``sessions``, ``data-collections`` ..) matching ``filters``."""
        params = {"skip": skip, "limit": limit, **{k: _param(v) for k, v in filters.items()}}
        data = self._read(f"/{resource}", params)
        return Page(data["total"], data["results"], data["skip"], data["limit"])

    def records(self, resource: str, **filters: Any) -> list[dict[str, Any]]:
        """Every record of ``resource`` matching ``filters``, page after page."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.page(resource, skip=len(out), limit=1000, **filters)
            out.extend(page.results)
            if not page.results or len(out) >= page.total:
                return out

    def counts(self) -> dict[str, int]:
        """Rows per ISPyB table."""
        result: dict[str, int] = self._read("/counts", {})
        return result

    def health(self) -> bool:
        """True when the LIMS answers (one try, no retries)."""
        try:
            return self._http.get(f"{self.url}/health", timeout=self.timeout).ok
        except requests.RequestException:
            return False

    # -- the outbox -------------------------------------------------------------------------

    def flush(self) -> FlushReport:
        """Send every queued write now, in order (with retries); report what is left."""
        delivered = self._deliver(attempts=1 + self.retries) if self._outbox else 0
        return FlushReport(delivered, self.pending(), len(self.failed()))

    def pending(self) -> int:
        """Writes waiting in the outbox."""
        return self._outbox.pending_count() if self._outbox else 0

    def failed(self) -> list[Entry]:
        """Writes the LIMS refused (kept with their error)."""
        return self._outbox.failed() if self._outbox else []

    def retry_failed(self) -> int:
        """Queue the refused writes again (after fixing the cause); answers how many."""
        return self._outbox.retry_failed() if self._outbox else 0

    def handle(self, local_id: str, kind: str = "") -> Handle:
        """The handle of a record by its local id (e.g. one queued by an earlier process)."""
        waiting = self._waiting.get(local_id)
        if waiting is not None:
            return waiting
        server_id = self._outbox.server_id(local_id) if self._outbox else None
        return Handle(kind, local_id, server_id)

    @property
    def down(self) -> bool:
        """True while the LIMS is unreachable and writes only queue."""
        return self._down

    def close(self) -> None:
        """Stop the replay thread; queued writes stay in the outbox file for next time."""
        self._closing.set()
        if self._replayer is not None:
            self._replayer.join()
        with self._flush_lock:
            if self._outbox is not None:
                left = self._outbox.pending_count()
                if left:
                    log.info("%d LIMS writes stay queued in %s", left, self._outbox.path)
                self._outbox.close()
                self._outbox = None
            self._http.close()

    def __enter__(self) -> LimsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _create(
        self,
        kind: str,
        id_field: str,
        path: str,
        parents: tuple[Ref, ...],
        record: BaseModel,
        links: Mapping[str, Ref | None] | None = None,
    ) -> Handle:
        handle = Handle(kind)
        body = _body(record, type(record))
        body_refs: dict[str, str] = {}
        for name, link in (links or {}).items():
            if link is None:
                continue
            ref = self._refs((link,))[0]
            if isinstance(ref, int):
                body[name] = ref
            else:
                body.pop(name, None)
                body_refs[name] = ref
        write = Write(
            "POST",
            path,
            key=handle.local_id,
            body=body,
            path_refs=self._refs(parents),
            body_refs=body_refs,
            creates=handle.local_id,
            kind=kind,
            id_field=id_field,
        )
        self._submit(write, handle)
        return handle

    def _update(self, path: str, target: Ref, record: BaseModel) -> None:
        body = record.model_dump(mode="json", exclude_unset=True)
        self._submit(
            Write("PATCH", path, key=new_key(), body=body, path_refs=self._refs((target,)))
        )

    def _refs(self, refs: Sequence[Ref]) -> tuple[LocalRef, ...]:
        """LIMS ids where known, local ids of records still queued otherwise."""
        out: list[LocalRef] = []
        for ref in refs:
            if isinstance(ref, Handle):
                if ref.id is None and self._outbox is not None:
                    ref.id = self._outbox.server_id(ref.local_id)
                if ref.id is not None:
                    out.append(ref.id)
                elif self._outbox is not None and (
                    ref.local_id in self._waiting or self._outbox.creator(ref.local_id)
                ):
                    out.append(ref.local_id)
                else:
                    raise ValueError(
                        f"{ref!r} has no LIMS id: the LIMS refused it, or it was not written "
                        "through this client's outbox"
                    )
            elif isinstance(ref, int) and not isinstance(ref, bool) and 1 <= ref <= r.MAX_INT:
                out.append(ref)
            else:
                raise ValueError(f"a LIMS id must be a positive integer or a Handle, got {ref!r}")
        return tuple(out)

    def _submit(self, write: Write, handle: Handle | None = None) -> None:
        """Send ``write`` now when nothing is queued before it; queue it otherwise, or when
        the LIMS cannot take it now (down, or refusing the token)."""
        if self._outbox is None:
            self._send_now(write, handle)
            return
        direct = not write.body_refs and all(isinstance(ref, int) for ref in write.path_refs)
        with self._flush_lock:
            if direct and not self._down and self._outbox.pending_count() == 0:
                try:
                    self._send_now(write, handle)
                    return
                except LimsAuthError as exc:
                    if handle is not None:
                        self._waiting[handle.local_id] = handle
                    self._outbox.append(write)  # kept for a flush with the right token
                    exc.kept, exc.handle = True, handle
                    raise
                except LimsUnavailable as exc:
                    self._went_down(exc.reason)
            if handle is not None:
                self._waiting[handle.local_id] = handle
            seq = self._outbox.append(write)
        if self._down and (self._replayer is not None or time.monotonic() < self._retry_at):
            return  # queued: the replay thread (or a later write) sends it
        try:
            self._deliver(attempts=1 if self._down else 1 + self.retries)
        except LimsAuthError as exc:  # this write stays queued behind the one refused
            exc.kept, exc.handle = True, handle
            raise
        refused = self._refused.pop(seq, None)
        if refused is not None:
            raise refused

    def _send_now(self, write: Write, handle: Handle | None) -> None:
        path = write.path.format(*write.path_refs)
        request = f"{write.method} {path}"
        try:
            response = self._send(write.method, path, write.body, write.key, 1 + self.retries)
        except _Unreachable as exc:
            raise LimsUnavailable(request, self.url, str(exc)) from None
        _raise_for(response, request)
        if handle is not None and write.id_field:
            handle.id = _new_id(response, write.id_field, request)

    def _deliver(self, attempts: int) -> int:
        """Send pending writes in order until the outbox is empty or the LIMS is down."""
        delivered = 0
        with self._flush_lock:
            while self._outbox is not None and not self._closing.is_set():
                entry = self._outbox.next_pending()
                if entry is None:
                    break
                write = entry.write
                try:
                    path, body = self._resolve(entry)
                except _Unresolvable as exc:
                    self._refuse(entry, 424, str(exc), f"{write.method} {write.path}")
                    continue
                request = f"{write.method} {path}"
                try:
                    response = self._send(write.method, path, body, write.key, attempts)
                except _Unreachable as exc:
                    self._outbox.attempted(entry.seq, str(exc))
                    self._went_down(str(exc))
                    break
                self._came_back()
                if response.status_code < 300:
                    server_id = None
                    if write.id_field:
                        try:
                            server_id = _new_id(response, write.id_field, request)
                        except LimsError as exc:
                            self._refuse(entry, response.status_code, str(exc), request)
                            continue
                    self._outbox.delivered(entry, server_id)
                    self._resolved(write.creates, server_id)
                    delivered += 1
                elif response.status_code in (401, 403):
                    error = (
                        f"{request}: the LIMS answered {response.status_code}: {_detail(response)}"
                    )
                    self._outbox.attempted(entry.seq, error)
                    self.last_error = error
                    raise LimsAuthError(response.status_code, _detail(response), request)
                else:
                    self._refuse(entry, response.status_code, _detail(response), request)
        return delivered

    def _refuse(self, entry: Entry, status: int, detail: str, request: str) -> None:
        """Keep a write the LIMS cannot take as failed, with the reason."""
        error = LimsRejected(status, detail, request)
        assert self._outbox is not None
        self._outbox.fail(entry.seq, str(error))
        self._refused[entry.seq] = error
        if len(self._refused) > 1000:  # refusals no caller waits for (replayed writes)
            del self._refused[next(iter(self._refused))]
        self.last_error = str(error)
        log.warning("LIMS write kept as failed in the outbox: %s", error)

    def _resolve(self, entry: Entry) -> tuple[str, Any]:
        write = entry.write
        ids = [ref if isinstance(ref, int) else self._server_id(ref) for ref in write.path_refs]
        body = write.body
        if write.body_refs:
            body = dict(body)
            for name, local_id in write.body_refs.items():
                body[name] = self._server_id(local_id)
        return write.path.format(*ids), body

    def _server_id(self, local_id: str) -> int:
        assert self._outbox is not None
        server_id = self._outbox.server_id(local_id)
        if server_id is not None:
            return server_id
        creator = self._outbox.creator(local_id)
        if creator is None:
            raise _Unresolvable(f"it names a record ({local_id}) this outbox does not know")
        raise _Unresolvable(
            f"it depends on a {creator.write.kind} the LIMS has not taken "
            f"({creator.state}: {creator.last_error})"
        )

    def _resolved(self, local_id: str | None, server_id: int | None) -> None:
        if local_id is None:
            return
        handle = self._waiting.pop(local_id, None)
        if handle is not None and server_id is not None:
            handle.id = server_id

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        key: str | None,
        attempts: int,
        params: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """One request, tried ``attempts`` times on connection errors, timeouts and 5xx."""
        headers = {"Idempotency-Key": key} if method == "POST" and key else {}
        error = "not tried"
        for attempt in range(attempts):
            if attempt and self._closing.wait(self.backoff_s * 2 ** (attempt - 1)):
                break
            try:
                response = self._http.request(
                    method,
                    self.url + path,
                    json=body,
                    params=params,
                    headers=headers,
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                error = _reason(exc)
                continue
            if response.status_code >= 500 or response.status_code == 429:
                error = f"HTTP {response.status_code}: {_detail(response)}"
                continue
            return response
        raise _Unreachable(error)

    def _read(self, path: str, params: Mapping[str, Any]) -> Any:
        request = f"GET {path}"
        try:
            response = self._send("GET", path, None, None, 1 + self.retries, params)
        except _Unreachable as exc:
            raise LimsUnavailable(request, self.url, str(exc)) from None
        _raise_for(response, request)
        return response.json()

    def _went_down(self, error: str) -> None:
        if not self._down:
            log.warning(
                "the LIMS at %s cannot take writes now (%s); they are kept in %s and "
                "replayed when it can",
                self.url,
                error,
                self._outbox.path if self._outbox else "-",
            )
            self._retry_delay_s = self.replay_interval_s
        else:
            self._retry_delay_s = min(2 * self._retry_delay_s, self.replay_max_s)
        self._down = True
        self.last_error = error
        self._retry_at = time.monotonic() + self._retry_delay_s

    def _came_back(self) -> None:
        if self._down:
            log.info("the LIMS at %s answers again; replaying the outbox", self.url)
        self._down = False
        self._retry_delay_s = self.replay_interval_s

    def _replay_loop(self) -> None:
        while True:
            wait = self._retry_at - time.monotonic() if self._down else self.replay_interval_s
            if self._closing.wait(min(max(wait, 0.005), self.replay_interval_s)):
                return
            if self._down and time.monotonic() < self._retry_at:
                continue
            outbox = self._outbox
            if outbox is None or outbox.pending_count() == 0:
                continue
            try:
                self._deliver(attempts=1)
            except LimsError as exc:
                log.warning("LIMS outbox replay: %s", exc)
                self._went_down(str(exc))
            except Exception:  # keep replaying whatever happened
                log.exception("LIMS outbox replay failed")


def _reason(exc: requests.RequestException) -> str:
    """``ConnectionError: [Errno 111] Connection refused`` out of requests' long messages."""
    inner = exc.args[0] if exc.args else exc
    text = str(getattr(inner, "reason", inner))
    return f"{type(exc).__name__}: {text.rsplit(': ', 1)[-1]}"


def _body(record: BaseModel, expected: type[BaseModel]) -> dict[str, Any]:
    if not isinstance(record, expected) or not isinstance(record, BaseModel):
        raise TypeError(f"expected a {expected.__name__} record, got {type(record).__name__}")
    return record.model_dump(mode="json", exclude_none=True)


def _proposal(proposal: str) -> str:
    Visit(proposal, 1)  # validates code + number
    return proposal


def _param(value: Any) -> Any:
    if isinstance(value, Handle):
        if value.id is None:
            raise LimsError(f"{value!r} is still in the outbox; the LIMS has no id for it yet")
        return value.id
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _detail(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300] or response.reason
    if isinstance(data, dict):
        if isinstance(data.get("message"), str):
            return str(data["message"])
        if "detail" in data:
            return str(data["detail"])
    return str(data)[:300]


def _raise_for(response: requests.Response, request: str) -> None:
    if response.status_code < 400:
        return
    if response.status_code in (401, 403):
        raise LimsAuthError(response.status_code, _detail(response), request)
    raise LimsRejected(response.status_code, _detail(response), request)


def _new_id(response: requests.Response, id_field: str, request: str) -> int:
    try:
        value = response.json()[id_field]
    except (ValueError, KeyError, TypeError):
        raise LimsError(
            f"{request}: the LIMS answer has no {id_field}: {response.text[:200]}"
        ) from None
    if not isinstance(value, int):
        raise LimsError(f"{request}: the LIMS answered {id_field}={value!r}, not an id")
    return value
