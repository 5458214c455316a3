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
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine, delete
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from lims.service import (
    routes_collections,
    routes_processing,
    routes_read,
    routes_sessions,
    routes_workflows,
)
from lims.service.auth import PUBLIC_PATHS, READ_METHODS, BearerAuth, BodyLimit
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
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _conflict)
    app.add_exception_handler(DataError, _bad_value)
    app.add_exception_handler(OperationalError, _database_down)
    # Starlette runs the last added middleware first: auth, then the body limit.
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
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


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's ``detail`` list and a one-line ``message`` naming each field."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {key: value for key, value in error.items() if key not in ("input", "url")}
        for error in exc.errors()
    ]
    message = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
        for error in errors
    )
    return JSONResponse({"detail": jsonable_encoder(errors), "message": message}, status_code=422)


BODY_PARSE_ERROR = "There was an error parsing the body"
"""FastAPI's words for a body it could not decode (not UTF-8, say): replaced by the reason."""


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer, with the reason for an unreadable body and the route for an unknown
    path or method (Starlette says only "Not Found" / "Method Not Allowed")."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:
        reason = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        return JSONResponse({"detail": f"the body cannot be read as JSON{reason}"}, status_code=400)
    if exc.status_code == 405 and exc.detail == "Method Not Allowed":
        # Starlette allows the methods of the first route of the path only; a path served by
        # two routes (GET and PATCH) allows both
        allowed = _allowed_methods(request, (exc.headers or {}).get("Allow", ""))
        where = f"{request.method} {request.url.path[:200]}"
        return JSONResponse(
            {"detail": f"Method Not Allowed: {where}; allowed: {', '.join(allowed)}"},
            status_code=405,
            headers={"Allow": ", ".join(allowed)},
        )
    if exc.status_code == 404 and exc.detail == "Not Found":
        where = f"{request.method} {request.url.path[:200]}"
        exc = StarletteHTTPException(
            exc.status_code, f"{exc.detail}: {where} (the routes are listed at /docs)", exc.headers
        )
    return await http_exception_handler(request, exc)


def _allowed_methods(request: Request, allow: str) -> list[str]:
    """The methods of every route of the request's path (and ``allow``, Starlette's)."""
    methods = {method.strip() for method in allow.split(",") if method.strip()}
    for route in _routes(request.app):
        path, route_methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path and route_methods and compile_path(path)[0].match(request.scope["path"]):
            methods |= set(route_methods)
    return sorted(methods)


def _routes(app: FastAPI) -> list[Any]:
    """Every route, those of included routers too (FastAPI >= 0.16x keeps them apart)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are in the app's table
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


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


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "what was wrong: ``detail`` (text, or one item per field with its "
    "``loc`` and ``msg``) and, for a request FastAPI could not read, a one-line ``message``",
    "properties": {
        "detail": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "message": {"type": "string"},
    },
    "required": ["detail"],
}


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


def without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {type: null}]`` -> X (FastAPI's spelling of an optional parameter)."""
    choices = schema.get("anyOf")
    if not isinstance(choices, list):
        return schema
    kept = [choice for choice in choices if choice.get("type") != "null"]
    if len(kept) != 1 or len(kept) == len(choices):
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**kept[0], **rest}
