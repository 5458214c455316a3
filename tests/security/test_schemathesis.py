"""Schemathesis against both OpenAPI specs, in-process (ASGI), bounded and repeatable
(``tests/security/fuzz.py``: 16 positive and 8 negative requests per operation,
derandomized): no answer is a 5xx, every answer has a documented status, content type and
body, and every request that breaks the schema is refused with a 4xx. Without a token, every
protected operation answers 401.

The BES server runs over a station whose dewar is empty and whose goniometer holds no pin.
Two kinds of operation would start work on the beamline and are fuzzed apart:

- ``POST /RUN/{workflow}``: fuzzed for each registered recipe while the test holds the
  beamline lock (as a queue sample would): a body that passes every check is answered 409
  "beamline busy" and starts nothing, one that does not must get a 4xx. No run may start.
- ``POST /api/v1/queue/start`` and ``/resume``: they would run the entries the fuzzing of
  ``POST /entries`` queued, so they are fuzzed last, once the queue has been emptied: a
  start then finds nothing to run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis import Case, GenerationMode
from schemathesis.schemas import APIOperation, BaseSchema

from bes.engine.recipes import list_recipes
from bes.server.auth import PROTECTED_PREFIX
from bes.server.server import BesServer
from lims.service.app import create_app
from lims.service.auth import PUBLIC_PATHS
from lims.service.config import DATABASE_FILE, ServiceConfig, sqlite_url
from tests.security.conftest import (
    READER,
    TOKEN,
    WRITER,
    empty_station,
    route_table,
    seeded_lims,
)
from tests.security.fuzz import Report, fuzz, operations

BOTH = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
RUN = "POST /RUN/{workflow_name}"
QUEUE_STARTS = ("POST /api/v1/queue/start", "POST /api/v1/queue/resume")
NO_TOKEN_EXAMPLES = 3


def negatable(operation: APIOperation) -> bool:
    """Something of the request can break the schema (a parameter or a body)."""
    return bool(operation.path_parameters or operation.query or operation.headers or operation.body)


def routes_of(app: FastAPI) -> set[str]:
    """``METHOD /path`` of every route the app serves and documents, from its route table."""
    return {
        f"{method} {route.path}"
        for route in route_table(app)
        if getattr(route, "include_in_schema", True)
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    }


# -- the LIMS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lims_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The LIMS app (in-process) over a database with a record of every table."""
    folder = tmp_path_factory.mktemp("lims-fuzz")
    with seeded_lims(folder):
        pass
    config = ServiceConfig(
        database_url=sqlite_url(folder / DATABASE_FILE),
        tokens={WRITER: "writer", READER: "reader"},
    )
    app = create_app(config)
    yield app
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def lims_schema(lims_app: FastAPI) -> BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", lims_app)


def test_the_lims_spec_covers_every_route(lims_app: FastAPI, lims_schema: BaseSchema) -> None:
    labels = {operation.label for operation in operations(lims_schema)}
    assert labels == routes_of(lims_app)
    assert len(labels) > 80


def test_fuzzing_the_lims_finds_no_server_error_and_nothing_undocumented(
    lims_schema: BaseSchema,
) -> None:
    report = Report()
    for mode in BOTH:
        for operation in operations(lims_schema):
            if mode is GenerationMode.NEGATIVE and not negatable(operation):
                continue
            report.add(fuzz(operation, mode, token=WRITER))
    print(f"LIMS: {report.summary()}")
    assert not report.server_errors, report.problems()
    assert not report.failures, report.problems()
    assert report.cases > 1500
    assert len(report.statuses) > 4  # successes and refusals of several kinds


def unauthorised(case: Case, response: Any) -> str | None:
    """A request without a token must get a 401 that says the bearer token is missing."""
    if response.status_code != 401:
        return f"answered {response.status_code} without a token: {response.text[:200]}"
    if "missing bearer token" not in response.text:
        return f"the 401 does not say what is missing: {response.text[:200]}"
    return None


def without_a_token(protected: list[APIOperation]) -> Report:
    """Each operation fuzzed with valid requests and no token, expecting ``unauthorised``."""
    report = Report()
    for operation in protected:
        report.add(
            fuzz(
                operation,
                GenerationMode.POSITIVE,
                token=None,
                max_examples=NO_TOKEN_EXAMPLES,
                checks=[],
                expect=unauthorised,
            )
        )
    return report


