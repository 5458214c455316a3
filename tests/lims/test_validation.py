"""Malformed input never gives a 5xx; every 4xx says what was wrong (and names the field)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from lims.client import LimsClient
from lims.client.records import DataCollectionGroup
from lims.service.embedded import EmbeddedLims, start_embedded
from tests.lims.helpers import post_concurrently
from tests.lims.mxpresse import seed_session

GROUP = "/proposals/mx1234/sessions/1/data-groups"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedLims]:
    """One LIMS for the whole module (bad requests change nothing), with a session and a group."""
    with start_embedded(tmp_path_factory.mktemp("lims")) as server:
        with LimsClient(server.url, server.token) as client:
            visit, _ = seed_session(client)
            group = client.add_data_group(visit, DataCollectionGroup(experimentType="Mesh"))
            assert group.id == 1
        yield server


def send(lims: EmbeddedLims, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {lims.token}", **kwargs.pop("headers", {})}
    return requests.request(method, f"{lims.url}{path}", headers=headers, timeout=10, **kwargs)


CASES = [
    # (method, path, request kwargs, status, text the answer must contain)
    (
        "POST",
        "/data-groups/1/data-collections",
        {"json": {"numberOfImages": "many"}},
        422,
        "body.numberOfImages",
    ),
    (
        "POST",
        "/data-groups/1/data-collections",
        {"json": {"numberOfImagez": 3}},
        422,
        "body.numberOfImagez: Extra inputs",
    ),
    (
        "POST",
        "/data-groups/1/data-collections",
        {"json": {"numberOfImages": 2**40}},
        422,
        "body.numberOfImages",
    ),
    (
        "POST",
        "/data-groups/1/data-collections",
        {"json": {"numberOfImages": -1}},
        422,
        "greater than or equal to 0",
    ),
    (
        "POST",
        "/data-groups/1/data-collections",
        {"data": '{"exposureTime": NaN}', "headers": {"Content-Type": "application/json"}},
        422,
        "body.exposureTime",
    ),
    (
        "POST",
        "/data-groups/1/data-collections",
        {"json": {"imagePrefix": "x" * 300}},
        422,
        "body.imagePrefix",
    ),
    (
        "POST",
        "/data-groups/1/data-collections",
        {"json": {"startTime": "yesterday"}},
        422,
        "body.startTime",
    ),
    (
        "POST",
        "/data-groups/1/data-collections",
        {"data": "{not json", "headers": {"Content-Type": "application/json"}},
        422,
        "JSON decode error",
    ),
    ("POST", "/data-groups/1/data-collections", {"json": [1, 2]}, 422, "valid dictionary"),
    ("POST", GROUP, {"json": {}}, 422, "body.experimentType: Field required"),
    ("POST", GROUP, {"json": {"experimentType": "Meshy"}}, 422, "'Mesh'"),
    (
        "POST",
        GROUP,
        {"json": {"experimentType": "OSC", "blSampleId": 77}},
        422,
        "body.blSampleId: no BLSample with id 77",
    ),
    (
        "POST",
        "/proposals/mx1234/sessions/9/data-groups",
        {"json": {"experimentType": "OSC"}},
        404,
        "session mx1234-9 not found",
    ),
    (
        "POST",
        "/proposals/1234/sessions/1/data-groups",
        {"json": {"experimentType": "OSC"}},
        422,
        "path.proposal",
    ),
    (
        "POST",
        "/data-groups/999/data-collections",
        {"json": {}},
        404,
        "DataCollectionGroup 999 not found",
    ),
    ("POST", "/data-groups/0/data-collections", {"json": {}}, 422, "path.dataCollectionGroupId"),
    ("PATCH", "/data-collections/99999999999", {"json": {}}, 422, "path.dataCollectionId"),
    (
        "PATCH",
        "/data-groups/1",
        {"json": {"workflowId": 5}},
        422,
        "body.workflowId: no Workflow with id 5",
    ),
    (
        "POST",
        "/data-collections/1/image-quality-indicators",
        {"json": [{"imageNumber": 1}]},
        404,
        "DataCollection 1 not found",
    ),
    (
        "POST",
        "/workflows",
        {"json": {"workflowType": "MXPressE"}, "headers": {"Idempotency-Key": "short"}},
        422,
        "header.Idempotency-Key",
    ),
    ("POST", "/robot-actions", {"json": {}}, 405, "Method Not Allowed"),
    ("GET", "/samples?limit=0", {}, 422, "query.limit"),
    ("GET", "/samples?limit=100000", {}, 422, "query.limit"),
    ("GET", "/samples?skip=-1", {}, 422, "query.skip"),
    ("GET", "/samples?nmae=x", {}, 422, "unknown filter 'nmae' for /samples; known:"),
    ("GET", "/samples?containerId=abc", {}, 422, "containerId must be an integer"),
    ("GET", "/samples/77", {}, 404, "BLSample 77 not found"),
    ("GET", "/nothing-here", {}, 404, "Not Found"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "text"), CASES)
def test_bad_requests_get_a_4xx_that_says_what_was_wrong(
    seeded: EmbeddedLims, method: str, path: str, kwargs: dict[str, Any], status: int, text: str
) -> None:
    answer = send(seeded, method, path, **kwargs)

    assert answer.status_code == status, answer.text
    assert text in answer.text


def test_an_idempotency_key_reused_for_another_record_is_refused(seeded: EmbeddedLims) -> None:
    key = {"Idempotency-Key": "key-0123456789"}
    before = send(seeded, "GET", "/workflows").json()["total"]
    first = send(seeded, "POST", "/workflows", json={"workflowType": "MXPressE"}, headers=key)
    again = send(seeded, "POST", "/workflows", json={"workflowType": "MXPressE"}, headers=key)
    other = send(seeded, "POST", "/workflows", json={"workflowType": "MeshScan"}, headers=key)

    assert first.status_code == 201 and again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 409 and "was used for another request" in other.json()["detail"]
    assert send(seeded, "GET", "/workflows").json()["total"] == before + 1


@pytest.fixture
def small_lims(tmp_path: Path) -> Iterator[EmbeddedLims]:
    with start_embedded(tmp_path / "small", max_body_bytes=4096) as server:
        yield server


def test_a_body_above_the_limit_gets_413(small_lims: EmbeddedLims) -> None:
    big = {"workflowType": "MXPressE", "comments": "x" * 3900, "workflowTitle": "y" * 200}
    declared = send(small_lims, "POST", "/workflows", json=big)
    streamed = send(
        small_lims,
        "POST",
        "/workflows",
        data=iter([b'{"workflowType": "MXPressE", "comments": "', b"x" * 5000, b'"}']),
        headers={"Content-Type": "application/json"},
    )

    assert declared.status_code == 413 and "exceeds the limit of 4096 bytes" in declared.text
    assert streamed.status_code == 413
    assert send(small_lims, "GET", "/workflows").json()["total"] == 0


def test_too_many_indicators_in_one_bulk_post_are_refused(
    client: LimsClient, lims: EmbeddedLims
) -> None:
    seeded_path = "/data-collections/1/image-quality-indicators"
    answer = send(lims, "POST", seeded_path, json=[{"imageNumber": i} for i in range(10_001)])
    assert answer.status_code == 422 and "at most 10000" in answer.text


def test_concurrent_retries_of_one_post_create_one_record(lims: EmbeddedLims) -> None:
    answers = post_concurrently(lims, "/workflows", {"workflowType": "MeshScan"}, copies=8)

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["workflowId"] for a in answers}) == 1
    assert send(lims, "GET", "/workflows").json()["total"] == 1


def test_idempotency_keys_older_than_the_retention_are_forgotten(tmp_path: Path) -> None:
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from lims.service.app import KEY_RETENTION, forget_old_keys
    from lims.service.db import make_engine
    from lims.service.models import IdempotencyKey, utcnow

    engine = make_engine(f"sqlite:///{tmp_path / 'keys.sqlite'}")
    ages = {"old-key-000": KEY_RETENTION + timedelta(days=1), "new-key-000": timedelta(days=1)}
    with Session(engine) as db:
        for key, age in ages.items():
            db.add(
                IdempotencyKey(
                    key=key,
                    fingerprint="f",
                    request="POST /workflows",
                    statusCode=201,
                    response={"workflowId": 1},
                    recordTimeStamp=utcnow() - age,
                )
            )
        db.commit()
    assert forget_old_keys(engine) == 1
    with Session(engine) as db:
        assert [k.key for k in db.query(IdempotencyKey)] == ["new-key-000"]
    engine.dispose()
