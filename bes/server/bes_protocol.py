"""The BES protocol as MXCuBE's client (mxcubecore ``EdnaWorkflow``) speaks it, in plain text
(shared/REFERENCE.md §1):

- ``POST /RUN/{workflow}`` with a JSON object body: 200 and the request id;
- ``GET /STATUS/{request_id}``: ``STARTED``, ``FINISHED``, ``ERROR`` or ``ABORTED``;
- ``GET /ABORT/{request_id}``: 200 and the status once the run stopped (or ``STARTED`` if it
  has not within the server's abort wait).

No credentials: MXCuBE sends none, so these routes belong on the beamline network. A refused
start answers 4xx with the reason as text (404 unknown workflow, 409 beamline busy, 422 bad
body) and starts nothing.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from bes.engine.recipes import (
    Recipe,
    RecipeError,
    RecipeNotFoundError,
    find_recipe,
    list_recipes,
    load_recipe,
)
from bes.server.mxcube_body import RequestError, read_request
from bes.server.runs import BeamlineBusy, BesRuns

router = APIRouter(tags=["BES protocol (MXCuBE)"])

_TEXT_OR_NUMBER: dict[str, Any] = {"type": ["string", "integer"]}
_BODY_SCHEMA = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "MXCuBE's start body (docs/server.md): its values may be "
                    "text; MX recipe parameters (docs/workflows.md) may be added, as text or "
                    "JSON values. Ignored: modelpath, directory (files go below the station's "
                    "data directory), collection_software, sample_node_id, workflow_node_id, "
                    "shape, investigationId, token. Refused: data_root.",
                    "properties": {
                        "prefix": _TEXT_OR_NUMBER,
                        "run_number": _TEXT_OR_NUMBER,
                        "sample_lims_id": {"type": ["string", "integer", "null"]},
                        "sessionId": _TEXT_OR_NUMBER,
                        "externalRef": {"type": "string"},
                        "initiator": _TEXT_OR_NUMBER,
                        "beamline": _TEXT_OR_NUMBER,
                        "sample_location": {
                            "type": ["string", "null"],
                            "description": "the pin to mount, 'puck:pin'",
                            "examples": ["1:3"],
                        },
                        "sample": {
                            "description": "MXCuBE's LIMS record of the sample, or 'puck:pin'",
                            "anyOf": [
                                {
                                    "type": "object",
                                    "properties": {
                                        "sampleId": _TEXT_OR_NUMBER,
                                        "sampleName": {"type": "string"},
                                        "containerSampleChangerLocation": _TEXT_OR_NUMBER,
                                        "sampleLocation": _TEXT_OR_NUMBER,
                                    },
                                },
                                {"type": "string"},
                                {"type": "null"},
                            ],
                        },
                        "mxcubeParameters": {
                            "description": "where the callbacks go (XML-RPC)",
                            "anyOf": [
                                {
                                    "type": "object",
                                    "properties": {
                                        "host": {"type": "string", "minLength": 1},
                                        "port": _TEXT_OR_NUMBER,
                                        "token": {"type": ["string", "null"]},
                                    },
                                    "required": ["host", "port"],
                                },
                                {"type": "null"},
                            ],
                        },
                    },
                    "additionalProperties": True,
                }
            }
        },
    }
}


@router.post(
    "/RUN/{workflow_name}",
    response_class=PlainTextResponse,
    openapi_extra=_BODY_SCHEMA,
    responses={
        200: {"description": "the request id"},
        404: {"description": "unknown workflow"},
        409: {"description": "the beamline is busy (queue or another run)"},
        422: {"description": "a bad body or parameter"},
    },
)
async def start_run(workflow_name: str, request: Request) -> PlainTextResponse:
    """Start the recipe ``workflow_name`` (e.g. ``mxpresse``) with the body's parameters."""
    raw = await request.body()
    try:
        body = _json_object(raw)
        answer = await run_in_threadpool(_start, request.app.state.runs, workflow_name, body)
    except RequestError as exc:
        return PlainTextResponse(str(exc), status_code=exc.status)
    except BeamlineBusy as exc:
        return PlainTextResponse(str(exc), status_code=409)
    return PlainTextResponse(answer)


@router.get("/STATUS/{request_id}", response_class=PlainTextResponse)
def run_status(request_id: str, request: Request) -> PlainTextResponse:
    """``STARTED`` while the run goes on, then ``FINISHED``, ``ERROR`` or ``ABORTED``."""
    runs: BesRuns = request.app.state.runs
    try:
        return PlainTextResponse(runs.get(request_id).status)
    except KeyError:
        return _unknown(request_id)


@router.get("/ABORT/{request_id}", response_class=PlainTextResponse)
def abort_run(request_id: str, request: Request) -> PlainTextResponse:
    """Abort the run; answers its status once it stopped (a finished run is left as is)."""
    runs: BesRuns = request.app.state.runs
    try:
        run = runs.abort(request_id, wait_s=request.app.state.abort_wait_s)
    except KeyError:
        return _unknown(request_id)
    return PlainTextResponse(run.status)


def _start(runs: BesRuns, workflow_name: str, body: dict[str, Any]) -> str:
    recipe = find_workflow(workflow_name)
    run_request = read_request(recipe, body, str(runs.station.data_dir.resolve()))
    return runs.start(run_request).request_id


def find_workflow(name: str) -> Recipe:
    """The registered recipe ``name`` (MXCuBE's ``MXPressE`` finds ``mxpresse`` when no
    recipe has the exact name); RequestError 404 for an unknown one, 422 for one refused."""
    try:
        path = find_recipe(name)
    except RecipeNotFoundError as exc:
        same = [p for p in list_recipes() if p.stem.lower() == name.lower()]
        if len(same) != 1:
            raise RequestError(str(exc), status=404) from None
        path = same[0]
    try:
        return load_recipe(path)
    except RecipeError as exc:
        raise RequestError(str(exc)) from None


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"the body is not JSON: {exc}", status=400) from None
    except RecursionError:
        raise RequestError("the body is nested too deeply", status=400) from None
    if not isinstance(body, dict):
        raise RequestError(f"the body must be a JSON object, not {type(body).__name__}")
    return body


def _unknown(request_id: str) -> PlainTextResponse:
    return PlainTextResponse(
        f"unknown request id {request_id[:64]!r} (never started here, or forgotten)",
        status_code=404,
    )