def test_without_a_token_every_protected_lims_operation_answers_401(
    lims_schema: BaseSchema,
) -> None:
    protected = [op for op in operations(lims_schema) if op.path not in PUBLIC_PATHS]
    report = without_a_token(protected)
    print(f"LIMS without a token: {report.summary()}")
    assert not report.failures, report.problems()
    assert set(report.statuses) == {401}


# -- the BES server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bes_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BesServer]:
    """The BES server's app (in-process, not listening) over a station with an empty dewar
    and no pin mounted."""
    with empty_station(tmp_path_factory.mktemp("bes-fuzz")) as station:
        server = BesServer(station, TOKEN)
        try:
            yield server
        finally:
            server.close()


@pytest.fixture(scope="module")
def bes_schema(bes_server: BesServer) -> BaseSchema:
    schema = schemathesis.openapi.from_asgi("/openapi.json", bes_server.app)
    # the event stream never ends: its first event (the queue's status) is enough
    schema.config.max_stream_events = 1
    return schema


def test_the_bes_spec_covers_every_route(bes_server: BesServer, bes_schema: BaseSchema) -> None:
    labels = {operation.label for operation in operations(bes_schema)}
    assert labels == routes_of(bes_server.app)
    assert {RUN, *QUEUE_STARTS} <= labels


def test_fuzzing_the_bes_server_finds_no_server_error_and_starts_nothing(
    bes_server: BesServer, bes_schema: BaseSchema
) -> None:
    started = time.monotonic()
    everything = operations(bes_schema)
    report = Report()

    # 1. every operation but those that take the beamline
    for mode in BOTH:
        for operation in everything:
            if operation.label in (RUN, *QUEUE_STARTS):
                continue
            if mode is GenerationMode.NEGATIVE and not negatable(operation):
                continue
            report.add(fuzz(operation, mode, token=TOKEN))

    # 2. POST /RUN for each recipe, the beamline held: nothing may start
    run = next(op for op in everything if op.label == RUN)
    names = [path.stem for path in list_recipes()]

    def refused(case: Case, response: Any) -> str | None:
        if response.status_code == 200:
            return f"started a run with the beamline held: {response.text}"
        return None

    lock = bes_server.queue.beamline_lock
    assert lock.acquire(timeout=10)
    try:
        for name in [*names, "MXPressE"]:
            for mode in BOTH:
                report.add(
                    fuzz(
                        run,
                        mode,
                        max_examples=8,
                        expect=refused,
                        path_parameters={"workflow_name": name},
                    )
                )
    finally:
        lock.release()

    # 3. start and resume, the queue emptied first: there is nothing to run
    manager = bes_server.queue.manager
    for entry in manager.store.list():
        manager.remove(entry.id)
    for operation in everything:
        if operation.label in QUEUE_STARTS:
            for mode in BOTH:
                report.add(fuzz(operation, mode, token=TOKEN))

    print(f"BES server: {report.summary()} in {time.monotonic() - started:.1f} s")
    assert not report.server_errors, report.problems()
    assert not report.failures, report.problems()
    assert report.operations == {op.label for op in everything}
    assert bes_server.runs.list() == [], "a fuzzed request started a BES run"
    assert bes_server.queue.reports == {}, "a fuzzed request ran a queue entry"


def test_without_a_token_every_queue_and_monitoring_operation_answers_401(
    bes_schema: BaseSchema,
) -> None:
    protected = [op for op in operations(bes_schema) if op.path.startswith(PROTECTED_PREFIX)]
    report = without_a_token(protected)
    print(f"BES without a token: {report.summary()}")
    assert len(protected) >= 19
    assert not report.failures, report.problems()
    assert set(report.statuses) == {401}


def test_the_bes_protocol_routes_are_open_and_documented_so(bes_schema: BaseSchema) -> None:
    """MXCuBE sends no credentials: the BES protocol is open (docs/security.md, beamline
    network only), and the spec says so (no security requirement)."""
    spec: dict[str, Any] = bes_schema.raw_schema
    for path, methods in spec["paths"].items():
        for operation in methods.values():
            if path.startswith(PROTECTED_PREFIX):
                assert operation["security"] == [{"bearer": []}], path
            else:
                assert path.split("/")[1] in ("RUN", "STATUS", "ABORT"), path
                assert not operation.get("security"), path
