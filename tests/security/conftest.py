"""Fixtures of the security tests: the LIMS and the BES server, each with a writer (or API)
token and, for the LIMS, a reader token.

- ``lims_live``: the LIMS on a loopback port, seeded with one MXPressE-like sample run (every
  table has a record with id 1), shared by a module;
- ``bes_live``: the BES server on a loopback port over a station whose simulated world is
  empty (no pin in the dewar, none mounted): an MX start names a missing pin or no pin at
  all, so nothing a test sends can start a long run on the beamline.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi import FastAPI

from bes.server.server import BesServer
from bes.station import Station, open_station
from lims.client import LimsClient
from lims.service.embedded import EmbeddedLims, start_embedded
from tests.lims.mxpresse import seed_session, write_run

TOKEN = "security-api-token-0123456789"
"""The BES server's API token."""
WRITER = "security-lims-writer-0123456789"
READER = "security-lims-reader-0123456789"
EMPTY_WORLD = {"pins": []}
"""A sample sheet with no pin: every dewar location is empty."""


def route_table(app: FastAPI) -> list[Any]:
    """Every route of ``app``, those of its included routers too (FastAPI >= 0.16x keeps
    them apart from the app's own table)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Live:
    """A server on loopback: its URL and how to call it."""

    url: str

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return requests.request(method, self.url + path, **kwargs)


@dataclass
class LiveLims(Live):
    server: EmbeddedLims


@dataclass
class LiveBes(Live):
    server: BesServer
    station: Station


@contextlib.contextmanager
def seeded_lims(folder: Path) -> Iterator[EmbeddedLims]:
    """A LIMS in ``folder`` whose every table has a record with id 1."""
    with start_embedded(folder, token=WRITER, reader_token=READER) as server:
        with LimsClient(server.url, server.token) as client:
            visit, sample = seed_session(client)
            write_run(client, visit, sample)
        yield server


@pytest.fixture(scope="module")
def lims_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveLims]:
    with seeded_lims(tmp_path_factory.mktemp("lims")) as server:
        yield LiveLims(server.url, server)


@contextlib.contextmanager
def empty_station(folder: Path, sheet: dict[str, Any] = EMPTY_WORLD) -> Iterator[Station]:
    """A station on the simulated beamline (instant clock, no LIMS, no pin mounted) whose
    dewar holds the pins of ``sheet``: by default none."""
    sheet_file = folder / "sheet.json"
    folder.mkdir(parents=True, exist_ok=True)
    sheet_file.write_text(json.dumps(sheet))
    with open_station(
        data_dir=folder / "data", no_lims=True, clock="instant", sample_sheet=sheet_file
    ) as station:
        yield station


@contextlib.contextmanager
def serve_bes(
    folder: Path, sheet: dict[str, Any] = EMPTY_WORLD, **options: Any
) -> Iterator[LiveBes]:
    """The BES server on a loopback port over :func:`empty_station`."""
    with empty_station(folder, sheet) as station:
        server = BesServer(station, TOKEN, abort_wait_s=10.0, **options)
        try:
            url = server.start()
            yield LiveBes(url, server, station)
        finally:
            server.close()


@pytest.fixture(scope="module")
def bes_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBes]:
    with serve_bes(tmp_path_factory.mktemp("bes")) as live:
        yield live
