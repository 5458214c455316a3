"""Bearer-token auth and the request body limit, as ASGI middleware.

Both run before FastAPI parses anything: a request with a wrong token gets 401 whatever its
body, so nothing is written and nothing about the API's validation leaks. Reads (GET, HEAD)
need a reader or writer token, writes a writer token. ``/health`` and the OpenAPI pages are
public.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lims.tokens import Role

PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
"""A refused body up to this size is read (and dropped) so the client gets the answer
instead of a broken pipe; a larger one is left unread and the connection closed."""


class BearerAuth:
    def __init__(self, app: ASGIApp, tokens: Mapping[str, Role]) -> None:
        self.app = app
        self.tokens = [(token.encode(), role) for token, role in tokens.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        role = self._role(_header(scope, b"authorization"))
        if role is None:
            detail = (
                "missing bearer token: send 'Authorization: Bearer <token>'"
                if _header(scope, b"authorization") is None
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


class BodyLimit:
    """413 for a request body above ``max_bytes``, declared (Content-Length) or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _refuse(scope, receive, send, 400, f"bad Content-Length {declared!r}")
                return
            if size > self.max_bytes:
                await self._too_large(scope, receive, send, size)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                more = bool(message.get("more_body", False))
                await self._too_large(scope, receive, send, None, drain=more)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, size: int | None, drain: bool = True
    ) -> None:
        told = f"of {size} bytes " if size is not None else ""
        detail = (
            f"request body {told}exceeds the limit of {self.max_bytes} bytes; send less per call"
        )
        await _refuse(
            scope,
            receive,
            send,
            413,
            detail,
            drain=drain and (size is None or size <= DRAIN_LIMIT_BYTES),
        )


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


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    drain: bool = True,
) -> None:
    if drain:
        await _drain(receive)
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response(scope, receive, send)


async def _drain(receive: Receive) -> None:
    """Read what is left of the request body, up to DRAIN_LIMIT_BYTES."""
    total = 0
    more: Any = True
    while more and total <= DRAIN_LIMIT_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        total += len(message.get("body", b""))
        more = message.get("more_body", False)
