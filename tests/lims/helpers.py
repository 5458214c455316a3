"""Small helpers shared by the LIMS tests."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from lims.service.embedded import EmbeddedLims, start_embedded


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 10.0, poll_s: float = 0.01
) -> None:
    """Poll ``condition``; fail (not a timing assertion: a bound for a hang) after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(poll_s)


class Restartable:
    """A LIMS that a test stops and starts again on the same port, tokens and database."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server: EmbeddedLims = start_embedded(data_dir)
        self.url, self.token, self.port = self.server.url, self.server.token, self.server.port

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> EmbeddedLims:
        self.server = start_embedded(
            self.data_dir, port=self.port, token=self.token, reader_token=self.server.reader_token
        )
        return self.server


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Restartable]:
    """A :class:`Restartable` LIMS in ``tmp_path/lims``, stopped at the end."""
    lims = Restartable(tmp_path / "lims")
    yield lims
    if lims.server.running:
        lims.server.stop()


def post_concurrently(
    lims: EmbeddedLims, path: str, body: Any, copies: int
) -> list[requests.Response]:
    """``copies`` identical POSTs (same Idempotency-Key) sent at the same moment, as retries
    of a client that timed out would be."""
    key = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {lims.token}", "Idempotency-Key": key}
    barrier = threading.Barrier(copies)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        answer = requests.post(f"{lims.url}{path}", json=body, headers=headers, timeout=30)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=send) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers
