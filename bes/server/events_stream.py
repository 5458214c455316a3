"""Server-sent events: the queue's, samples' and entries' changes (``QueueManager.subscribe``)
and the workflow engine's events of the runs on the station, to every client of
``GET /api/v1/queue/events`` (``text/event-stream``).

Each event is ``id: N``, ``event: queue|sample|entry|engine``, ``data: {json}``; first comes
``event: status`` (the queue's status at connection). Publishers
are the queue's and the engine's threads: :meth:`EventHub.publish` only hands the event to
each client's asyncio queue (bounded: a client that does not read loses events and is told
how many). The last ``replay`` events are kept, so a client that reconnects with
``Last-Event-ID`` gets what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from bes.engine.events import (
    ConditionEvaluated,
    EngineEvent,
    MetadataReported,
    NodeEnded,
    NodeStarted,
    WorkflowEnded,
    WorkflowStarted,
    summarise,
)

KEEPALIVE_S = 15.0
CLIENT_BUFFER = 10_000
REPLAY = 1000
TYPES = ("queue", "sample", "entry", "engine")


@dataclass(frozen=True)
class StreamEvent:
    id: int
    """From 1; 0 for notices outside the sequence (``status``, ``dropped``), sent without an
    id so that a client's ``Last-Event-ID`` stays the last real event."""
    type: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        try:
            text = json.dumps(self.data, default=str, allow_nan=False)
        except ValueError:  # a NaN or infinity somewhere: as summarise words them
            text = json.dumps(summarise(self.data), default=str)
        head = f"id: {self.id}\n" if self.id > 0 else ""
        return f"{head}event: {self.type}\ndata: {text}\n\n".encode()


_CLOSE = StreamEvent(-1, "close", {})


@dataclass
class _Client:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[StreamEvent]
    types: frozenset[str]
    dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def offer(self, event: StreamEvent) -> None:
        """In the event loop's thread: queue the event, or count it lost."""
        if event is _CLOSE:
            with contextlib.suppress(asyncio.QueueEmpty):
                while self.queue.full():
                    self.queue.get_nowait()
            self.queue.put_nowait(event)
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            with self.lock:
                self.dropped += 1


class EventHub:
    """Fans events out to the stream clients. Use :meth:`publish` as a queue subscriber and
    the hub itself as an engine subscriber (``on_event``)."""

    def __init__(self, replay: int = REPLAY, client_buffer: int = CLIENT_BUFFER) -> None:
        self.client_buffer = client_buffer
        self._ids = itertools.count(1)
        self._recent: deque[StreamEvent] = deque(maxlen=replay)
        self._clients: list[_Client] = []
        self._lock = threading.Lock()
        self._closed = False

    # -- publishing (any thread) -----------------------------------------------------

    def publish(self, event: dict[str, Any]) -> None:
        """A queue event (``type`` ``queue``, ``sample`` or ``entry``) or any dict with a
        ``type``."""
        kind = str(event.get("type", "message"))
        with self._lock:
            if self._closed:
                return
            item = StreamEvent(next(self._ids), kind, event)
            self._recent.append(item)
            clients = list(self._clients)
        for client in clients:
            if kind in client.types:
                _deliver(client, item)

    def on_event(self, event: EngineEvent) -> None:
        """Engine subscriber: a summary of the event as an ``engine`` event."""
        data = engine_summary(event)
        if data is not None:
            self.publish(data)

    def close(self) -> None:
        """End every stream (the server is stopping); later events go nowhere."""
        with self._lock:
            self._closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            _deliver(client, _CLOSE)

    # -- streaming (event loop) ------------------------------------------------------

    async def stream(
        self,
        types: Iterable[str] = TYPES,
        last_id: int | None = None,
        first: dict[str, Any] | None = None,
        keepalive_s: float = KEEPALIVE_S,
    ) -> AsyncIterator[bytes]:
        """The SSE byte stream of one client, until the hub closes or the client goes."""
        client = _Client(
            asyncio.get_running_loop(), asyncio.Queue(self.client_buffer), frozenset(types)
        )
        with self._lock:
            closed = self._closed
            missed = [e for e in self._recent if last_id is not None and e.id > last_id]
            if not closed:
                self._clients.append(client)
        try:
            yield b"retry: 2000\n\n"
            if first is not None:
                yield StreamEvent(0, str(first.get("type", "status")), first).encode()
            for event in missed:
                if event.type in client.types:
                    yield event.encode()
            if closed:
                return
            while True:
                try:
                    event = await asyncio.wait_for(client.queue.get(), keepalive_s)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if event is _CLOSE:
                    return
                with client.lock:
                    dropped, client.dropped = client.dropped, 0
                if dropped:
                    notice = {"type": "dropped", "count": dropped}
                    yield StreamEvent(0, "dropped", notice).encode()
                yield event.encode()
        finally:
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)


