"""The LIMS web app: ISPyB-like REST over its own database.

``create_app(config)`` wires the database, the bearer-token and body-size middleware, the
error answers (every 4xx says what was wrong; malformed input never gives a 5xx) and the
routes. OpenAPI is served at ``/openapi.json``, the docs at ``/docs``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, delete
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from lims.http_errors import ERROR_SCHEMA, add_error_handlers, without_null
from lims.service import (
    routes_collections,
    routes_processing,
    routes_read,
    routes_sessions,
    routes_workflows,
)
from lims.service.auth import PUBLIC_PATHS, READ_METHODS, BearerAuth, body_limit
from lims.service.config import ServiceConfig
from lims.service.db import make_engine, session_factory
from lims.service.models import IdempotencyKey, utcnow

log = logging.getLogger(__name__)
API_VERSION = "1.0"
KEY_RETENTION = timedelta(days=30)
"""Idempotency keys are kept this long: a POST retried later than that (an outbox that
waited a month) could be written twice."""


def create_app(config: ServiceConfig) -> FastAPI:
    engine = make_engine(config.database_url, config.database_schema)
    forget_old_keys(engine)
    app = FastAPI(
        title="mxbes LIMS",
        version=API_VERSION,
        description="ISPyB-like LIMS of the mxbes Beamline Expert System: ISPyB table and "
        "column names, resource paths, camelCase JSON. Send `Authorization: Bearer <token>`; "
        "POST answers the new id; send an `Idempotency-Key` so that a retried POST writes "
        "nothing twice.",
    )
    app.state.config = config
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    for module in (
        routes_read,
        routes_sessions,
        routes_workflows,
        routes_collections,
        routes_processing,
    ):
        app.include_router(module.router)
    add_error_handlers(app)
    app.add_exception_handler(IntegrityError, _conflict)
    app.add_exception_handler(DataError, _bad_value)
    app.add_exception_handler(OperationalError, _database_down)
    # Starlette runs the last added middleware first: auth, then the body limit.
    app.add_middleware(body_limit, max_bytes=config.max_body_bytes)
    app.add_middleware(BearerAuth, tokens=config.tokens)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def forget_old_keys(engine: Engine) -> int:
    """Delete idempotency keys older than KEY_RETENTION; answers how many."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(IdempotencyKey).where(IdempotencyKey.recordTimeStamp < utcnow() - KEY_RETENTION)
        )
    return int(result.rowcount or 0)


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    log.info("integrity error: %s", exc)
    return JSONResponse(
        {"detail": f"the record conflicts with the stored ones: {_first_line(exc)}"},
        status_code=409,
    )


async def _bad_value(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": f"the database refused a value: {_first_line(exc)}"}, status_code=422
    )


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    log.error("database error: %s", exc)
    return JSONResponse(
        {"detail": "the LIMS database is unavailable; retry later"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def _first_line(exc: Exception) -> str:
    original = getattr(exc, "orig", None) or exc
    return str(original).splitlines()[0][:300]


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        schema["security"] = [{"bearer": []}]
        schema["components"].setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                _document(path, method.upper(), operation)
        app.openapi_schema = schema
    return app.openapi_schema


def _document(path: str, method: str, operation: dict[str, Any]) -> None:
    """The answers every operation may give besides its own: auth, body limit, validation,
    unknown records, conflicts, database down; parameters that may be left out are
    documented without FastAPI's ``null`` alternative (a query or header cannot be null)."""
    errors: dict[str, str] = {}
    if operation.get("parameters") or operation.get("requestBody"):
        errors["422"] = "a bad parameter or body; ``detail`` names each field"
    if path in PUBLIC_PATHS:
        operation["security"] = []
    else:
        errors["401"] = "no bearer token, or an unknown one"
        errors["503"] = "the database is unavailable; retry later"
    if method not in READ_METHODS:
        errors |= {
            "400": "the body cannot be read (not UTF-8 JSON) or a bad Content-Length",
            "403": "a reader token may not write",
            "409": "the record conflicts with stored ones, or an Idempotency-Key reused",
            "413": "the body is above the limit (max_body_bytes)",
        }
    if "{" in path:
        errors["404"] = "a record of the path does not exist"
    responses = operation.setdefault("responses", {})
    for status, description in errors.items():
        answer = responses.setdefault(status, {"description": description})
        answer["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for parameter in operation.get("parameters", []):
        parameter["schema"] = without_null(parameter.get("schema", {}))
