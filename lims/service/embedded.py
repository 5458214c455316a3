"""Run the LIMS with uvicorn: embedded in a background thread (``bes night``, tests) or in
the foreground (``bes lims serve``).

``start_embedded(data_dir)`` binds a free loopback port itself (no race for the port),
keeps its SQLite file in ``data_dir`` and returns once the server answers; ``stop()`` shuts
it down and joins the thread::

    with start_embedded(tmp_path) as lims:
        client = LimsClient(lims.url, lims.token)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import uvicorn
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from lims.http_serving import ServerThread, base_url, bind, uvicorn_config
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
    _serving: ServerThread = field(repr=False)
    _engine: Engine = field(repr=False)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving (requests under way are finished) and release the port and database."""
        if not self._serving.stop(timeout_s):
            raise RuntimeError(
                f"the embedded LIMS on port {self.port} did not stop in {timeout_s} s"
            )
        self._engine.dispose()

    @property
    def running(self) -> bool:
        return self._serving.running

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
    sock = bind(host, port, "the LIMS")
    bound_port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn_config(app, host, bound_port, quiet=True))
    serving = ServerThread(server, sock, f"lims-{bound_port}")
    if not serving.start(startup_timeout_s):
        serving.stop(5.0)
        app.state.engine.dispose()
        raise RuntimeError(f"the embedded LIMS did not start on {host}:{bound_port}")
    return EmbeddedLims(
        url=base_url(host, bound_port),
        token=token,
        reader_token=reader_token,
        port=bound_port,
        database_url=config.database_url,
        _serving=serving,
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
        uvicorn.Server(uvicorn_config(app, host, port, quiet=False)).run()
    finally:
        app.state.engine.dispose()
