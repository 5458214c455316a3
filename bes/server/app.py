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
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

import bes
from bes.server import bes_protocol, events_stream, monitor_routes, queue_routes
from bes.server.auth import PROTECTED_PREFIX, BearerAuth, BodyLimit

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
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _internal_error)
    # Starlette runs the last added middleware first: auth, then the body limit.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(BearerAuth, token=token)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's ``detail`` list and a one-line ``message`` naming each field."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {key: value for key, value in error.items() if key not in ("input", "url", "ctx")}
        for error in exc.errors()
    ]
    message = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
        for error in errors
    )
    return JSONResponse({"detail": jsonable_encoder(errors), "message": message}, status_code=422)


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
        for path, operations in schema.get("paths", {}).items():
            if path.startswith(PROTECTED_PREFIX):
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema
