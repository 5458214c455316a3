"""Writes of workflows, their steps and their mesh results."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from lims.client import records
from lims.service import models
from lims.service.crud import Answer, get_or_404, insert, patch
from lims.service.db import Db
from lims.service.idempotency import IdempotencyKeyHeader, idempotent
from lims.service.schemas import IdPath

router = APIRouter(tags=["workflows"])


@router.post("/workflows", status_code=201, summary="Create a workflow run")
def add_workflow(
    record: records.Workflow, db: Db, request: Request, key: IdempotencyKeyHeader = None
) -> JSONResponse:
    return idempotent(db, request, key, record, lambda: insert(db, models.Workflow, record))


@router.patch("/workflows/{workflowId}", summary="Update a workflow run (status, result)")
def update_workflow(workflowId: IdPath, record: records.WorkflowUpdate, db: Db) -> dict[str, Any]:
    return patch(db, models.Workflow, workflowId, record)


@router.post("/workflows/{workflowId}/steps", status_code=201, summary="Add a workflow step")
def add_workflow_step(
    workflowId: IdPath,
    record: records.WorkflowStep,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        get_or_404(db, models.Workflow, workflowId)
        return insert(db, models.WorkflowStep, record, workflowId=workflowId)

    return idempotent(db, request, key, record, create)


@router.patch("/workflow-steps/{workflowStepId}", summary="Update a workflow step")
def update_workflow_step(
    workflowStepId: IdPath, record: records.WorkflowStepUpdate, db: Db
) -> dict[str, Any]:
    return patch(db, models.WorkflowStep, workflowStepId, record)


@router.post(
    "/workflows/{workflowId}/meshes", status_code=201, summary="Record the outcome of a mesh scan"
)
def add_workflow_mesh(
    workflowId: IdPath,
    record: records.WorkflowMesh,
    db: Db,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> Answer:
        get_or_404(db, models.Workflow, workflowId)
        return insert(db, models.WorkflowMesh, record, workflowId=workflowId)

    return idempotent(db, request, key, record, create)
