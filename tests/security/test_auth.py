"""Who may call what: every LIMS write route refuses without a token, with a wrong one and with
a reader token; every queue and monitoring route refuses without the API token; the BES
protocol is open (MXCuBE sends no credentials). The routes are read from the apps' route
tables, so a route added later is covered without touching these tests."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from bes.server.auth import PROTECTED_PREFIX, load_or_create_token
from lims.service.app import create_app
from lims.service.auth import PUBLIC_PATHS, READ_METHODS
from lims.service.config import ServiceConfig
from lims.tokens import TOKENS_FILE, load_or_create_tokens
from tests.security.conftest import (
    READER,
    TOKEN,
    WRITER,
    LiveBes,
    LiveLims,
    bearer,
    route_table,
)

PATH_VALUES = {"proposal": "mx1234", "visit": "1"}
"""Path parameters that are not ids; every id is 1 (each table has a record 1)."""


def concrete(path: str) -> str:
    """``/data-groups/{dataCollectionGroupId}`` -> ``/data-groups/1``."""
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            part = PATH_VALUES.get(part[1:-1], "1")
        parts.append(part)
    return "/".join(parts)


def routes(app: Any, keep: Any) -> list[tuple[str, str]]:
    """(method, path template) of the app's routes that ``keep(method, path)``."""
    found = {
        (method, route.path)
        for route in route_table(app)
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD" and keep(method, route.path)
    }
    return sorted(found)


REFUSALS = [
    ({}, 401, "missing bearer token: send 'Authorization: Bearer <token>'"),
    ({"Authorization": "Bearer not-a-token-of-this-lims-0123"}, 401, "unknown bearer token"),
    ({"Authorization": f"Basic {WRITER}"}, 401, "unknown bearer token"),
    ({"Authorization": "Bearer"}, 401, "unknown bearer token"),
    (bearer(READER), 403, "this token may read only; writing needs a writer token"),
]


# -- the LIMS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lims_routes() -> Iterator[FastAPI]:
    """The LIMS app as its factory makes it (an in-memory database): its route table."""
    app = create_app(ServiceConfig(database_url="sqlite://", tokens={WRITER: "writer"}))
    yield app
    app.state.engine.dispose()


def test_every_lims_write_route_refuses_without_a_writer_token(
    lims_live: LiveLims, lims_routes: FastAPI
) -> None:
    writes = routes(lims_routes, lambda method, path: method not in READ_METHODS)
    assert len(writes) >= 30
    assert ("POST", "/data-collections/{dataCollectionId}/image-quality-indicators") in writes
    assert ("PATCH", "/samples/{blSampleId}") in writes
    before = lims_live.request("GET", "/counts", headers=bearer(READER)).json()
    for method, template in writes:
        path = concrete(template)
        for headers, status, detail in REFUSALS:
            answer = lims_live.request(method, path, json={}, headers=headers)
            where = f"{method} {path} with {headers}"
            assert answer.status_code == status, f"{where}: {answer.status_code} {answer.text}"
            assert answer.json()["detail"] == detail, where
            if status == 401:
                assert answer.headers["WWW-Authenticate"] == "Bearer", where
    assert lims_live.request("GET", "/counts", headers=bearer(READER)).json() == before
    # the writer token gets past the guard, to the route's own answer
    for method, template in writes:
        answer = lims_live.request(method, concrete(template), json={}, headers=bearer(WRITER))
        assert answer.status_code not in (401, 403), f"{method} {template}: {answer.text}"


def test_every_lims_read_route_needs_a_token_and_takes_a_reader_one(
    lims_live: LiveLims, lims_routes: FastAPI
) -> None:
    reads = routes(
        lims_routes, lambda method, path: method in READ_METHODS and path not in PUBLIC_PATHS
    )
    assert len(reads) >= 50
    for method, template in reads:
        path = concrete(template)
        answer = lims_live.request(method, path)
        assert answer.status_code == 401, f"{method} {path}: {answer.status_code}"
        assert "missing bearer token" in answer.json()["detail"]
        answer = lims_live.request(method, path, headers=bearer(READER))
        assert answer.status_code == 200, f"{method} {path}: {answer.status_code} {answer.text}"


