"""Every 4xx says what was wrong (the field or value it refuses), and malformed input never
gives a 5xx: a sample of malformed requests to both servers, and the 5xx the fuzzing and
probing found, each kept as a regression test."""

from __future__ import annotations

from typing import Any

import pytest

from lims.client.records import MAX_INT
from tests.security.conftest import READER, TOKEN, WRITER, LiveBes, LiveLims, bearer

JSON = {"Content-Type": "application/json"}
NOT_UTF8 = b'{"location": "\xff\xfe"}'

BES_CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    # (method, path, request arguments, status, text the answer must contain)
    ("POST", "/RUN/mxpresse", {"data": b"{not json"}, 400, "the body is not JSON"),
    ("POST", "/RUN/mxpresse", {"data": NOT_UTF8}, 400, "the body is not JSON"),
    ("POST", "/RUN/mxpresse", {"data": b"[" * 100_000}, 400, "nested too deeply"),
    ("POST", "/RUN/mxpresse", {"json": [1, 2]}, 422, "must be a JSON object, not list"),
    ("POST", "/RUN/mxpresse", {"json": {"mesh_rows": -1}}, 422, "mesh_rows=-1"),
    ("POST", "/RUN/mxpresse", {"json": {"mesh_rows": "[1]"}}, 422, "mesh_rows='[1]'"),
    ("POST", "/RUN/mxpresse", {"json": {"mesh_rws": 3}}, 422, "unknown parameter 'mesh_rws'"),
    ("POST", "/RUN/mxpresse", {"json": {"sample_location": "1-3"}}, 422, "'1-3'"),
    ("POST", "/RUN/mxpresse", {"json": {"sample_location": 5}}, 422, "bad sample_location 5"),
    (
        "POST",
        "/RUN/mxpresse",
        {"json": {"sample_location": "1:3", "sample": "1:4"}},
        422,
        "name different pins",
    ),
    (
        "POST",
        "/RUN/mxpresse",
        {"json": {"mxcubeParameters": {"host": "h", "port": 0}}},
        422,
        "mxcubeParameters.port 0",
    ),
    (
        "POST",
        "/RUN/mxpresse",
        {"json": {"mxcubeParameters": "mxcube:8000"}},
        422,
        "bad mxcubeParameters 'mxcube:8000'",
    ),
    ("POST", "/RUN/beamline_check", {"json": {"step": 5}}, 422, "unknown parameter(s) 'step'"),
    ("POST", "/RUN/mxpresse2", {"json": {}}, 404, "unknown workflow 'mxpresse2'; known:"),
    ("GET", "/RUN/mxpresse", {}, 405, "Method Not Allowed: GET /RUN/mxpresse; allowed: POST"),
    ("GET", "/STATUS/nope", {}, 404, "unknown request id 'nope'"),
    ("GET", "/ABORT/nope", {}, 404, "unknown request id 'nope'"),
    ("GET", "/nothing/here", {}, 404, "Not Found: GET /nothing/here"),
    # the queue API (with the token)
    (
        "POST",
        "/api/v1/queue/entries",
        {"json": {"location": "1-3", "recipe": "mxpresse"}},
        422,
        "bad sample location '1-3'; expected 'puck:pin'",
    ),
    (
        "POST",
        "/api/v1/queue/entries",
        {"json": {"location": "1:3", "recipe": "mxpress"}},
        422,
        "unknown workflow 'mxpress'",
    ),
    (
        "POST",
        "/api/v1/queue/entries",
        {"json": {"location": "1:3", "recipe": "mxpresse", "parameters": {"mesh_box_um": 0}}},
        422,
        "mesh_box_um=0",
    ),
    (
        "POST",
        "/api/v1/queue/entries",
        {"json": {"location": "1:3", "recipe": "mxpresse", "colour": "red"}},
        422,
        "body.colour: Extra inputs are not permitted",
    ),
    ("POST", "/api/v1/queue/entries", {"json": {"recipe": "mxpresse"}}, 422, "body.location"),
    (
        "POST",
        "/api/v1/queue/entries",
        {"json": {"location": "1:3", "recipe": "mxpresse", "position": 0}},
        422,
        "body.position",
    ),
    (
        "POST",
        "/api/v1/queue/entries",
        {"data": b"{not json", "headers": JSON},
        422,
        "JSON decode error",
    ),
    (
        "POST",
        "/api/v1/queue/entries",
        {"data": NOT_UTF8, "headers": JSON},
        400,
        "the body cannot be read as JSON: 'utf-8' codec can't decode byte 0xff",
    ),
    ("GET", "/api/v1/queue/entries/0", {}, 422, "path.entry_id"),
    ("GET", "/api/v1/queue/entries/abc", {}, 422, "path.entry_id"),
    ("GET", "/api/v1/queue/entries/99", {}, 404, "no queue entry 99"),
    ("GET", "/api/v1/queue/entries/99999999999999999999", {}, 422, "path.entry_id"),
    ("GET", "/api/v1/queue/entries?state=BOGUS", {}, 422, "unknown state(s) ['BOGUS']"),
    ("GET", "/api/v1/queue/events?types=bogus", {}, 422, "unknown event type(s) ['bogus']"),
    ("POST", "/api/v1/queue/entries/99/move", {"json": {"position": 1}}, 404, "no queue entry 99"),
    ("POST", "/api/v1/queue/entries/1/move", {"json": {}}, 422, "body.position"),
    ("POST", "/api/v1/queue/pause", {}, 409, "cannot pause: queue is IDLE; possible now: start"),
    ("POST", "/api/v1/queue/skip", {}, 409, "cannot skip: no sample is running"),
    ("POST", "/api/v1/queue/stop", {"json": {"reason": "x" * 501}}, 422, "body.reason"),
    ("POST", "/api/v1/queue/stop", {"json": {"why": "x"}}, 422, "body.why"),
    ("GET", "/api/v1/runs/nope", {}, 404, "no BES run 'nope'"),
    ("PUT", "/api/v1/queue/start", {}, 405, "allowed: POST"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "text"), BES_CASES)
