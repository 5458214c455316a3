"""Idempotent POST: the service keeps Idempotency-Key -> answer, so a retried POST (the
client lost the first answer) gets the same new id and creates nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lims.service.crud import Answer
from lims.service.models import IdempotencyKey

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=255,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="a unique key per record (e.g. a UUID); a repeated POST with the same key "
        "answers the first answer and writes nothing",
    ),
]


def idempotent(
    db: Session,
    request: Request,
    key: str | None,
    payload: BaseModel | Sequence[BaseModel],
    create: Callable[[], Answer],
) -> JSONResponse:
    """Run ``create`` (which adds rows and returns status and body) and commit, once per key."""
    if key is None:
        status, body = create()
        db.commit()
        return JSONResponse(body, status_code=status)
    where = f"{request.method} {request.url.path}"
    fingerprint = _fingerprint(where, payload)
    stored = db.get(IdempotencyKey, key)
    if stored is not None:
        return _replay(stored, key, fingerprint)
    status, body = create()
    db.add(
        IdempotencyKey(
            key=key, fingerprint=fingerprint, request=where[:1024], statusCode=status, response=body
        )
    )
    try:
        db.commit()
    except IntegrityError:  # the same key committed meanwhile by a concurrent retry
        db.rollback()
        stored = db.get(IdempotencyKey, key)
        if stored is None:
            raise
        return _replay(stored, key, fingerprint)
    return JSONResponse(body, status_code=status)


def _replay(stored: IdempotencyKey, key: str, fingerprint: str) -> JSONResponse:
    if stored.fingerprint != fingerprint:
        raise HTTPException(
            409,
            f"Idempotency-Key {key!r} was used for another request ({stored.request}); "
            "use a new key for a new record",
        )
    return JSONResponse(
        stored.response, status_code=stored.statusCode, headers={"Idempotent-Replayed": "true"}
    )


def _fingerprint(where: str, payload: BaseModel | Sequence[BaseModel]) -> str:
    if isinstance(payload, BaseModel):
        data: Any = payload.model_dump(mode="json", exclude_unset=True)
    else:
        data = [item.model_dump(mode="json", exclude_unset=True) for item in payload]
    text = where + "\n" + json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