def test_the_public_lims_paths_are_only_health_and_the_docs(lims_live: LiveLims) -> None:
    assert {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"} == PUBLIC_PATHS
    assert lims_live.request("GET", "/health").json() == {"status": "ok"}
    spec = lims_live.request("GET", "/openapi.json").json()
    assert spec["security"] == [{"bearer": []}]
    assert spec["paths"]["/health"]["get"]["security"] == []
    # a public path serves nothing but itself
    answer = lims_live.request("POST", "/health", json={})
    assert answer.status_code == 405
    assert answer.json()["detail"] == "Method Not Allowed: POST /health; allowed: GET"


def test_no_lims_answer_shows_a_token(lims_live: LiveLims) -> None:
    for path in ("/health", "/openapi.json", "/counts", "/sessions", "/proposals/1"):
        text = lims_live.request("GET", path, headers=bearer(READER)).text
        assert WRITER not in text and READER not in text, path


# -- the BES server -------------------------------------------------------------------------


def test_every_queue_and_monitoring_route_refuses_without_the_token(bes_live: LiveBes) -> None:
    protected = routes(bes_live.server.app, lambda method, path: path.startswith(PROTECTED_PREFIX))
    assert len(protected) >= 19
    assert ("GET", "/api/v1/queue/events") in protected
    refusals = [
        ({}, "missing bearer token: send 'Authorization: Bearer <token>'"),
        ({"Authorization": "Bearer not-the-token-0123456789"}, "wrong bearer token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "wrong bearer token"),
        ({"Authorization": f"Basic {TOKEN}"}, "unsupported authorization scheme"),
        ({"Authorization": f"Token {TOKEN}"}, "unsupported authorization scheme"),
    ]
    body = {"location": "1:1", "recipe": "beamline_check"}
    for method, template in protected:
        path = concrete(template)
        for headers, detail in refusals:
            answer = bes_live.request(method, path, json=body, headers=headers, timeout=10)
            where = f"{method} {path} with {headers}"
            assert answer.status_code == 401, f"{where}: {answer.status_code} {answer.text}"
            assert answer.json()["detail"].startswith(detail), where
            assert answer.headers["WWW-Authenticate"] == "Bearer", where
    # nothing was queued, started or changed
    status = bes_live.request("GET", "/api/v1/queue/status", headers=bearer(TOKEN)).json()
    assert status["state"] == "IDLE"
    assert bes_live.server.queue.manager.store.list() == []
    assert bes_live.server.runs.list() == []


def test_the_bes_protocol_takes_no_credentials(bes_live: LiveBes) -> None:
    """MXCuBE sends none: /RUN, /STATUS and /ABORT are open, for the beamline network only
    (docs/security.md). Their answers never show the API token."""
    answer = bes_live.request("GET", "/STATUS/0123456789abcdef")
    assert answer.status_code == 404
    assert "unknown request id" in answer.text
    answer = bes_live.request("POST", "/RUN/mxpresse", json={})
    assert answer.status_code == 409  # refused for want of a pin, not for want of a token
    assert "no sample is mounted" in answer.text
    for path in ("/openapi.json", "/STATUS/x"):
        assert TOKEN not in bes_live.request("GET", path).text
    for path in ("/api/v1/station", "/api/v1/queue/status", "/api/v1/runs"):
        assert TOKEN not in bes_live.request("GET", path, headers=bearer(TOKEN)).text


# -- the token files ------------------------------------------------------------------------


def test_token_files_are_made_once_and_readable_by_their_owner_only(tmp_path: Path) -> None:
    api = tmp_path / "bes" / "api-token"
    token = load_or_create_token(api)
    assert len(token) >= 16
    assert stat.S_IMODE(api.stat().st_mode) == 0o600
    assert load_or_create_token(api) == token  # read again, not made anew

    tokens = tmp_path / TOKENS_FILE
    roles = load_or_create_tokens(tokens)
    assert sorted(roles.values()) == ["reader", "writer"]
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert load_or_create_tokens(tokens) == roles


@pytest.mark.parametrize("text", ["short", "has a space in it 0123456789", ""])
def test_a_weak_api_token_is_refused(tmp_path: Path, text: str) -> None:
    from bes.server.auth import TokenError

    path = tmp_path / "api-token"
    path.write_text(text)
    os.chmod(path, 0o600)
    with pytest.raises(TokenError, match="at least 16 characters"):
        load_or_create_token(path)
