"""Bearer-token auth and the request body limit, as ASGI middleware (the body limit is
``lims.http_limits.BodyLimit``, shared with the expert system's REST server, made by
:func:`body_limit` with the LIMS's answers).

Both run before FastAPI parses anything: a request with a wrong token gets 401 whatever its
body, so nothing is written and nothing about the API's validation leaks. Reads (GET, HEAD)
need a reader or writer token, writes a writer token. ``/health`` and the OpenAPI pages are
public.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from lims import http_limits
from lims.http_limits import READ_METHODS, header
from lims.tokens import Role

__all__ = ["PUBLIC_PATHS", "READ_METHODS", "BearerAuth", "body_limit"]

PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
"""A refused body up to this size is read (and dropped) so the client gets the answer
instead of a broken pipe; a larger one is left unread and the connection closed."""
_refuse = functools.partial(http_limits.refuse, drain_limit_bytes=DRAIN_LIMIT_BYTES)


class BearerAuth:
    def __init__(self, app: ASGIApp, tokens: Mapping[str, Role]) -> None:
        self.app = app
        self.tokens = [(token.encode(), role) for token, role in tokens.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        role = self._role(header(scope, b"authorization"))
        if role is None:
            detail = (
                "missing bearer token: send 'Authorization: Bearer <token>'"
                if header(scope, b"authorization") is None
                else "unknown bearer token"
            )
            await _refuse(scope, receive, send, 401, detail, {"WWW-Authenticate": "Bearer"})
            return
        if scope["method"] not in READ_METHODS and role != "writer":
            await _refuse(
                scope, receive, send, 403, "this token may read only; writing needs a writer token"
            )
            return
        scope.setdefault("state", {})["lims_role"] = role
        await self.app(scope, receive, send)

    def _role(self, authorization: bytes | None) -> Role | None:
        if authorization is None:
            return None
        scheme, _, presented = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not presented:
            return None
        found: Role | None = None
        for token, role in self.tokens:  # compare with every token: constant time
            if hmac.compare_digest(token, presented.strip()):
                found = role
        return found


def body_limit(app: ASGIApp, max_bytes: int) -> http_limits.BodyLimit:
    """413 for a request body above ``max_bytes``, declared (Content-Length) or streamed,
    with a JSON ``detail`` that names a declared size and says what to do."""
    return http_limits.BodyLimit(
        app,
        max_bytes,
        drain_limit_bytes=DRAIN_LIMIT_BYTES,
        size_in_detail=True,
        advice="; send less per call",
    )
