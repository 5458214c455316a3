"""A small server-sent events client for the tests: reads a stream in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests


@dataclass
class Event:
    id: str | None
    type: str
    data: dict[str, Any]


class SseReader:
    """Reads ``url`` until ``until(event)`` is true, the stream ends or :meth:`close`."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        until: Callable[[Event], bool] = lambda _e: False,
    ) -> None:
        self.events: list[Event] = []
        self.status: int | None = None
        self.content_type: str | None = None
        self.connected = threading.Event()
        self._until = until
        self._response = requests.get(url, headers=headers, stream=True, timeout=(5, 60))
        self.status = self._response.status_code
        self.content_type = self._response.headers.get("content-type")
        self._thread = threading.Thread(target=self._read, name="test-sse", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for raw in self._response.iter_lines(decode_unicode=True):
                line = raw or ""
                if line.startswith(":"):
                    continue
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:
                    event = Event(fields.get("id"), fields.get("event", "message"), {})
                    event.data = json.loads(fields["data"])
                    self.events.append(event)
                    if event.type == "status":
                        self.connected.set()
                    if self._until(event):
                        break
                fields = {}
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed under us
        finally:
            self.connected.set()
            self._response.close()

    def of_type(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.type == kind]

    def wait(self, timeout_s: float = 60.0) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def close(self) -> None:
        self._response.close()
        self._thread.join(10)
