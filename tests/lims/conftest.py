"""Fixtures: a LIMS service on a free loopback port (SQLite in tmp_path) and a client with
an outbox and short retry times. No fixture leaves a thread behind (checked after each test)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lims.client import LimsClient
from lims.service.embedded import EmbeddedLims, start_embedded
from tests.lims.helpers import restartable  # noqa: F401  (fixture shared with tests/tasks)

FAST: dict[str, Any] = {
    "retries": 2,
    "backoff_s": 0.01,
    "replay_interval_s": 0.02,
    "replay_max_s": 0.1,
    "connect_timeout_s": 2.0,
    "read_timeout_s": 10.0,
}
"""Client settings for tests: a LIMS that is down is noticed and retried in milliseconds."""


PROCESS_THREADS = ("bes-heatmap",)
"""Name prefixes of the worker threads bes keeps for the life of the process once used (the
heat-map writer of ``bes.tasks.mesh``, started by the first mesh scan of a test)."""


def _left_behind(before: set[threading.Thread], ignore_workers: bool) -> list[threading.Thread]:
    """Threads started since ``before`` still alive after a grace period.

    AnyIO worker threads belong to a LIMS server: they end with it (checked once all the LIMS
    tests have run), so a module-scoped server may keep its workers between tests."""
    deadline = time.monotonic() + 5.0
    while True:
        extra = [
            t
            for t in threading.enumerate()
            if t not in before
            and t.is_alive()
            and not (ignore_workers and t.name == "AnyIO worker thread")
            and not t.name.startswith(PROCESS_THREADS)
        ]
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.01)


@pytest.fixture(autouse=True, scope="package")
def no_thread_left_behind_by_the_lims_tests() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    extra = _left_behind(before, ignore_workers=False)
    assert not extra, f"threads left behind: {extra}"


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    extra = _left_behind(before, ignore_workers=True)
    assert not extra, f"threads left behind: {extra}"


@pytest.fixture
def lims(tmp_path: Path) -> Iterator[EmbeddedLims]:
    server = start_embedded(tmp_path / "lims")
    yield server
    if server.running:
        server.stop()


@pytest.fixture
def client(lims: EmbeddedLims, tmp_path: Path) -> Iterator[LimsClient]:
    with LimsClient(lims.url, lims.token, outbox=tmp_path / "outbox.sqlite", **FAST) as c:
        yield c


@pytest.fixture
def reader(lims: EmbeddedLims) -> Iterator[LimsClient]:
    """A read-only client (reader token, no outbox)."""
    with LimsClient(lims.url, lims.reader_token, **FAST) as c:
        yield c
