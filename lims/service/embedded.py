"""Run the LIMS with uvicorn: embedded in a background thread (``bes night``, tests) or in
the foreground (``bes lims serve``).

``start_embedded(data_dir)`` binds a free loopback port itself (no race for the port),
keeps its SQLite file in ``data_dir`` and returns once the server answers; ``stop()`` shuts
it down and joins the thread::

    with start_embedded(tmp_path) as lims:
        client = LimsClient(lims.url, lims.token)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from lims.service.app import create_app
from lims.service.config import DATABASE_FILE, ServiceConfig, sqlite_url
from lims.tokens import TOKENS_FILE, new_token


@dataclass
class EmbeddedLims:
    """A LIMS running in this process: its base URL, a writer and a reader token."""

    url: str
    token: str
    reader_token: str
    port: int
    database_url: str
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _socket: socket.socket = field(repr=False)
    _engine: Engine = field(repr=False)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving (requests under way are finished) and release the port and database."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._socket.close()
        if self._thread.is_alive():
            raise RuntimeError(
                f"the embedded LIMS on port {self.port} did not stop in {timeout_s} s"
            )
        self._engine.dispose()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> EmbeddedLims:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_embedded(
    data_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    reader_token: str | None = None,
    database_url: str | None = None,
    database_schema: str | None = None,
    max_body_bytes: int | None = None,
    startup_timeout_s: float = 15.0,
) -> EmbeddedLims:
    """Start the LIMS on ``host:port`` (0: a free port) in a background thread.

    The database is ``data_dir/lims.sqlite`` unless ``database_url`` names another one.
    Tokens are made up unless given; pass the same ``port`` and tokens to restart a stopped
    LIMS where its clients expect it.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    token = token or new_token()
    reader_token = reader_token or new_token()
    config = ServiceConfig(
        database_url=database_url or sqlite_url(data_dir / DATABASE_FILE),
        tokens={token: "writer", reader_token: "reader"},
        database_schema=database_schema,
        **({"max_body_bytes": max_body_bytes} if max_body_bytes else {}),
    )
    app = create_app(config)
    sock = _bind(host, port)
    bound_port = int(sock.getsockname()[1])
    server = uvicorn.Server(_uvicorn_config(app, host, bound_port, embedded=True))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"lims-{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5.0)
            sock.close()
            app.state.engine.dispose()
            raise RuntimeError(f"the embedded LIMS did not start on {host}:{bound_port}")
        time.sleep(0.005)
    return EmbeddedLims(
        url=f"http://{host}:{bound_port}",
        token=token,
        reader_token=reader_token,
        port=bound_port,
        database_url=config.database_url,
        _server=server,
        _thread=thread,
        _socket=sock,
        _engine=app.state.engine,
    )


def serve(
    host: str,
    port: int,
    *,
    config_file: Path | None = None,
    data_dir: Path | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C), with the config of ``config_file``
    or, without one, SQLite and generated tokens in ``data_dir``."""
    if config_file is not None:
        config = ServiceConfig.from_toml(config_file)
        where = f"tokens from {config_file}"
    else:
        folder = data_dir or Path("bes-data") / "lims"
        config = ServiceConfig.for_data_dir(folder)
        where = f"tokens in {folder / TOKENS_FILE}"
    app = create_app(config)
    database = make_url(config.database_url).render_as_string(hide_password=True)
    announce(f"LIMS on http://{host}:{port} (database {database}; {where}; API /docs)")
    try:
        uvicorn.Server(_uvicorn_config(app, host, port, embedded=False)).run()
    finally:
        app.state.engine.dispose()


def _uvicorn_config(app: FastAPI, host: str, port: int, embedded: bool) -> uvicorn.Config:
    """Embedded: quiet, and the host application's logging left alone."""
    logging: dict[str, object] = {"log_config": None, "log_level": "warning"} if embedded else {}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=not embedded,
        timeout_graceful_shutdown=5,
        lifespan="off",
        **logging,  # type: ignore[arg-type]
    )


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP;
    # without it every keep-alive answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot serve the LIMS on {host}:{port}: {exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
