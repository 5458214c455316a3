"""The API token and the two guards in front of the app (ASGI middleware, so they answer before
anything parses the request):

- :class:`BearerAuth`: paths under ``/api/`` need ``Authorization: Bearer <token>`` (401 with
  ``WWW-Authenticate: Bearer`` otherwise). The BES protocol (``/RUN``, ``/STATUS``,
  ``/ABORT``) stays open: MXCuBE's client sends no credentials, so it is meant for the
  beamline network only (docs/server.md).
- :class:`BodyLimit`: a request body above ``max_bytes`` (declared or streamed) gets 413
  (plain text on the BES protocol's routes, JSON ``detail`` under ``/api/``).

The token comes from ``BES_API_TOKEN`` or from a token file (``DATA_DIR/api-token`` unless
told otherwise), made on the first start and readable by its owner only.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        return token
    return check_token(path.read_text().strip(), f"token file {path}")


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
        authorization = _header(scope, b"authorization")
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


class BodyLimit:
    """413 for a request body above ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await refuse(scope, receive, send, 400, f"bad Content-Length {declared!r}")
                return
            if size > self.max_bytes:
                await self._too_large(scope, receive, send, size <= DRAIN_LIMIT_BYTES)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            total += len(chunk)
            more = bool(message.get("more_body", False))
            if total > self.max_bytes:
                await self._too_large(scope, receive, send, more)
                return
            chunks.append(chunk)
            if not more:
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, drain: bool) -> None:
        detail = f"request body exceeds the limit of {self.max_bytes} bytes"
        await refuse(scope, receive, send, 413, detail, drain=drain)


async def refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    drain: bool = True,
) -> None:
    """Answer ``{"detail": ...}`` with ``status`` without calling the app (plain text on
    the BES protocol's routes, as they answer everything)."""
    if drain:
        await _drain(receive)
    response: Response = (
        JSONResponse({"detail": detail}, status_code=status, headers=headers)
        if scope["path"].startswith(PROTECTED_PREFIX)
        else PlainTextResponse(detail, status_code=status, headers=headers)
    )
    await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _drain(receive: Receive) -> None:
    total = 0
    more = True
    while more and total <= DRAIN_LIMIT_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        total += len(message.get("body", b""))
        more = bool(message.get("more_body", False))
