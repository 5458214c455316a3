"""The sample queue over REST (JSON, bearer token): entries, commands, status, history.

A bad entry (location, recipe, parameter) is refused with 422 and the queue's reason, and
nothing is queued; a command the queue's state does not allow is refused with 409 and what is
possible now; an unknown entry is 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from bes.queue import NewEntry, QueueManager, QueueStateError, SampleState
from bes.server.runs import BesRuns

PREFIX = "/api/v1/queue"
MAX_ID = 2**63 - 1
"""The largest id SQLite stores."""
router = APIRouter(prefix=PREFIX, tags=["queue"])


class EntryIn(BaseModel):
    """A sample to queue."""

    model_config = ConfigDict(extra="forbid")

    location: str = Field(description="dewar location 'puck:pin'", examples=["1:3"])
    recipe: str = Field(description="recipe name", examples=["mxpresse"])
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="recipe parameters (MX recipes: docs/workflows.md)",
        examples=[{"sessionId": "mx1234-1", "mesh_box_um": 20.0}],
    )
    sample_lims_id: int | None = Field(default=None, ge=1, le=MAX_ID, description="LIMS blSampleId")
    position: int | None = Field(
        default=None, ge=1, description="place in the queue (1: first); default: the end"
    )


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: int = Field(ge=1, description="new place in the queue (1: first)")


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        default=None, max_length=500, description="why (kept in the queue's history)"
    )


Command = Annotated[CommandIn | None, Body()]
EntryId = Annotated[int, Path(ge=1, le=MAX_ID, description="the entry's id")]


@contextmanager
def answers() -> Iterator[None]:
    """The queue's refusals as HTTP answers that say why."""
    try:
        yield
    except QueueStateError as exc:
        raise HTTPException(409, str(exc)) from None
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0]) if exc.args else "not found") from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _manager(request: Request) -> QueueManager:
    manager: QueueManager = request.app.state.queue.manager
    return manager


def _reason(command: CommandIn | None, default: str) -> str:
    return command.reason if command is not None and command.reason else default


# -- entries -------------------------------------------------------------------------------


@router.get("/entries")
def list_entries(
    request: Request,
    state: Annotated[
        list[str] | None, Query(description="only entries in these states, e.g. QUEUED")
    ] = None,
) -> dict[str, Any]:
    """Every entry in queue order (or those in ``state``)."""
    states = None
    if state:
        names = [part.strip().upper() for item in state for part in item.split(",") if part]
        unknown = [n for n in names if n not in SampleState.__members__]
        if unknown:
            raise HTTPException(
                422, f"unknown state(s) {unknown}; known: {', '.join(SampleState.__members__)}"
            )
        states = [SampleState[n] for n in names]
    return {"entries": [e.to_json() for e in _manager(request).store.list(states)]}


@router.post("/entries", status_code=201)
def add_entry(entry: EntryIn, request: Request) -> dict[str, Any]:
    """Queue a sample; 422 with the reason for a bad location, recipe or parameter."""
    new = NewEntry(entry.location, entry.recipe, entry.parameters, entry.sample_lims_id)
    with answers():
        return _manager(request).add(new, entry.position).to_json()


@router.get("/entries/{entry_id}")
def get_entry(entry_id: EntryId, request: Request) -> dict[str, Any]:
    """The entry with its state changes."""
    manager = _manager(request)
    with answers():
        entry = manager.store.get(entry_id)
        changes = manager.store.history(entry_id)
    return {**entry.to_json(), "transitions": [c.to_json() for c in changes]}


@router.post("/entries/{entry_id}/move")
def move_entry(entry_id: EntryId, move: MoveIn, request: Request) -> dict[str, Any]:
    with answers():
        return _manager(request).move(entry_id, move.position).to_json()


@router.delete("/entries/{entry_id}")
def remove_entry(entry_id: EntryId, request: Request) -> dict[str, Any]:
    """Remove a waiting or finished entry (409 for the one running: skip or abort it)."""
    with answers():
        return _manager(request).remove(entry_id).to_json()


@router.post("/entries/{entry_id}/retry")
def retry_entry(entry_id: EntryId, request: Request, command: Command = None) -> dict[str, Any]:
    """Put a FAILED, ABORTED, SKIPPED or INTERRUPTED entry back in the queue."""
    with answers():
        entry = _manager(request).retry(entry_id, _reason(command, "re-queued by a person"))
    return entry.to_json()


@router.post("/entries/{entry_id}/skip")
def skip_entry(entry_id: EntryId, request: Request, command: Command = None) -> dict[str, Any]:
    """Skip a waiting entry, or the one running (its run is aborted; the queue goes on)."""
    manager = _manager(request)
    with answers():
        manager.skip(entry_id, _reason(command, "skipped by a person"))
        return manager.store.get(entry_id).to_json()


# -- commands ------------------------------------------------------------------------------


@router.post("/start")
def start(request: Request, command: Command = None) -> dict[str, Any]:
    """Run the queued entries until the queue is empty."""
    return _take_beamline(request, lambda m: m.start(_reason(command, "started")))


@router.post("/resume")
def resume(request: Request, command: Command = None) -> dict[str, Any]:
    return _take_beamline(request, lambda m: m.resume(_reason(command, "resumed by a person")))


@router.post("/pause")
def pause(request: Request, command: Command = None) -> dict[str, Any]:
    """Pause at the current run's next step boundary (or between samples)."""
    manager = _manager(request)
    with answers():
        manager.pause(_reason(command, "paused by a person"))
    return manager.status()


@router.post("/stop")
def stop(request: Request, command: Command = None) -> dict[str, Any]:
    """Stop after the current sample."""
    manager = _manager(request)
    with answers():
        manager.stop(_reason(command, "stop after the current sample"))
    return manager.status()


@router.post("/abort")
def abort(request: Request, command: Command = None) -> dict[str, Any]:
    """End the current run now; the queue goes IDLE."""
    manager = _manager(request)
    with answers():
        manager.abort(_reason(command, "aborted by a person"))
    return manager.status()


@router.post("/skip")
def skip_current(request: Request, command: Command = None) -> dict[str, Any]:
    """Skip the sample running now (its run is aborted; the queue goes on)."""
    manager = _manager(request)
    with answers():
        manager.skip(None, _reason(command, "skipped by a person"))
    return manager.status()


def _take_beamline(request: Request, command: Any) -> dict[str, Any]:
    """Start or resume the queue unless a BES run has the beamline (409)."""
    runs: BesRuns = request.app.state.runs
    manager = _manager(request)
    with runs.claims:
        active = runs.active()
        if active is not None:
            raise HTTPException(
                409,
                f"the beamline is busy with BES run {active.request_id} ({active.workflow}); "
                f"wait for it to end or abort it (GET /ABORT/{active.request_id})",
            )
        with answers():
            command(manager)
    return manager.status()


# -- reading -------------------------------------------------------------------------------


@router.get("/status")
def status(request: Request) -> dict[str, Any]:
    """The queue's state and reason, the current entry and the entries per state."""
    runs: BesRuns = request.app.state.runs
    active = runs.active()
    return {**_manager(request).status(), "bes_run": active.to_json() if active else None}


@router.get("/history")
def history(request: Request) -> dict[str, Any]:
    """Finished entries with their state changes, and the queue's own state changes since
    the server started."""
    manager = _manager(request)
    return {
        "entries": manager.history(),
        "queue": [change.to_json() for change in manager.queue_history()],
    }
