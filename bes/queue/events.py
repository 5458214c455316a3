"""Where the queue's changes go once committed: the workflow database (``Recorder``:
``sample_transition`` and ``queue_event``) and the subscribers (e.g. a server-sent events
stream). Recording never stops the queue: a failure is logged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bes.queue.entries import QueueEntry
from bes.queue.states import QueueState, StateChange

if TYPE_CHECKING:
    from bes.record.recorder import Recorder

logger = logging.getLogger(__name__)

Subscriber = Callable[[dict[str, Any]], None]
"""Gets each event: a dict with ``type`` ``queue``, ``sample`` or ``entry``."""


class QueueEvents:
    """Records and publishes queue, sample and entry events, in the order they are given."""

    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder = recorder
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def sample(self, entry: QueueEntry, change: StateChange) -> None:
        """An entry changed state (already committed to the store)."""
        self._record(
            "sample_transition",
            entry.sample,
            change.to_state,
            from_state=change.from_state,
            run_id=change.run_id,
            reason=change.reason,
            time_s=change.time,
        )
        self.publish(
            {
                "type": "sample",
                "time": change.time,
                "entry_id": entry.id,
                "sample": entry.sample,
                **change.to_json(),
            }
        )

    def queue(
        self,
        from_state: QueueState,
        to_state: QueueState,
        reason: str | None,
        entry: QueueEntry | None,
        run_id: str | None,
    ) -> None:
        """The queue changed state; ``entry``: the one being run, if any."""
        self._record(
            "queue_event",
            to_state.name.lower(),
            item_id=str(entry.id) if entry else None,
            sample=entry.sample if entry else None,
            recipe=entry.recipe if entry else None,
            run_id=run_id,
            detail={"from": from_state.name, "reason": reason},
        )
        self.publish(
            {
                "type": "queue",
                "time": time.time(),
                "from_state": from_state.name,
                "to_state": to_state.name,
                "reason": reason,
                "entry_id": entry.id if entry else None,
            }
        )

    def entry(self, action: str, entry: QueueEntry) -> None:
        """An entry was ``added``, ``moved`` or ``removed``."""
        self._record(
            "queue_event",
            action,
            item_id=str(entry.id),
            sample=entry.sample,
            recipe=entry.recipe,
            position=entry.position,
        )
        self.publish(
            {"type": "entry", "time": time.time(), "action": action, "entry": entry.to_json()}
        )

    def publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                logger.exception("queue subscriber %r failed", callback)

    def _record(self, method: str, *args: Any, **fields: Any) -> None:
        if self.recorder is None:
            return
        try:
            getattr(self.recorder, method)(*args, **fields)
        except Exception:
            logger.exception("could not record a %s", method.replace("_", " "))
