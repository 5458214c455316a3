"""``BesServer``: an open station served over HTTP, with its sample queue, the BES-protocol
runs and the event stream, and its life cycle: serve in the foreground (``bes serve``) or in a
background thread (tests, embedding), then close cleanly (streams ended, runs and queue
aborted, pins put back). The station itself stays the caller's to close.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn

from bes.queue import QueueEntry
from bes.server.app import ABORT_WAIT_S, MAX_BODY_BYTES, create_app
from bes.server.events_stream import EventHub
from bes.server.runs import BesRuns
from bes.station.queue_runner import StationQueue
from lims.http_serving import ServerThread, base_url, bind, uvicorn_config

if TYPE_CHECKING:
    from bes.engine.events import Subscriber
    from bes.queue.store import RecoveryPolicy
    from bes.station.station import Station


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: ``bes serve`` decides what a signal does
    (uvicorn would raise the signal again once stopped, killing the process before the queue
    and the station are closed). ``before_shutdown`` runs in the event loop when the server
    starts to shut down (it ends the event streams, which would hold the shutdown up)."""

    def __init__(self, config: uvicorn.Config, before_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self.before_shutdown = before_shutdown

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.before_shutdown()
        await super().shutdown(sockets=sockets)


class BesServer:
    """The web app over ``station`` (see the module docstring).

    ``token``: the bearer token of ``/api/``; ``policy``: what happens to queue entries a
    crash left mid-sample (``requeue`` or ``skip``), applied at once; ``subscribers``: engine
    subscribers of every run (queue and BES protocol); ``queue_options``: more
    ``StationQueue`` options (``keep_going``, ``prefetch`` ...)."""

    def __init__(
        self,
        station: Station,
        token: str,
        *,
        policy: RecoveryPolicy = "requeue",
        subscribers: Iterable[Subscriber] = (),
        callback_timeout_s: float = 5.0,
        abort_wait_s: float = ABORT_WAIT_S,
        max_body_bytes: int = MAX_BODY_BYTES,
        queue_options: dict[str, Any] | None = None,
    ) -> None:
        self.station = station
        self.hub = EventHub()
        listeners = [self.hub, *subscribers]
        self.queue = StationQueue(
            station,
            policy=policy,
            subscribers=listeners,
            **(queue_options or {}),
        )
        self._unsubscribe = self.queue.manager.subscribe(self.hub.publish)
        self.runs = BesRuns(
            self.queue, subscribers=listeners, callback_timeout_s=callback_timeout_s
        )
        self.recovered: list[QueueEntry] = self.queue.manager.recover()
        """Entries a crash had left mid-sample, re-queued or skipped by ``policy``."""
        self.app = create_app(
            self.queue,
            self.runs,
            self.hub,
            token,
            max_body_bytes=max_body_bytes,
            abort_wait_s=abort_wait_s,
        )
        self.url: str | None = None
        self._serving: ServerThread | None = None
        self._closed = False

    # -- serving ---------------------------------------------------------------------

    def bind(self, host: str = "127.0.0.1", port: int = 0, quiet: bool = False) -> str:
        """Take ``host:port`` (0: a free port) and return the URL; then :meth:`serve`.
        ``quiet``: log warnings only, no access log. RuntimeError when the address is
        taken."""
        sock = bind(host, port)
        bound = int(sock.getsockname()[1])
        self.url = base_url(host, bound)
        server = _Uvicorn(uvicorn_config(self.app, host, bound, quiet), self.hub.close)
        self._serving = ServerThread(server, sock, "bes-server")
        return self.url

    def serve(self) -> None:
        """Serve in this thread until :meth:`request_stop` (from a signal handler, say)."""
        assert self._serving is not None, "bind() first"
        self._serving.run()

    def start(self, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 15.0) -> str:
        """Serve from a background thread (quiet); returns the URL once it answers."""
        url = self.bind(host, port, quiet=True)
        assert self._serving is not None
        if not self._serving.start(timeout_s):
            self.close()
            raise RuntimeError(f"the BES server did not start on {url}")
        return url

    def request_stop(self, force: bool = False) -> None:
        """Stop serving: event streams end, requests under way finish, the server returns.
        Only sets flags: safe from a signal handler. ``force``: do not wait for requests
        under way."""
        if self._serving is not None:
            self._serving.request_stop(force)

    # -- closing ---------------------------------------------------------------------

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop serving, abort the BES run and the queue (each waits at most
        ``timeout_s``), put a pin left mounted back. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._serving is not None:
            self._serving.stop(timeout_s)
        self.hub.close()
        self.runs.close(timeout_s)
        self._unsubscribe()
        self.queue.close(timeout_s)

    def __enter__(self) -> BesServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
