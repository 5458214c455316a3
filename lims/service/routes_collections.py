"""Writes of data collection groups, data collections, grids, positions, per-image quality
indicators (bulk upsert) and X-ray centring results."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lims.client import records
from lims.service import models
from lims.service.crud import Answer, get_or_404, insert, patch, values
from lims.service.db import Db
from lims.service.idempotency import IdempotencyKeyHeader, idempotent
from lims.service.routes_sessions import find_session
from lims.service.schemas import MAX_BULK, Counted, IdPath, ProposalPath, VisitPath

router = APIRouter(tags=["data collections"])


@router.post(
    "/proposals/{proposal}/sessions/{visit}/data-groups",
    status_code=201,
    summary="Create a data collection group (Mesh, Characterization, OSC, ...)",
)
def add_data_group(
    proposal: ProposalPath,
    visit: VisitPath,
    record: records.DataCollectionGroup,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        session = find_session(db, proposal, visit)
        return insert(db, models.DataCollectionGroup, record, sessionId=session.sessionId)

    return idempotent(db, request, key, record, create)


@router.patch("/data-groups/{dataCollectionGroupId}", summary="Update a data collection group")
def update_data_group(
    dataCollectionGroupId: IdPath, record: records.DataCollectionGroupUpdate, db: Db
) -> dict[str, Any]:
    return patch(db, models.DataCollectionGroup, dataCollectionGroupId, record)


@router.post(
    "/data-groups/{dataCollectionGroupId}/data-collections",
    status_code=201,
    summary="Create a data collection in a group",
)
def add_data_collection(
    dataCollectionGroupId: IdPath,
    record: records.DataCollection,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        get_or_404(db, models.DataCollectionGroup, dataCollectionGroupId)
        return insert(
            db, models.DataCollection, record, dataCollectionGroupId=dataCollectionGroupId
        )

    return idempotent(db, request, key, record, create)


@router.patch("/data-collections/{dataCollectionId}", summary="Update a data collection")
def update_data_collection(
    dataCollectionId: IdPath, record: records.DataCollectionUpdate, db: Db
) -> dict[str, Any]:
    return patch(db, models.DataCollection, dataCollectionId, record)


@router.post(
    "/data-collections/{dataCollectionId}/grids",
    status_code=201,
    summary="Record the mesh (grid) of a data collection",
)
def add_grid(
    dataCollectionId: IdPath,
    record: records.GridInfo,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        get_or_404(db, models.DataCollection, dataCollectionId)
        return insert(db, models.GridInfo, record, dataCollectionId=dataCollectionId)

    return idempotent(db, request, key, record, create)


@router.post(
    "/data-collections/{dataCollectionId}/position",
    status_code=201,
    summary="Record the centred start position of a data collection",
)
def add_position(
    dataCollectionId: IdPath,
    record: records.Position,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        collection = get_or_404(db, models.DataCollection, dataCollectionId)
        status, body = insert(db, models.Position, record)
        collection.startPositionId = body["positionId"]
        return status, body

    return idempotent(db, request, key, record, create)


@router.post(
    "/data-collections/{dataCollectionId}/image-quality-indicators",
    status_code=201,
    response_model=Counted,
    summary="Write per-image quality indicators in bulk (upsert on imageNumber)",
)
def add_image_quality_indicators(
    dataCollectionId: IdPath,
    indicators: Annotated[list[records.ImageQualityIndicators], Body(max_length=MAX_BULK)],
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        get_or_404(db, models.DataCollection, dataCollectionId)
        count = upsert_indicators(db, dataCollectionId, indicators)
        return 201, {"dataCollectionId": dataCollectionId, "count": count}

    return idempotent(db, request, key, indicators, create)


def upsert_indicators(
    db: Session, data_collection_id: int, indicators: list[records.ImageQualityIndicators]
) -> int:
    """INSERT .. ON CONFLICT (dataCollectionId, imageNumber) DO UPDATE the fields each record
    gives; records giving the same fields go in one statement."""
    table: Table = models.ImageQualityIndicators.__table__  # type: ignore[assignment]
    latest: dict[int, dict[str, Any]] = {}
    for item in indicators:  # the last record of an image wins
        latest[item.imageNumber] = values(item) | {"dataCollectionId": data_collection_id}
    groups: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    for row in latest.values():
        groups[frozenset(row)].append(row)
    dialect = db.get_bind().dialect.name
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for names, rows in groups.items():
        statement = insert_(table)
        changed = {name: statement.excluded[name] for name in names if name not in _IQI_KEY}
        statement = (
            statement.on_conflict_do_update(index_elements=list(_IQI_KEY), set_=changed)
            if changed
            else statement.on_conflict_do_nothing(index_elements=list(_IQI_KEY))
        )
        db.execute(statement, rows)
    return len(latest)


_IQI_KEY = ("dataCollectionId", "imageNumber")


@router.post(
    "/data-groups/{dataCollectionGroupId}/xray-centrings",
    status_code=201,
    summary="Record an X-ray centring and the crystals it found",
)
def add_xray_centring(
    dataCollectionGroupId: IdPath,
    record: records.XrayCentring,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        get_or_404(db, models.DataCollectionGroup, dataCollectionGroupId)
        centring = models.XrayCentring(
            dataCollectionGroupId=dataCollectionGroupId, **values(record, exclude={"results"})
        )
        db.add(centring)
        db.flush()
        for result in record.results:
            db.add(
                models.XrayCentringResult(xrayCentringId=centring.xrayCentringId, **values(result))
            )
        db.flush()
        return 201, {"xrayCentringId": centring.xrayCentringId}

    return idempotent(db, request, key, record, create)
