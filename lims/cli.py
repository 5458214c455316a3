"""``bes lims serve | load-sheet | flush | status``: the LIMS from the command line.

Registered by ``bes.cli``. Only ``serve`` needs the service; it imports it inside its handler,
so building the ``bes`` command never loads ``lims.service`` (see docs/lims.md, "bes lims").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lims.tokens import TOKENS_FILE, TokenFileError, read_token

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8470
DEFAULT_DATA_DIR = Path("bes-data")
OUTBOX_FILE = "outbox.sqlite"


def add_lims_commands(subparsers: Any) -> None:
    """Register ``bes lims ...`` on the ``bes`` command's subparsers."""
    lims = subparsers.add_parser(
        "lims", help="the ISPyB-like LIMS: serve it, load a sample sheet, flush the outbox"
    )
    commands = lims.add_subparsers(dest="lims_command", metavar="SUBCOMMAND")

    serve = commands.add_parser("serve", help="run the LIMS service (Ctrl-C stops it)")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    serve.add_argument(
        "--config",
        type=Path,
        help="service config (TOML: database_url, [tokens], ...); default: SQLite and "
        "generated tokens in DATA_DIR/lims",
    )
    _add_data_dir(serve)
    serve.set_defaults(handler=_serve)

    load = commands.add_parser(
        "load-sheet", help="load proposal, session, pucks and samples from a CSV or JSON sheet"
    )
    load.add_argument("file", type=Path, metavar="FILE", help="sample sheet (.csv or .json)")
    _add_client_options(load)
    load.set_defaults(handler=_load_sheet)

    flush = commands.add_parser("flush", help="send the writes queued in the outbox, in order")
    _add_client_options(flush)
    _add_outbox_option(flush)
    flush.add_argument(
        "--retry-failed",
        action="store_true",
        help="also send again the writes the LIMS refused before (after fixing the cause)",
    )
    flush.set_defaults(handler=_flush)

    status = commands.add_parser("status", help="records per table and writes in the outbox")
    _add_client_options(status)
    _add_outbox_option(status)
    status.set_defaults(handler=_status)

    lims.set_defaults(handler=lambda args: _help(lims))


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"mxbes data folder (default {DEFAULT_DATA_DIR}); the LIMS uses DATA_DIR/lims",
    )


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=f"http://{DEFAULT_HOST}:{DEFAULT_PORT}",
        help=f"LIMS base URL (default http://{DEFAULT_HOST}:{DEFAULT_PORT})",
    )
    parser.add_argument(
        "--token", help=f"writer token (default: the one in DATA_DIR/lims/{TOKENS_FILE})"
    )
    _add_data_dir(parser)


def _add_outbox_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--outbox", type=Path, help=f"outbox file (default DATA_DIR/lims/{OUTBOX_FILE})"
    )


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _fail(message: str, status: int = 1) -> int:
    print(f"bes lims: {message}", file=sys.stderr)
    if "is unreachable" in message:
        print("bes lims: is the LIMS running? (bes lims serve; --url)", file=sys.stderr)
    return status


def _token(args: argparse.Namespace) -> str:
    return str(args.token) if args.token else read_token(args.data_dir / "lims" / TOKENS_FILE)


def _outbox(args: argparse.Namespace) -> Path:
    return Path(args.outbox) if args.outbox else args.data_dir / "lims" / OUTBOX_FILE


def _serve(args: argparse.Namespace) -> int:
    from lims.service.embedded import serve  # only here: bes never loads the service

    try:
        serve(args.host, args.port, config_file=args.config, data_dir=args.data_dir / "lims")
    except ValueError as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:  # Ctrl-C is how the service is stopped
        pass
    return 0


def _load_sheet(args: argparse.Namespace) -> int:
    from lims.client import LimsClient, LimsError
    from lims.sheet import SheetError, load_sheet, read_sheet

    try:
        sheet = read_sheet(args.file)
        with LimsClient(args.url, _token(args)) as client:
            report = load_sheet(client, sheet)
    except (SheetError, TokenFileError, LimsError) as exc:
        return _fail(str(exc))
    print(
        f"loaded {args.file} into {report.visit}: {report.containers} container(s), "
        f"{report.samples} sample(s)"
    )
    return 0


def _flush(args: argparse.Namespace) -> int:
    from lims.client import LimsClient, LimsError

    outbox = _outbox(args)
    if not outbox.exists():
        return _fail(f"no outbox {outbox}: nothing to flush")
    try:
        with LimsClient(args.url, _token(args), outbox=outbox, auto_replay=False) as client:
            if args.retry_failed:
                print(f"{client.retry_failed()} refused write(s) queued again")
            report = client.flush()
            failed = client.failed()
    except (TokenFileError, LimsError) as exc:
        return _fail(str(exc))
    print(
        f"outbox {outbox}: {report.delivered} delivered, {report.pending} pending, "
        f"{report.failed} refused"
    )
    for entry in failed:
        print(f"  refused #{entry.seq}: {entry.last_error}")
    if report.pending:
        print(f"  the LIMS at {args.url} is unreachable; run again when it is back")
    return 0 if report.pending == 0 and report.failed == 0 else 1


def _status(args: argparse.Namespace) -> int:
    from lims.client import LimsClient, LimsError

    outbox = _outbox(args)
    try:
        with LimsClient(
            args.url, _token(args), outbox=outbox if outbox.exists() else None, auto_replay=False
        ) as client:
            counts = client.counts()
            pending, failed = client.pending(), len(client.failed())
    except (TokenFileError, LimsError) as exc:
        return _fail(str(exc))
    width = max(len(name) for name in counts)
    print(f"LIMS {args.url}")
    for name, count in counts.items():
        print(f"  {name:<{width}} {count:>8}")
    print(f"outbox {outbox}: {pending} pending, {failed} refused")
    return 0
