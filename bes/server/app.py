"""The expert system's web app: the BES protocol for MXCuBE-like clients (plain text, open),
the queue and monitoring API under ``/api/v1`` (JSON, bearer token) and its event stream.

``create_app`` wires the routes, the token and body-size guards and the error answers (every
4xx says what was wrong; malformed input never gives a 5xx). OpenAPI at ``/openapi.json``,
docs at ``/docs``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

import bes
from bes.server import bes_protocol, events_stream, monitor_routes, queue_routes
from bes.server.auth import PROTECTED_PREFIX, BearerAuth, body_limit
from lims.http_errors import ERROR_SCHEMA, add_error_handlers, without_null

if TYPE_CHECKING:
    from bes.server.events_stream import EventHub
    from bes.server.runs import BesRuns
    from bes.station.queue_runner import StationQueue

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
ABORT_WAIT_S = 5.0


def create_app(
    queue: StationQueue,
    runs: BesRuns,
    hub: EventHub,
    token: str,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    abort_wait_s: float = ABORT_WAIT_S,
) -> FastAPI:
    """The app over ``queue`` (and its station), the BES runs and the event hub; ``token``:
    the bearer token of ``/api/``; ``abort_wait_s``: how long ``GET /ABORT`` waits for the
    run to stop before it answers."""
    app = FastAPI(
        title="mxbes",
        version=bes.__version__,
        description="Beamline Expert System for MX. `/RUN`, `/STATUS`, `/ABORT`: the BES "
        "protocol MXCuBE speaks (plain text, no credentials: beamline network only). "
        "`/api/v1/...`: the sample queue and monitoring (JSON; send "
        "`Authorization: Bearer <token>`).",
    )
    app.state.queue = queue
    app.state.runs = runs
    app.state.hub = hub
    app.state.abort_wait_s = abort_wait_s
    for module in (bes_protocol, queue_routes, events_stream, monitor_routes):
        app.include_router(module.router)
    add_error_handlers(app, hidden_error_keys=("input", "url", "ctx"))
    app.add_exception_handler(Exception, _internal_error)
    # Starlette runs the last added middleware first: auth, then the body limit.
    app.add_middleware(body_limit, max_bytes=max_body_bytes)
    app.add_middleware(BearerAuth, token=token)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        schema["components"].setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                _document(path, method.upper(), operation)
        app.openapi_schema = schema
    return app.openapi_schema


_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_TEXT_ERROR = {"text/plain": {"schema": {"type": "string"}}}


def _document(path: str, method: str, operation: dict[str, Any]) -> None:
    """The answers an operation may give besides its own (the token, the body limit,
    validation, unknown ids, the queue's state); parameters that may be left out are
    documented without FastAPI's ``null`` alternative (a query or header cannot be null).
    The BES protocol answers its errors as plain text."""
    errors: dict[str, str] = {}
    if operation.get("parameters") or operation.get("requestBody"):
        errors["422"] = "a bad parameter or body; ``detail`` names each field"
    if method not in ("GET", "HEAD", "OPTIONS"):
        errors["400"] = "the body cannot be read (not UTF-8 JSON) or a bad Content-Length"
        errors["413"] = "the body is above the limit"
    if "{" in path:
        errors["404"] = "no such entry, run or workflow"
    if path.startswith(PROTECTED_PREFIX):
        operation["security"] = [{"bearer": []}]
        errors["401"] = "no bearer token, or a wrong one"
        if method in ("POST", "DELETE"):
            errors["409"] = "the queue's state does not allow it now, or the beamline is busy"
    responses = operation.setdefault("responses", {})
    protocol = not path.startswith(PROTECTED_PREFIX)
    for status, description in errors.items():
        responses.setdefault(status, {"description": description})
    for status, answer in responses.items():
        if status.startswith("4"):
            answer["content"] = _TEXT_ERROR if protocol else _JSON_ERROR
    for parameter in operation.get("parameters", []):
        parameter["schema"] = without_null(parameter.get("schema", {}))
