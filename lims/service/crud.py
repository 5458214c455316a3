"""Helpers the routes share: record -> row, existence checks, upserts, row -> JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from lims.service.models import Base

M = TypeVar("M", bound=Base)
Answer = tuple[int, dict[str, Any]]
"""Status code and JSON body of a write."""


def values(
    record: BaseModel, *, exclude: set[str] | None = None, patch: bool = False
) -> dict[str, Any]:
    """Column values of a record: the fields given (``patch``) or the non-null ones (create);
    aware times become naive UTC, as ISPyB keeps them."""
    data = record.model_dump(exclude_unset=patch, exclude_none=not patch, exclude=exclude)
    return {key: _utc(value) for key, value in data.items()}


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def invalid(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    """A 422 in FastAPI's own shape (``detail[].loc/msg``), for checks pydantic cannot make."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def get_or_404(db: Session, model: type[M], ident: Any, what: str | None = None) -> M:
    row = db.get(model, ident)
    if row is None:
        name = what or model.__tablename__
        raise HTTPException(404, f"{name} {ident} not found")
    return row


def check_links(db: Session, model: type[Base], data: Mapping[str, Any]) -> None:
    """Every foreign key given in a body must name an existing row (422 naming the field)."""
    for fk in model.__table__.foreign_keys:
        value = data.get(fk.parent.name)
        if value is None:
            continue
        if db.execute(select(fk.column).where(fk.column == value)).first() is None:
            raise invalid(("body", fk.parent.name), f"no {fk.column.table.name} with id {value}")


def upsert(
    db: Session, model: type[M], key: Mapping[str, Any], data: Mapping[str, Any]
) -> tuple[M, bool]:
    """The row matching ``key`` (None matches NULL) updated with ``data``, or a new one.
    Returns (row, created)."""
    conditions = [
        getattr(model, name).is_(None) if value is None else getattr(model, name) == value
        for name, value in key.items()
    ]
    row = db.scalars(select(model).where(*conditions).limit(1)).first()
    if row is None:
        row = model(**{**data, **key})
        db.add(row)
        db.flush()
        return row, True
    for name, value in data.items():
        setattr(row, name, value)
    db.flush()
    return row, False


def apply(row: Base, data: Mapping[str, Any]) -> None:
    for name, value in data.items():
        setattr(row, name, value)


def to_json(row: Base) -> dict[str, Any]:
    """A row as ISPyB-named JSON, null columns left out."""
    out: dict[str, Any] = {}
    for column in row.__table__.columns:
        value = getattr(row, column.key)
        if value is None:
            continue
        out[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def primary_key(model: type[Base]) -> str:
    return str(inspect(model).primary_key[0].key)


def insert(db: Session, model: type[Base], record: BaseModel, **links: int) -> Answer:
    """A new row from ``record`` under its parent ``links``; answers 201 and the new id."""
    data = values(record)
    check_links(db, model, data)
    row = model(**data, **links)
    db.add(row)
    db.flush()
    id_name = primary_key(model)
    return 201, {id_name: getattr(row, id_name)}


def patch(db: Session, model: type[Base], ident: int, record: BaseModel) -> dict[str, Any]:
    """Set the fields a PATCH body gives (null clears a field); answers the updated row."""
    row = get_or_404(db, model, ident)
    data = values(record, patch=True)
    check_links(db, model, data)
    apply(row, data)
    db.commit()
    return to_json(row)
