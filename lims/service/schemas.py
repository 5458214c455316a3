"""Request and answer shapes of the service beyond the records (``lims.client.records``):
path parameters, pages, created ids."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Path as PathParam
from pydantic import BaseModel

from lims.client.records import MAX_INT

MAX_PAGE = 1000
"""Largest ``limit`` of a read."""
MAX_BULK = 10_000
"""Most image quality indicators in one bulk POST."""

IdPath = Annotated[int, PathParam(ge=1, le=MAX_INT)]
ProposalPath = Annotated[
    str,
    PathParam(
        pattern=r"^[A-Za-z]{1,45}[0-9]{1,45}$",
        description="proposal code and number, e.g. mx1234",
        examples=["mx1234"],
    ),
]
VisitPath = Annotated[
    int, PathParam(ge=1, le=MAX_INT, description="visit number of the session (mx1234-1 -> 1)")
]

_PROPOSAL = re.compile(r"^([A-Za-z]+)([0-9]+)$")


def split_proposal(proposal: str) -> tuple[str, str]:
    """``mx1234`` -> (``mx``, ``1234``)."""
    match = _PROPOSAL.match(proposal)
    if match is None:  # the path pattern has been checked already
        raise ValueError(f"proposal {proposal!r} is not code + number, e.g. mx1234")
    return match.group(1), match.group(2)


class Page(BaseModel):
    """A page of a read: ``total`` rows match, ``results`` holds ``limit`` of them from ``skip``."""

    total: int
    results: list[dict[str, Any]]
    skip: int
    limit: int


class Counted(BaseModel):
    """Answer of a bulk write: how many records were written (created or updated)."""

    dataCollectionId: int
    count: int
