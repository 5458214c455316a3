"""Writes of the characterisation results (the screening chain) and of processing runs
(AutoProcProgram with its summary)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lims.client import records
from lims.service import models
from lims.service.crud import Answer, get_or_404, insert, primary_key, to_json, values
from lims.service.db import Db
from lims.service.idempotency import IdempotencyKeyHeader, idempotent
from lims.service.schemas import IdPath

router = APIRouter(tags=["characterisation and processing"])


@router.post(
    "/data-collections/{dataCollectionId}/screenings",
    status_code=201,
    summary="Add a screening (characterisation) to a data collection",
)
def add_screening(
    dataCollectionId: IdPath,
    record: records.Screening,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    return _add_child(
        db, request, key, record, models.DataCollection, dataCollectionId, models.Screening
    )


@router.post(
    "/screenings/{screeningId}/outputs", status_code=201, summary="Add the output of a screening"
)
def add_screening_output(
    screeningId: IdPath,
    record: records.ScreeningOutput,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    return _add_child(
        db, request, key, record, models.Screening, screeningId, models.ScreeningOutput
    )


@router.post(
    "/screening-outputs/{screeningOutputId}/lattices",
    status_code=201,
    summary="Add the indexed lattice of a screening output",
)
def add_screening_output_lattice(
    screeningOutputId: IdPath,
    record: records.ScreeningOutputLattice,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    return _add_child(
        db,
        request,
        key,
        record,
        models.ScreeningOutput,
        screeningOutputId,
        models.ScreeningOutputLattice,
    )


@router.post(
    "/screening-outputs/{screeningOutputId}/strategies",
    status_code=201,
    summary="Add a strategy of a screening output",
)
def add_screening_strategy(
    screeningOutputId: IdPath,
    record: records.ScreeningStrategy,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    return _add_child(
        db,
        request,
        key,
        record,
        models.ScreeningOutput,
        screeningOutputId,
        models.ScreeningStrategy,
    )


@router.post(
    "/screening-strategies/{screeningStrategyId}/wedges",
    status_code=201,
    summary="Add a wedge of a strategy",
)
def add_screening_strategy_wedge(
    screeningStrategyId: IdPath,
    record: records.ScreeningStrategyWedge,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    return _add_child(
        db,
        request,
        key,
        record,
        models.ScreeningStrategy,
        screeningStrategyId,
        models.ScreeningStrategyWedge,
    )


@router.post(
    "/screening-strategy-wedges/{screeningStrategyWedgeId}/sub-wedges",
    status_code=201,
    summary="Add a sub-wedge of a strategy wedge",
)
def add_screening_strategy_sub_wedge(
    screeningStrategyWedgeId: IdPath,
    record: records.ScreeningStrategySubWedge,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    return _add_child(
        db,
        request,
        key,
        record,
        models.ScreeningStrategyWedge,
        screeningStrategyWedgeId,
        models.ScreeningStrategySubWedge,
    )


def _add_child(
    db: Session,
    request: Request,
    key: str | None,
    record: BaseModel,
    parent: type[models.Base],
    parent_id: int,
    child: type[models.Base],
) -> JSONResponse:
    parent_column = primary_key(parent)

    def create() -> Answer:
        get_or_404(db, parent, parent_id)
        return insert(db, child, record, **{parent_column: parent_id})

    return idempotent(db, request, key, record, create)


@router.post(
    "/data-collections/{dataCollectionId}/auto-proc-programs",
    status_code=201,
    summary="Record a processing run and, once known, its summary",
)
def add_auto_proc_program(
    dataCollectionId: IdPath,
    record: records.AutoProcProgram,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        get_or_404(db, models.DataCollection, dataCollectionId)
        program = models.AutoProcProgram(**values(record, exclude={"summary"}))
        db.add(program)
        db.flush()
        db.add(
            models.AutoProcIntegration(
                dataCollectionId=dataCollectionId, autoProcProgramId=program.autoProcProgramId
            )
        )
        if record.summary is not None:
            write_summary(db, program.autoProcProgramId, record.summary)
        db.flush()
        return 201, {"autoProcProgramId": program.autoProcProgramId}

    return idempotent(db, request, key, record, create)


@router.patch(
    "/auto-proc-programs/{autoProcProgramId}",
    summary="Update a processing run; a summary given replaces the one recorded",
)
def update_auto_proc_program(
    autoProcProgramId: IdPath, record: records.AutoProcProgramUpdate, db: Db
) -> dict[str, Any]:
    program = get_or_404(db, models.AutoProcProgram, autoProcProgramId)
    for name, value in values(record, patch=True, exclude={"summary"}).items():
        setattr(program, name, value)
    if record.summary is not None:
        write_summary(db, autoProcProgramId, record.summary)
    db.commit()
    return to_json(program)


def write_summary(db: Session, program_id: int, summary: records.AutoProcSummary) -> None:
    """AutoProc -> AutoProcScaling -> AutoProcScalingStatistics for one program, replacing
    an earlier summary of that program."""
    earlier = db.scalars(
        select(models.AutoProc.autoProcId).where(models.AutoProc.autoProcProgramId == program_id)
    ).all()
    if earlier:
        scalings = select(models.AutoProcScaling.autoProcScalingId).where(
            models.AutoProcScaling.autoProcId.in_(earlier)
        )
        db.execute(
            delete(models.AutoProcScalingStatistics).where(
                models.AutoProcScalingStatistics.autoProcScalingId.in_(scalings)
            )
        )
        db.execute(
            delete(models.AutoProcScaling).where(models.AutoProcScaling.autoProcId.in_(earlier))
        )
        db.execute(delete(models.AutoProc).where(models.AutoProc.autoProcId.in_(earlier)))
    auto_proc = models.AutoProc(
        autoProcProgramId=program_id, **values(summary, exclude={"statistics"})
    )
    db.add(auto_proc)
    db.flush()
    scaling = models.AutoProcScaling(autoProcId=auto_proc.autoProcId)
    db.add(scaling)
    db.flush()
    for shell in summary.statistics:
        db.add(
            models.AutoProcScalingStatistics(
                autoProcScalingId=scaling.autoProcScalingId, **values(shell)
            )
        )
