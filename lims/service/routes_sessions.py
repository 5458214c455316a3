"""Writes of proposals, sessions, proteins, crystals, containers, samples and robot actions.

Reference data (from the sample sheet) is upserted on its natural key, so loading a sheet
twice changes nothing: 201 when the record is new, 200 when it existed (and was updated).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from lims.client import records
from lims.service import models
from lims.service.crud import Answer, check_links, get_or_404, insert, patch, upsert, values
from lims.service.db import Db
from lims.service.idempotency import IdempotencyKeyHeader, idempotent
from lims.service.schemas import IdPath, ProposalPath, VisitPath, split_proposal

router = APIRouter(tags=["sessions and samples"])
UPDATED: dict[int | str, dict[str, Any]] = {
    200: {"description": "the record existed (same natural key) and was updated; its id"}
}
"""The other success of an upsert: 201 for a new record, 200 for an existing one."""


def find_proposal(db: Session, proposal: str) -> models.Proposal:
    code, number = split_proposal(proposal)
    row = db.scalars(
        select(models.Proposal).where(
            models.Proposal.proposalCode == code, models.Proposal.proposalNumber == number
        )
    ).first()
    if row is None:
        raise HTTPException(
            404, f"proposal {proposal} not found; create it first (POST /proposals)"
        )
    return row


def find_session(db: Session, proposal: str, visit: int) -> models.BLSession:
    owner = find_proposal(db, proposal)
    row = db.scalars(
        select(models.BLSession).where(
            models.BLSession.proposalId == owner.proposalId, models.BLSession.visit_number == visit
        )
    ).first()
    if row is None:
        raise HTTPException(
            404,
            f"session {proposal}-{visit} not found; load the sample sheet first "
            "(bes lims load-sheet) or POST /proposals/{proposal}/sessions",
        )
    return row


def _upserted(row: models.Base, created: bool, id_name: str) -> Answer:
    return (201 if created else 200), {id_name: getattr(row, id_name)}


@router.post(
    "/proposals", status_code=201, summary="Create or update a proposal", responses=UPDATED
)
def add_proposal(
    record: records.Proposal, db: Db, request: Request, key: IdempotencyKeyHeader = None
) -> JSONResponse:
    def create() -> Answer:
        data = values(record)
        natural = {k: data.pop(k) for k in ("proposalCode", "proposalNumber")}
        return _upserted(*upsert(db, models.Proposal, natural, data), "proposalId")

    return idempotent(db, request, key, record, create)


@router.post(
    "/proposals/{proposal}/sessions",
    status_code=201,
    summary="Create or update a session",
    responses=UPDATED,
)
def add_session(
    proposal: ProposalPath,
    record: records.BLSession,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        owner = find_proposal(db, proposal)
        data = values(record)
        natural = {"proposalId": owner.proposalId, "visit_number": data.pop("visit_number")}
        return _upserted(*upsert(db, models.BLSession, natural, data), "sessionId")

    return idempotent(db, request, key, record, create)


@router.post(
    "/proposals/{proposal}/proteins",
    status_code=201,
    summary="Create or update a protein",
    responses=UPDATED,
)
def add_protein(
    proposal: ProposalPath,
    record: records.Protein,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        owner = find_proposal(db, proposal)
        data = values(record)
        natural = {"proposalId": owner.proposalId, "acronym": data.pop("acronym")}
        return _upserted(*upsert(db, models.Protein, natural, data), "proteinId")

    return idempotent(db, request, key, record, create)


@router.post(
    "/proteins/{proteinId}/crystals",
    status_code=201,
    summary="Find or create a crystal form (same fields -> same crystal)",
    responses=UPDATED,
)
def add_crystal(
    proteinId: IdPath,
    record: records.Crystal,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        get_or_404(db, models.Protein, proteinId)
        every_field = {name: None for name in records.Crystal.model_fields} | values(record)
        natural = {"proteinId": proteinId, **every_field}
        return _upserted(*upsert(db, models.Crystal, natural, {}), "crystalId")

    return idempotent(db, request, key, record, create)


@router.post(
    "/proposals/{proposal}/sessions/{visit}/containers",
    status_code=201,
    summary="Create or update a container (puck) of a session",
    responses=UPDATED,
)
def add_container(
    proposal: ProposalPath,
    visit: VisitPath,
    record: records.Container,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        session = find_session(db, proposal, visit)
        data = values(record)
        natural = {"sessionId": session.sessionId, "code": data.pop("code")}
        return _upserted(*upsert(db, models.Container, natural, data), "containerId")

    return idempotent(db, request, key, record, create)


@router.post(
    "/containers/{containerId}/samples",
    status_code=201,
    summary="Create or update the sample at a location of a container",
    responses=UPDATED,
)
def add_sample(
    containerId: IdPath,
    record: records.BLSample,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        get_or_404(db, models.Container, containerId)
        if record.location is None:  # no natural key: always a new sample
            return insert(db, models.BLSample, record, containerId=containerId)
        data = values(record)
        check_links(db, models.BLSample, data)
        natural = {"containerId": containerId, "location": data.pop("location")}
        return _upserted(*upsert(db, models.BLSample, natural, data), "blSampleId")

    return idempotent(db, request, key, record, create)


@router.patch("/samples/{blSampleId}", summary="Update a sample (status, comments, ...)")
def update_sample(blSampleId: IdPath, record: records.BLSampleUpdate, db: Db) -> dict[str, Any]:
    return patch(db, models.BLSample, blSampleId, record)


@router.post(
    "/proposals/{proposal}/sessions/{visit}/robot-actions",
    status_code=201,
    summary="Record a sample changer action",
)
def add_robot_action(
    proposal: ProposalPath,
    visit: VisitPath,
    record: records.RobotAction,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        session = find_session(db, proposal, visit)
        return insert(db, models.RobotAction, record, blsessionId=session.sessionId)

    return idempotent(db, request, key, record, create)


@router.patch("/robot-actions/{robotActionId}", summary="Update a robot action (end, status)")
def update_robot_action(
    robotActionId: IdPath, record: records.RobotActionUpdate, db: Db
) -> dict[str, Any]:
    return patch(db, models.RobotAction, robotActionId, record)
