"""XML-RPC callbacks to the MXCuBE client that started a BES run (shared/REFERENCE.md §1).

MXCuBE serves XML-RPC at ``http://{mxcubeParameters.host}:{mxcubeParameters.port}`` and
refuses a call without the HTTP header ``Token: {mxcubeParameters.token}`` (401). A run sends
``log_message(message, level)`` as it goes and ``workflow_end()`` once at its end, whatever
the end: a client whose workflow ended waits for ``workflow_end`` and hangs without it.

Calls are queued and sent by one sender thread per run, each with a timeout, so a slow or
dead client never holds up the engine. A client that failed ``MAX_FAILURES`` calls in a row
gets no more log messages; ``workflow_end`` is always tried.
"""

from __future__ import annotations

import http.client
import logging
import queue
import threading
import xmlrpc.client
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

LEVELS = ("info", "warning", "error")
"""The levels MXCuBE's ``log_message`` takes."""
MAX_FAILURES = 3
MAX_PENDING = 1000
"""Log messages waiting to be sent beyond this are dropped (and counted)."""


@dataclass(frozen=True)
class CallbackTarget:
    """Where a run's callbacks go: ``mxcubeParameters`` of the start body."""

    host: str
    port: int
    token: str | None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class TokenTransport(xmlrpc.client.Transport):
    """HTTP transport that sends ``Token: <token>`` with every call and gives up on a
    connection or an answer after ``timeout_s``."""

    def __init__(self, token: str | None, timeout_s: float) -> None:
        super().__init__(headers=[("Token", token)] if token is not None else [])
        self.timeout_s = timeout_s

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        connection = super().make_connection(host)
        connection.timeout = self.timeout_s
        return connection


_END = "workflow_end"


class MxcubeCallbacks:
    """The callbacks of one run to one client. ``log_message`` and ``workflow_end`` only
    queue the call; ``close`` waits for the sender."""

    def __init__(self, target: CallbackTarget, timeout_s: float = 5.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.delivered: dict[str, int] = {}
        """Calls delivered per method (for status pages and tests)."""
        self.failures = 0
        """Calls that failed (refused, timed out, connection lost)."""
        self.dropped = 0
        """Log messages never sent (queue full, or the client stopped answering)."""
        self._calls: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._ended = False
        self._thread = threading.Thread(
            target=self._send_all, name=f"bes-mxcube-{target.port}", daemon=True
        )
        self._thread.start()

    def log_message(self, message: str, level: str = "info") -> None:
        """Queue ``log_message(message, level)`` (``level``: info, warning or error)."""
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r}; known: {', '.join(LEVELS)}")
        with self._lock:
            if self._ended or self._pending >= MAX_PENDING:
                self.dropped += 1
                return
            self._pending += 1
        self._calls.put(("log_message", (message, level)))

    def workflow_end(self) -> None:
        """Queue ``workflow_end()``: the last call (later calls are ignored)."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        self._calls.put((_END, ()))

    def close(self, timeout_s: float | None = None) -> bool:
        """Send ``workflow_end`` if not done yet and wait for the sender (at most
        ``timeout_s``); True when every call was handled."""
        self.workflow_end()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def _send_all(self) -> None:
        proxy = xmlrpc.client.ServerProxy(
            self.target.url,
            transport=TokenTransport(self.target.token, self.timeout_s),
            allow_none=True,
        )
        in_a_row = 0
        with proxy:
            while True:
                method, args = self._calls.get()
                if method == "log_message":
                    with self._lock:
                        self._pending -= 1
                    if in_a_row >= MAX_FAILURES:
                        self.dropped += 1
                        continue
                if self._call(proxy, method, args):
                    in_a_row = 0
                    self.delivered[method] = self.delivered.get(method, 0) + 1
                else:
                    in_a_row += 1
                if method == _END:
                    return

    def _call(self, proxy: xmlrpc.client.ServerProxy, method: str, args: tuple[Any, ...]) -> bool:
        try:
            getattr(proxy, method)(*args)
        except xmlrpc.client.ProtocolError as exc:
            self._failed(method, f"HTTP {exc.errcode} {exc.errmsg}")
            return False
        except xmlrpc.client.Fault as exc:
            self._failed(method, f"fault {exc.faultCode}: {exc.faultString}")
            return False
        except (OSError, http.client.HTTPException, xmlrpc.client.ResponseError) as exc:
            self._failed(method, f"{type(exc).__name__}: {exc}")
            return False
        return True

    def _failed(self, method: str, why: str) -> None:
        self.failures += 1
        log = logger.warning if method == _END or self.failures == 1 else logger.debug
        log("MXCuBE callback %s to %s failed: %s", method, self.target.url, why)
