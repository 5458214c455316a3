"""Error answers shared by the LIMS service and the expert system's REST server (both
FastAPI): 422 with a one-line message naming each field, 400 with the reason for a body that
cannot be read, 404 and 405 naming the method and path (and every allowed method).

``lims`` stands alone, so the module lives here; ``bes.server`` imports it (``lims.service``
stays out of ``bes``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path


def add_error_handlers(
    app: FastAPI, *, hidden_error_keys: Iterable[str] = ("input", "url")
) -> None:
    """Install the shared 422 and HTTP error answers on ``app``; ``hidden_error_keys``: keys
    of FastAPI's validation errors left out of the 422 ``detail``."""
    app.add_exception_handler(RequestValidationError, invalid_request(hidden_error_keys))
    app.add_exception_handler(StarletteHTTPException, http_error)


def invalid_request(
    hidden_keys: Iterable[str],
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """422 with FastAPI's ``detail`` list and a one-line ``message`` naming each field."""
    hidden = frozenset(hidden_keys)

    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {key: value for key, value in error.items() if key not in hidden}
            for error in exc.errors()
        ]
        message = "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in errors
        )
        return JSONResponse(
            {"detail": jsonable_encoder(errors), "message": message}, status_code=422
        )

    return handler


BODY_PARSE_ERROR = "There was an error parsing the body"
"""FastAPI's words for a body it could not decode (not UTF-8, say): replaced by the reason."""


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer, with the reason for an unreadable body and the route for an unknown
    path or method (Starlette says only "Not Found" / "Method Not Allowed")."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:
        reason = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        return JSONResponse({"detail": f"the body cannot be read as JSON{reason}"}, status_code=400)
    if exc.status_code == 405 and exc.detail == "Method Not Allowed":
        # Starlette allows the methods of the first route of the path only; a path served by
        # two routes (GET and PATCH) allows both
        allowed = allowed_methods(request, (exc.headers or {}).get("Allow", ""))
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


def allowed_methods(request: Request, allow: str) -> list[str]:
    """The methods of every route of the request's path (and ``allow``, Starlette's)."""
    methods = {method.strip() for method in allow.split(",") if method.strip()}
    for route in app_routes(request.app):
        path, route_methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path and route_methods and compile_path(path)[0].match(request.scope["path"]):
            methods |= set(route_methods)
    return sorted(methods)


def app_routes(app: FastAPI) -> list[Any]:
    """Every route, those of included routers too (FastAPI >= 0.16x keeps them apart)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are in the app's table
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


# -- OpenAPI: the error answers and optional parameters as both apps document them --

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
