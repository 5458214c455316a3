"""Serving an ASGI app with uvicorn, shared by the LIMS service (``lims.service.embedded``)
and the expert system's REST server (``bes.server.server``): :func:`bind` takes the port
first (no race for it), :func:`uvicorn_config` sets uvicorn up, :class:`ServerThread` serves
from a background thread (or this one) and stops.

``lims`` stands alone, so the module lives here; ``bes.server`` imports it (``lims.service``
stays out of ``bes``)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def bind(host: str, port: int, subject: str = "") -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port; IPv6 when ``host`` has a
    colon). RuntimeError ``cannot serve [subject ]on host:port: why`` when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP;
    # without it every keep-alive answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        what = f"{subject} " if subject else ""
        raise RuntimeError(f"cannot serve {what}on {host}:{port}: {exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def base_url(host: str, port: int) -> str:
    """``http://host:port``, an IPv6 host in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def uvicorn_config(app: Any, host: str, port: int, quiet: bool) -> uvicorn.Config:
    """No lifespan, 5 s for requests under way at shutdown; ``quiet`` (background, embedded):
    warnings only, no access log, the host application's logging left alone."""
    logging: dict[str, Any] = {"log_config": None, "log_level": "warning"} if quiet else {}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=not quiet,
        timeout_graceful_shutdown=5,
        lifespan="off",
        **logging,
    )


class ServerThread:
    """``server`` on the bound socket ``sock``: served from a daemon thread named ``name``
    (:meth:`start`) or from this thread (:meth:`run`); :meth:`stop` ends it and closes the
    socket."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket, name: str) -> None:
        self.server = server
        self.socket = sock
        self.thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True
        )

    @property
    def running(self) -> bool:
        """Serving from its thread."""
        return self.thread.is_alive()

    def run(self) -> None:
        """Serve in this thread until :meth:`request_stop`."""
        self.server.run(sockets=[self.socket])

    def start(self, timeout_s: float) -> bool:
        """Serve from the thread; True once the server answers, False when it ended or did
        not start within ``timeout_s`` (then :meth:`stop` it)."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def request_stop(self, force: bool = False) -> None:
        """Stop serving: requests under way finish (unless ``force``), then the server
        returns. Only sets flags: safe from a signal handler."""
        self.server.should_exit = True
        if force:
            self.server.force_exit = True

    def stop(self, timeout_s: float) -> bool:
        """:meth:`request_stop`, wait at most ``timeout_s`` for the thread (if started), close
        the socket; True when the thread has ended."""
        self.request_stop()
        if self.thread.ident is not None:
            self.thread.join(timeout_s)
        self.socket.close()
        return not self.thread.is_alive()