def test_every_bes_refusal_says_what_was_wrong(
    bes_live: LiveBes, method: str, path: str, kwargs: dict[str, Any], status: int, text: str
) -> None:
    headers = {**bearer(TOKEN), **kwargs.pop("headers", {})}
    answer = bes_live.request(method, path, headers=headers, **kwargs)
    assert answer.status_code == status, answer.text
    assert text in answer.text
    assert bes_live.server.runs.list() == []
    assert bes_live.server.queue.manager.store.list() == []


LIMS_CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    (
        "GET",
        "/samples?containerId=99999999999",
        {},
        422,
        f"containerId must be an integer from {-MAX_INT} to {MAX_INT}, got '99999999999'",
    ),
    ("GET", "/samples?colour=red", {}, 422, "unknown filter 'colour' for /samples; known:"),
    ("GET", "/samples?limit=0", {}, 422, "query.limit"),
    ("GET", "/samples/0", {}, 422, "path.blSampleId"),
    ("GET", "/samples/4242", {}, 404, "BLSample 4242 not found"),
    (
        "DELETE",
        "/samples/1",
        {},
        405,
        "Method Not Allowed: DELETE /samples/1; allowed: GET, PATCH",
    ),
    ("GET", "/no-such-table", {}, 404, "Not Found: GET /no-such-table"),
    (
        "POST",
        "/workflows",
        {"data": NOT_UTF8, "headers": JSON},
        400,
        "the body cannot be read as JSON: 'utf-8' codec can't decode byte 0xff",
    ),
    ("POST", "/workflows", {"json": {"workflowType": "Nope"}}, 422, "body.workflowType"),
    (
        "POST",
        "/workflows",
        {"json": {"workflowType": "MXPressE"}, "headers": {"Idempotency-Key": "a b"}},
        422,
        "header.Idempotency-Key",
    ),
    ("PATCH", "/samples/1", {"json": {"blSampleStatus": 5}}, 422, "body.blSampleStatus"),
    (
        "POST",
        "/proposals/mx1234/sessions/77/data-groups",
        {"json": {"experimentType": "OSC"}},
        404,
        "session mx1234-77 not found",
    ),
    (
        "POST",
        "/proposals/not-a-proposal/sessions/1/data-groups",
        {"json": {"experimentType": "OSC"}},
        422,
        "path.proposal",
    ),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "text"), LIMS_CASES)
def test_every_lims_refusal_says_what_was_wrong(
    lims_live: LiveLims, method: str, path: str, kwargs: dict[str, Any], status: int, text: str
) -> None:
    headers = {**bearer(WRITER), **kwargs.pop("headers", {})}
    answer = lims_live.request(method, path, headers=headers, **kwargs)
    assert answer.status_code == status, answer.text
    assert text in answer.text
    if status == 405:
        assert answer.headers["Allow"] == text.rpartition("allowed: ")[2]


# -- regressions: 5xx found by the fuzzing and by probing --------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        # str.isdigit() passes '²' and int() refused it: 500 before the fix
        ({"mxcubeParameters": {"host": "h", "port": "²"}}, 422, "mxcubeParameters.port '²'"),
        # int() refuses more than 4300 digits: 500 before the fix
        (
            {"mxcubeParameters": {"host": "h", "port": "1" * 5000}},
            422,
            "bad mxcubeParameters.port",
        ),
        # read as no LIMS id (was a 422 saying only "invalid literal for int()")
        ({"sample": {"sampleId": "²", "sampleName": "lyso"}}, 409, "no sample is mounted"),
        ({"sample": {"sampleId": "9" * 5000}}, 409, "no sample is mounted"),
        # the visit is not a number: the whole sessionId is not a proposal-visit
        ({"sessionId": "mx1-²"}, 409, "no sample is mounted"),
    ],
)
def test_numbers_sent_as_odd_text_are_refused_or_ignored_never_a_500(
    bes_live: LiveBes, body: dict[str, Any], status: int, text: str
) -> None:
    answer = bes_live.request("POST", "/RUN/mxpresse", json=body)
    assert answer.status_code == status, answer.text
    assert text in answer.text


@pytest.mark.parametrize(
    "last_event_id",
    ["\xb2", "1" * 5000, "-1", "abc"],
    ids=["superscript-two", "5000-digits", "negative", "letters"],
)
def test_an_odd_last_event_id_starts_a_fresh_stream(bes_live: LiveBes, last_event_id: str) -> None:
    """``Last-Event-ID: ²`` was a 500 (``str.isdigit``); the SSE rules say: ignore it."""
    headers = {**bearer(TOKEN), "Last-Event-ID": last_event_id}
    with bes_live.request(
        "GET", "/api/v1/queue/events", headers=headers, stream=True, timeout=10
    ) as answer:
        assert answer.status_code == 200
        lines = answer.iter_lines()
        head = [next(lines) for _ in range(3)]
        assert b"event: status" in head, head


def test_a_reader_is_told_why_it_may_not_write(lims_live: LiveLims) -> None:
    answer = lims_live.request("POST", "/workflows", json={}, headers=bearer(READER))
    assert answer.status_code == 403
    assert answer.json()["detail"] == "this token may read only; writing needs a writer token"
