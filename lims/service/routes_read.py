"""Read routes in the style of the ISPyB REST API: ``GET /{resource}?skip=&limit=&<filter>=``
answers ``{total, results, skip, limit}``; ``GET /{resource}/{id}`` one record.

Every resource is a row of :data:`RESOURCES`: its path, its table and the columns it can be
filtered on; a filter that is not a column (samples of a session) brings its own join.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from sqlalchemy import Boolean, Integer, Select, func, inspect, select
from sqlalchemy.orm import Session

from lims.client.records import MAX_INT
from lims.service import models
from lims.service.crud import get_or_404, invalid, primary_key, to_json
from lims.service.db import Db
from lims.service.schemas import MAX_PAGE, Page

router = APIRouter(tags=["read"])
Join = Callable[[Select[Any], Any], Select[Any]]


def _samples_of_session(statement: Select[Any], session_id: Any) -> Select[Any]:
    return statement.join(models.Container).where(models.Container.sessionId == session_id)


def _programs_of_collection(statement: Select[Any], collection_id: Any) -> Select[Any]:
    return statement.join(
        models.AutoProcIntegration,
        models.AutoProcIntegration.autoProcProgramId == models.AutoProcProgram.autoProcProgramId,
    ).where(models.AutoProcIntegration.dataCollectionId == collection_id)


@dataclass(frozen=True)
class Resource:
    path: str
    model: type[models.Base]
    filters: tuple[str, ...] = ()
    joins: Mapping[str, tuple[Join, type[models.Base]]] = field(default_factory=dict)
    """filter name -> (join adding it, table whose column gives its type)"""
    by_id: bool = True


RESOURCES: tuple[Resource, ...] = (
    Resource("proposals", models.Proposal, ("proposalCode", "proposalNumber")),
    Resource("sessions", models.BLSession, ("proposalId", "visit_number", "beamLineName")),
    Resource("proteins", models.Protein, ("proposalId", "acronym")),
    Resource("crystals", models.Crystal, ("proteinId", "spaceGroup")),
    Resource("containers", models.Container, ("sessionId", "code", "barcode")),
    Resource(
        "samples",
        models.BLSample,
        ("containerId", "crystalId", "name", "code", "location", "blSampleStatus"),
        joins={"sessionId": (_samples_of_session, models.Container)},
    ),
    Resource("workflows", models.Workflow, ("workflowType", "status")),
    Resource("workflow-steps", models.WorkflowStep, ("workflowId", "workflowStepType", "status")),
    Resource("workflow-meshes", models.WorkflowMesh, ("workflowId",)),
    Resource(
        "data-groups",
        models.DataCollectionGroup,
        ("sessionId", "blSampleId", "workflowId", "experimentType"),
    ),
    Resource("data-collections", models.DataCollection, ("dataCollectionGroupId", "runStatus")),
    Resource("grids", models.GridInfo, ("dataCollectionId", "workflowMeshId")),
    Resource("positions", models.Position),
    Resource(
        "image-quality-indicators",
        models.ImageQualityIndicators,
        ("dataCollectionId", "imageNumber"),
        by_id=False,
    ),
    Resource("xray-centrings", models.XrayCentring, ("dataCollectionGroupId", "status")),
    Resource("xray-centring-results", models.XrayCentringResult, ("xrayCentringId",)),
    Resource("robot-actions", models.RobotAction, ("blsessionId", "blsampleId", "actionType")),
    Resource("screenings", models.Screening, ("dataCollectionId",)),
    Resource("screening-outputs", models.ScreeningOutput, ("screeningId",)),
    Resource("screening-output-lattices", models.ScreeningOutputLattice, ("screeningOutputId",)),
    Resource("screening-strategies", models.ScreeningStrategy, ("screeningOutputId",)),
    Resource("screening-strategy-wedges", models.ScreeningStrategyWedge, ("screeningStrategyId",)),
    Resource(
        "screening-strategy-sub-wedges",
        models.ScreeningStrategySubWedge,
        ("screeningStrategyWedgeId",),
    ),
    Resource(
        "auto-proc-programs",
        models.AutoProcProgram,
        ("processingStatus",),
        joins={"dataCollectionId": (_programs_of_collection, models.AutoProcIntegration)},
    ),
    Resource(
        "auto-proc-integrations",
        models.AutoProcIntegration,
        ("dataCollectionId", "autoProcProgramId"),
    ),
    Resource("auto-procs", models.AutoProc, ("autoProcProgramId",)),
    Resource("auto-proc-scalings", models.AutoProcScaling, ("autoProcId",)),
    Resource(
        "auto-proc-scaling-statistics",
        models.AutoProcScalingStatistics,
        ("autoProcScalingId", "scalingStatisticsType"),
    ),
)

Skip = Annotated[int, Query(ge=0, le=MAX_INT, description="rows to pass over")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"rows to answer, 1..{MAX_PAGE}")]


@router.get("/health", tags=["service"], summary="Liveness (no token needed)")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/counts", tags=["service"], summary="Rows per ISPyB table")
def counts(db: Db) -> dict[str, int]:
    return {
        model.__tablename__: int(db.scalar(select(func.count()).select_from(model)) or 0)
        for model in models.ISPYB_TABLES
    }


def _add_resource(resource: Resource) -> None:
    def read_page(request: Request, db: Db, skip: Skip = 0, limit: Limit = 100) -> Page:
        return page(db, resource, request.query_params, skip, limit)

    router.add_api_route(
        f"/{resource.path}",
        read_page,
        methods=["GET"],
        name=f"list_{resource.path}",
        summary=f"{resource.model.__tablename__} records, a page at a time",
        response_model=Page,
        openapi_extra={"parameters": [_filter_doc(resource, name) for name in _filters(resource)]},
    )
    if not resource.by_id:
        return
    id_name = primary_key(resource.model)

    def read_one(ident: int, db: Db) -> dict[str, Any]:
        return to_json(get_or_404(db, resource.model, ident))

    # The path parameter takes the ISPyB id name ({dataCollectionId}, ...); set as an object,
    # not a string annotation, since it closes over id_name.
    read_one.__annotations__["ident"] = Annotated[int, PathParam(alias=id_name, ge=1, le=MAX_INT)]

    router.add_api_route(
        f"/{resource.path}/{{{id_name}}}",
        read_one,
        methods=["GET"],
        name=f"get_{resource.path}",
        summary=f"One {resource.model.__tablename__} by {id_name}",
    )


def page(db: Session, resource: Resource, query: Mapping[str, str], skip: int, limit: int) -> Page:
    statement = select(resource.model)
    for name, text in query.items():
        if name in ("skip", "limit"):
            continue
        if name in resource.joins:
            join, owner = resource.joins[name]
            statement = join(statement, _parse(owner, name, text))
        elif name in resource.filters:
            column = getattr(resource.model, name)
            statement = statement.where(column == _parse(resource.model, name, text))
        else:
            known = ", ".join(["skip", "limit", *_filters(resource)])
            raise invalid(
                ("query", name), f"unknown filter {name!r} for /{resource.path}; known: {known}"
            )
    total = db.scalar(select(func.count()).select_from(statement.subquery())) or 0
    keys = list(inspect(resource.model).primary_key)
    rows = db.scalars(statement.order_by(*keys).offset(skip).limit(limit)).all()
    return Page(total=total, results=[to_json(row) for row in rows], skip=skip, limit=limit)


def _filters(resource: Resource) -> list[str]:
    return [*resource.filters, *resource.joins]


def _parse(model: type[models.Base], name: str, text: str) -> Any:
    column_type = model.__table__.columns[name].type
    if isinstance(column_type, Boolean):
        if text.lower() not in ("true", "false", "1", "0"):
            raise invalid(("query", name), f"{name} must be true or false, got {text!r}")
        return text.lower() in ("true", "1")
    if isinstance(column_type, Integer):
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or not -MAX_INT <= number <= MAX_INT:
            raise invalid(
                ("query", name),
                f"{name} must be an integer from {-MAX_INT} to {MAX_INT}, got {text[:80]!r}",
            )
        return number
    return text


def _filter_doc(resource: Resource, name: str) -> dict[str, Any]:
    owner = resource.joins[name][1] if name in resource.joins else resource.model
    is_int = isinstance(owner.__table__.columns[name].type, Integer)
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": (
            {"type": "integer", "minimum": -MAX_INT, "maximum": MAX_INT}
            if is_int
            else {"type": "string"}
        ),
        "description": f"only records whose {name} equals this",
    }


for _resource in RESOURCES:
    _add_resource(_resource)
