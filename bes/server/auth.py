"""The API token and the two guards in front of the app (ASGI middleware, so they answer before
anything parses the request):

- :class:`BearerAuth`: paths under ``/api/`` need ``Authorization: Bearer <token>`` (401 with
  ``WWW-Authenticate: Bearer`` otherwise). The BES protocol (``/RUN``, ``/STATUS``,
  ``/ABORT``) stays open: MXCuBE's client sends no credentials, so it is meant for the
  beamline network only (docs/server.md).
- :func:`body_limit`: a request body above ``max_bytes`` (declared or streamed) gets 413
  (plain text on the BES protocol's routes, JSON ``detail`` under ``/api/``): the LIMS's
  middleware, ``lims.http_limits.BodyLimit``, with these answers.

The token comes from ``BES_API_TOKEN`` or from a token file (``DATA_DIR/api-token`` unless
told otherwise), made on the first start and readable by its owner only.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Mapping
from pathlib import Path

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from lims import http_limits
from lims.http_limits import header
from lims.tokens import new_token, read_or_create_token_file

TOKEN_FILE = "api-token"
TOKEN_ENV = "BES_API_TOKEN"
MIN_TOKEN_LENGTH = 16
PROTECTED_PREFIX = "/api/"
DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
"""A refused body up to this size is read and dropped, so the client gets the answer rather
than a broken pipe; a larger one is left unread."""


class TokenError(ValueError):
    """An API token that cannot be used; the message says why and what to do."""


def load_or_create_token(path: Path) -> str:
    """The token in ``path``; a new one is written there (mode 600) when it is missing."""
    text = read_or_create_token_file(path, lambda: new_token() + "\n")
    return check_token(text.strip(), f"token file {path}")


def check_token(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise TokenError(
            f"{where}: the API token must be at least {MIN_TOKEN_LENGTH} characters without spaces"
        )
    return token


class BearerAuth:
    """401 for a request under ``/api/`` without the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        authorization = header(scope, b"authorization")
        if authorization is None:
            detail = "missing bearer token: send 'Authorization: Bearer <token>'"
        else:
            scheme, _, presented = authorization.partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(self.token, presented.strip()):
                await self.app(scope, receive, send)
                return
            detail = (
                "wrong bearer token"
                if scheme.lower() == b"bearer"
                else "unsupported authorization scheme: send 'Authorization: Bearer <token>'"
            )
        await refuse(scope, receive, send, 401, detail, {"WWW-Authenticate": "Bearer"})


def body_limit(app: ASGIApp, max_bytes: int) -> http_limits.BodyLimit:
    """413 for a request body above ``max_bytes``, declared or streamed (see :func:`answer`)."""
    return http_limits.BodyLimit(app, max_bytes, answer=answer, drain_limit_bytes=DRAIN_LIMIT_BYTES)


def answer(
    scope: Scope, status: int, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    """A guard's refusal: JSON ``{"detail": ...}`` under ``/api/``, plain text on the BES
    protocol's routes, as they answer everything."""
    if scope["path"].startswith(PROTECTED_PREFIX):
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    return PlainTextResponse(detail, status_code=status, headers=headers)


refuse = functools.partial(http_limits.refuse, answer=answer, drain_limit_bytes=DRAIN_LIMIT_BYTES)
"""Answer with :func:`answer` without calling the app."""
