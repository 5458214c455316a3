"""Handles to LIMS records and the session a workflow writes to.

A write answers a :class:`Handle` at once, whether or not the LIMS is reachable: ``id`` is
the LIMS id when known, None while the record waits in the outbox. Later writes accept the
handle where a parent is needed (a data collection in a group still queued); the outbox
puts the real id in when it replays. The handle's ``local_id`` is also its idempotency key.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

_VISIT = re.compile(r"^([A-Za-z]+[0-9]+)-([0-9]+)$")


@dataclass(eq=False)
class Handle:
    """A record written through the client; ``id`` is filled in once the LIMS has it."""

    kind: str
    """ISPyB table, e.g. ``DataCollection``."""
    local_id: str = field(default_factory=lambda: new_key())
    id: int | None = None

    @property
    def known(self) -> bool:
        return self.id is not None

    def __repr__(self) -> str:
        where = f"id={self.id}" if self.id is not None else f"queued {self.local_id[:8]}"
        return f"<{self.kind} {where}>"


def new_key() -> str:
    """A fresh idempotency key / local id."""
    return uuid.uuid4().hex


Ref = int | Handle
"""A parent record: its LIMS id, or the handle a write answered."""


@dataclass(frozen=True)
class Visit:
    """A session as the LIMS paths name it: proposal ``mx1234``, visit number 1 (``mx1234-1``)."""

    proposal: str
    number: int

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z]+[0-9]+", self.proposal) or self.number < 1:
            raise ValueError(
                f"visit {self.proposal}-{self.number} is not <code><number>-<visit>, e.g. mx1234-1"
            )

    @classmethod
    def parse(cls, text: str) -> Visit:
        match = _VISIT.match(text.strip())
        if match is None:
            raise ValueError(f"visit {text!r} is not <code><number>-<visit>, e.g. mx1234-1")
        return cls(match.group(1), int(match.group(2)))

    @property
    def path(self) -> str:
        return f"/proposals/{self.proposal}/sessions/{self.number}"

    def __str__(self) -> str:
        return f"{self.proposal}-{self.number}"
