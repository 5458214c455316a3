"""Whether the beamline lets the queue mount the next sample: beam on, sample changer ready.

A readiness check returns None when the queue may go on, else what it waits for; the queue
then holds (PAUSED) and resumes by itself once the check passes again.
"""

from __future__ import annotations

from collections.abc import Callable

from bes.hal import Beamline
from bes.hal.sample_changer import SampleChangerState

Readiness = Callable[[], "str | None"]

WAITING_FOR_BEAM = "waiting for beam"


def beamline_readiness(beamline: Beamline) -> Readiness:
    """The default check: beam available and the sample changer READY."""

    def check() -> str | None:
        if not beamline.beam.available:
            return WAITING_FOR_BEAM
        state = beamline.sample_changer.state
        if state != SampleChangerState.READY:
            return f"waiting for the sample changer (state {state})"
        return None

    return check


def always_ready() -> str | None:
    """No beamline to ask (tests, dry runs)."""
    return None
