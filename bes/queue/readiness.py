"""Whether the beamline lets the queue mount the next sample: beam on, sample changer ready.

A readiness check returns None when the queue may go on, else what it waits for: a plain
string (or a :class:`NotReady`) is a wait that ends by itself (a beam loss, a busy robot): the
queue holds (PAUSED) and resumes once the check passes again. A :class:`NotReady` with
``fault`` is a beamline fault that does not clear by itself (a sample changer in FAULT): the
queue goes to FAULT, as for the same fault raised by a run, and waits for a person or its
configured recovery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bes.hal import Beamline
from bes.hal.sample_changer import SampleChangerState


@dataclass(frozen=True)
class NotReady:
    """Why the queue may not mount the next sample now. ``fault``: nothing will clear it but
    a person or the queue's recovery (FAULT instead of a PAUSED wait); ``resettable``: the
    configured recovery, a sample-changer reset, may clear it."""

    reason: str
    fault: bool = False
    resettable: bool = False


Readiness = Callable[[], "str | NotReady | None"]

WAITING_FOR_BEAM = "waiting for beam"
CHANGER_FAULT = NotReady(
    "sample changer in FAULT before the next sample (it needs a reset)",
    fault=True,
    resettable=True,
)
"""A sample changer found in FAULT between samples, left so by a fault outside the queue's
recovery (e.g. the unmount of a failed sample): it stays so until it is reset."""


def beamline_readiness(beamline: Beamline) -> Readiness:
    """The default check: beam available and the sample changer READY; a changer in FAULT is
    a (resettable) fault, any other state a wait (it is busy)."""

    def check() -> str | NotReady | None:
        if not beamline.beam.available:
            return WAITING_FOR_BEAM
        state = beamline.sample_changer.state
        if state == SampleChangerState.FAULT:
            return CHANGER_FAULT
        if state != SampleChangerState.READY:
            return f"waiting for the sample changer (state {state})"
        return None

    return check


def not_ready(wait: str | NotReady | None) -> NotReady | None:
    """A check's answer as a :class:`NotReady` (a plain string is a wait)."""
    return NotReady(wait) if isinstance(wait, str) else wait


def always_ready() -> str | NotReady | None:
    """No beamline to ask (tests, dry runs)."""
    return None
