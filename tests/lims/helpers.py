"""Small helpers shared by the LIMS tests."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import requests

from lims.service.embedded import EmbeddedLims


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
