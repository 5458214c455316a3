"""``bes serve``: the expert system over HTTP on the embedded station (or the one the station
options name), until Ctrl-C or SIGTERM; then the queue and any BES run are aborted, pins put
back, the workflow database and the LIMS outbox flushed. Heavy imports (FastAPI, uvicorn,
the station) happen inside the handler.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from bes.station.cli import UsageError, add_station_options, open_station_from_args

if TYPE_CHECKING:
    from bes.station.station import Station

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def add_server_commands(subparsers: Any) -> None:
    """Register ``bes serve`` on the ``bes`` command's subparsers."""
    serve = subparsers.add_parser(
        "serve",
        help="serve the BES protocol (MXCuBE) and the queue API over HTTP",
        description="Serve the station over HTTP: the BES protocol MXCuBE speaks (POST "
        "/RUN/<workflow>, GET /STATUS/<id>, GET /ABORT/<id>; no credentials: keep it on the "
        "beamline network) and the sample queue API under /api/v1 (bearer token; OpenAPI at "
        "/docs). Stops on Ctrl-C or SIGTERM: the queue and any run are aborted, pins put "
        "back, records flushed.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    serve.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="the API's bearer token, made on first start (default DATA_DIR/api-token); "
        "the environment variable BES_API_TOKEN, when set, is used instead",
    )
    serve.add_argument(
        "--recovery",
        choices=("requeue", "skip"),
        default="requeue",
        help="queue entries a crash left mid-sample: run them again (default) or skip them",
    )
    add_station_options(serve)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from bes.record.database import DatabaseError
    from bes.server.auth import TOKEN_ENV, TOKEN_FILE, TokenError, check_token
    from bes.server.auth import load_or_create_token as load_token

    if not 0 <= args.port < 65536:
        print(f"bes serve: bad --port {args.port}: expected 0..65535", file=sys.stderr)
        return 2
    token_file = args.token_file or Path(args.data_dir) / TOKEN_FILE
    try:
        if os.environ.get(TOKEN_ENV):
            token = check_token(os.environ[TOKEN_ENV], TOKEN_ENV)
            token_source = f"from the environment variable {TOKEN_ENV}"
        else:
            token = load_token(token_file)
            token_source = f"in {token_file.resolve()}"
    except (TokenError, OSError) as exc:
        print(f"bes serve: {exc}", file=sys.stderr)
        return 2
    try:
        station = open_station_from_args(args)
    except UsageError as exc:
        print(f"bes serve: {exc}", file=sys.stderr)
        return 2
    except (ValueError, DatabaseError, RuntimeError) as exc:
        print(f"bes serve: cannot open the station: {exc}", file=sys.stderr)
        return 2
    with station:
        return _serve_station(station, token, token_source, args)


def _serve_station(
    station: Station, token: str, token_source: str, args: argparse.Namespace
) -> int:
    from bes.server.server import BesServer

    server = BesServer(station, token, policy=args.recovery)
    try:
        url = server.bind(args.host, args.port)
    except RuntimeError as exc:
        server.close()
        print(f"bes serve: {exc}", file=sys.stderr)
        return 2
    say(f"bes serve: {url}")
    say(f"  BES protocol (MXCuBE): POST {url}/RUN/<workflow>, GET /STATUS/<id>, GET /ABORT/<id>")
    say(f"  queue API: {url}/api/v1/queue (docs {url}/docs); API token {token_source}")
    for name, value in station.describe().items():
        say(f"  {name}: {value}")
    for entry in server.recovered:
        say(f"  recovered queue entry {entry.id} ({entry.location}): {entry.state.name}")

    received: list[str] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        """The first signal stops serving after the requests under way, a second at once
        (flags only: the clean-up happens after ``serve`` returns)."""
        received.append(signal.Signals(signum).name)
        server.request_stop(force=len(received) > 1)

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, stop) for sig in signals}
    try:
        server.serve()
        why = f"{received[0]}: " if received else ""
        say(f"bes serve: {why}aborting the queue and any run, putting pins back ...")
        server.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
    say("bes serve: stopped")
    return 0


def say(text: str) -> None:
    print(text, flush=True)
