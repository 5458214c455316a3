"""Monitoring (JSON, bearer token): the station and the BES-protocol runs this server knows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from bes.server.runs import BesRuns

router = APIRouter(prefix="/api/v1", tags=["monitoring"])


@router.get("/station")
def station(request: Request) -> dict[str, Any]:
    """What is where (beamline, data, workflow database, LIMS) and the pin mounted now."""
    station = request.app.state.queue.station
    mounted = station.beamline.sample_changer.mounted
    return {**station.describe(), "mounted": str(mounted) if mounted is not None else None}


@router.get("/runs")
def list_runs(request: Request) -> dict[str, Any]:
    """The BES-protocol runs kept (the latest last)."""
    runs: BesRuns = request.app.state.runs
    return {"runs": [run.to_json() for run in runs.list()]}


@router.get("/runs/{request_id}")
def get_run(request_id: str, request: Request) -> dict[str, Any]:
    runs: BesRuns = request.app.state.runs
    try:
        return runs.get(request_id).to_json()
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