def _deliver(client: _Client, event: StreamEvent) -> None:
    with contextlib.suppress(RuntimeError):  # the client's loop is closed: it is gone
        client.loop.call_soon_threadsafe(client.offer, event)


def engine_summary(event: EngineEvent) -> dict[str, Any] | None:
    """A small JSON picture of an engine event (no inputs or outputs, values summarised)."""
    data: dict[str, Any] = {
        "type": "engine",
        "kind": event.kind,
        "run_id": event.run_id,
        "workflow": event.workflow,
        "time": event.time,
        "beamline_time_s": event.beamline_time_s,
    }
    if isinstance(event, WorkflowStarted):
        sample = event.inputs.get("sample") if isinstance(event.inputs, dict) else None
        data["sample"] = summarise(sample)
    elif isinstance(event, NodeStarted | NodeEnded):
        data.update(
            node_id=event.node_id, task_identifier=event.task_identifier, execution=event.execution
        )
        if isinstance(event, NodeEnded):
            data.update(
                status=event.status,
                duration_s=event.duration_s,
                error=str(event.error) if event.error else None,
                handled=event.handled,
            )
    elif isinstance(event, ConditionEvaluated):
        if not event.taken:
            return None
        data.update(
            source=event.source,
            target=event.target,
            checks=[
                {"output": c.output, "value": summarise(c.value), "expected": summarise(c.expected)}
                for c in event.checks
            ],
        )
    elif isinstance(event, MetadataReported):
        data.update(key=event.key, value=summarise(event.value), unit=event.unit)
    elif isinstance(event, WorkflowEnded):
        data.update(
            status=event.status,
            error=str(event.error) if event.error else None,
            duration_s=event.duration_s,
        )
    return data


router = APIRouter(prefix="/api/v1/queue", tags=["queue"])


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}},
)
async def events(
    request: Request,
    types: Annotated[
        str | None, Query(description=f"comma-separated event types; default all: {TYPES}")
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: first a ``status`` event (the queue's status now), then every
    ``queue``, ``sample``, ``entry`` and ``engine`` event as it happens."""
    wanted = TYPES if types is None else tuple(t.strip() for t in types.split(",") if t.strip())
    unknown = [t for t in wanted if t not in TYPES]
    if unknown or not wanted:
        raise HTTPException(422, f"unknown event type(s) {unknown}; known: {', '.join(TYPES)}")
    last_id = _event_id(last_event_id)
    hub: EventHub = request.app.state.hub
    status = await run_in_threadpool(request.app.state.queue.manager.status)
    return StreamingResponse(
        hub.stream(wanted, last_id, first={"type": "status", **status}),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event_id(text: str | None) -> int | None:
    """``Last-Event-ID`` as an event id; None (a fresh stream) for anything else, as the SSE
    rules ask: ASCII digits only (``str.isdigit`` also passes '²', which int() refuses)."""
    text = (text or "").strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None
