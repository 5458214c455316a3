"""ASGI pieces shared by the LIMS service and the expert system's REST server: the request
body limit (:class:`BodyLimit`) and the answer a guard gives without calling the app
(:func:`refuse`), both before FastAPI parses anything.

A refusal is JSON ``{"detail": ...}`` unless the caller passes another ``answer`` (the BES
protocol answers in plain text). ``lims`` stands alone, so the module lives here;
``bes.server`` imports it (``lims.service`` stays out of ``bes``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods whose body is not read: the body limit lets them through."""

Answer = Callable[[Scope, int, str, Mapping[str, str] | None], Response]
"""``(scope, status, detail, headers)`` -> the response a guard refuses a request with."""


def json_answer(
    _scope: Scope, status: int, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    """``{"detail": detail}`` with ``status``."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class BodyLimit:
    """413 for a request body above ``max_bytes``, declared (Content-Length) or streamed; 400
    for a Content-Length that is not a number.

    ``answer``: the refusal's response; ``drain_limit_bytes``: a refused body up to this size
    is read (and dropped) so the client gets the answer instead of a broken pipe, a larger
    one is left unread; ``size_in_detail``: the 413 names a declared size; ``advice``: words
    added to the 413's detail."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        answer: Answer = json_answer,
        drain_limit_bytes: int,
        size_in_detail: bool = False,
        advice: str = "",
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.answer = answer
        self.drain_limit_bytes = drain_limit_bytes
        self.size_in_detail = size_in_detail
        self.advice = advice

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._refuse(scope, receive, send, 400, f"bad Content-Length {declared!r}")
                return
            if size > self.max_bytes:
                await self._too_large(scope, receive, send, size, size <= self.drain_limit_bytes)
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
                await self._too_large(scope, receive, send, None, more)
                return
            chunks.append(chunk)
            if not more:
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, size: int | None, drain: bool
    ) -> None:
        told = f"of {size} bytes " if size is not None and self.size_in_detail else ""
        detail = f"request body {told}exceeds the limit of {self.max_bytes} bytes{self.advice}"
        await self._refuse(scope, receive, send, 413, detail, drain=drain)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        detail: str,
        drain: bool = True,
    ) -> None:
        await refuse(
            scope,
            receive,
            send,
            status,
            detail,
            answer=self.answer,
            drain=drain,
            drain_limit_bytes=self.drain_limit_bytes,
        )


async def refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    *,
    answer: Answer = json_answer,
    drain: bool = True,
    drain_limit_bytes: int,
) -> None:
    """Answer ``answer(scope, status, detail, headers)`` without calling the app, after
    reading what is left of the body (up to ``drain_limit_bytes``) when ``drain``."""
    if drain:
        await _drain(receive, drain_limit_bytes)
    response = answer(scope, status, detail, headers)
    await response(scope, receive, send)


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of the request header ``name`` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives ``body`` (read already) first."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _drain(receive: Receive, limit_bytes: int) -> None:
    """Read what is left of the request body, up to ``limit_bytes``."""
    total = 0
    more: Any = True
    while more and total <= limit_bytes:
        message = await receive()
        if message["type"] != "http.request":
            return
        total += len(message.get("body", b""))
        more = message.get("more_body", False)
