"""Request bodies have a size limit on both servers: 1 MiB on the BES server, 8 MiB on the
LIMS (its largest legitimate body, a bulk of image-quality indicators, fits with room to
spare). A larger body is refused with 413 and the limit, whether its size is declared
(Content-Length) or it is streamed (chunked); the token is checked first, so a client
without one never gets its body read."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bes.server.app import MAX_BODY_BYTES
from lims.client.records import MAX_INT
from lims.service.config import DEFAULT_MAX_BODY_BYTES
from lims.service.schemas import MAX_BULK
from tests.security.conftest import READER, TOKEN, WRITER, LiveBes, LiveLims, bearer

IQI = "/data-collections/1/image-quality-indicators"


def chunks(size: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    """A JSON-ish body of ``size`` bytes, sent chunked (no Content-Length)."""
    yield b'{"comment": "'
    left = size - 15
    while left > 0:
        yield b"x" * min(piece, left)
        left -= piece
    yield b'"}'


def test_the_limits_are_those_documented() -> None:
    assert MAX_BODY_BYTES == 1024 * 1024
    assert DEFAULT_MAX_BODY_BYTES == 8 * 1024 * 1024


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "chunked"])
def test_a_large_start_body_gets_413_in_plain_text(bes_live: LiveBes, streamed: bool) -> None:
    size = MAX_BODY_BYTES + 1
    data = chunks(size) if streamed else json.dumps({"comment": "x" * size})
    answer = bes_live.request("POST", "/RUN/mxpresse", data=data)
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("text/plain")
    assert f"request body exceeds the limit of {MAX_BODY_BYTES} bytes" in answer.text
    assert bes_live.server.runs.list() == []


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "chunked"])
def test_a_large_queue_entry_gets_413(bes_live: LiveBes, streamed: bool) -> None:
    size = MAX_BODY_BYTES + 1
    body = {"location": "1:1", "recipe": "beamline_check", "parameters": {"x": "y" * size}}
    data = chunks(size) if streamed else json.dumps(body)
    headers = {**bearer(TOKEN), "Content-Type": "application/json"}
    answer = bes_live.request("POST", "/api/v1/queue/entries", data=data, headers=headers)
    assert answer.status_code == 413
    assert answer.json()["detail"] == f"request body exceeds the limit of {MAX_BODY_BYTES} bytes"
    assert bes_live.server.queue.manager.store.list() == []


def test_the_bes_token_is_checked_before_the_body(bes_live: LiveBes) -> None:
    data = json.dumps({"comment": "x" * (2 * MAX_BODY_BYTES)})
    answer = bes_live.request("POST", "/api/v1/queue/entries", data=data)
    assert answer.status_code == 401
    assert "missing bearer token" in answer.json()["detail"]


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "chunked"])
def test_a_large_lims_body_gets_413(lims_live: LiveLims, streamed: bool) -> None:
    size = DEFAULT_MAX_BODY_BYTES + 1
    data = chunks(size) if streamed else b"[" + b" " * (size - 2) + b"]"
    headers = {**bearer(WRITER), "Content-Type": "application/json"}
    answer = lims_live.request("POST", IQI, data=data, headers=headers)
    assert answer.status_code == 413
    detail = answer.json()["detail"]
    assert f"exceeds the limit of {DEFAULT_MAX_BODY_BYTES} bytes; send less per call" in detail
    if not streamed:
        assert f"request body of {size} bytes" in detail


@pytest.mark.parametrize("token", [None, READER])
def test_the_lims_token_is_checked_before_the_body(lims_live: LiveLims, token: str | None) -> None:
    data = b"[" + b" " * (DEFAULT_MAX_BODY_BYTES + 10) + b"]"
    headers = {"Content-Type": "application/json", **(bearer(token) if token else {})}
    answer = lims_live.request("POST", IQI, data=data, headers=headers)
    assert answer.status_code == (403 if token else 401)


def test_the_largest_bulk_of_image_quality_indicators_fits_the_lims_limit(
    lims_live: LiveLims,
) -> None:
    """MAX_BULK rows with every field at its widest, indented: below the limit, accepted."""
    row = {
        "imageNumber": 0,
        "spotTotal": MAX_INT,
        "goodBraggCandidates": MAX_INT,
        "method1Res": -1.2345678901234567e-300,
        "method2Res": -1.2345678901234567e-300,
        "totalIntegratedSignal": -1.2345678901234567e-300,
        "dozor_score": -1.2345678901234567e-300,
    }
    rows = [{**row, "imageNumber": MAX_INT - n} for n in range(MAX_BULK)]
    body = json.dumps(rows, indent=2).encode()
    assert len(body) < DEFAULT_MAX_BODY_BYTES / 2
    headers = {**bearer(WRITER), "Content-Type": "application/json"}
    answer = lims_live.request("POST", IQI, data=body, headers=headers)
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"dataCollectionId": 1, "count": MAX_BULK}
    one_too_many = json.dumps([*rows, row]).encode()
    answer = lims_live.request("POST", IQI, data=one_too_many, headers=headers)
    assert answer.status_code == 422
    assert f"at most {MAX_BULK} items" in answer.json()["message"]
