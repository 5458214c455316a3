"""Helpers the simulated devices share: the mounted pin (for fault checks and error messages)
and one reported action spanning many clock steps (a rotation, a raster line)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bes.hal.clock import DeviceAction
from simulators.clock import SimClock
from simulators.world import SampleWorld


def mounted_pin(world: SampleWorld) -> tuple[str | None, frozenset[str]]:
    """Label (``"puck:pin"``) and sample-sheet faults of the mounted pin; (None, {}) if none."""
    with world.lock:
        pin = world.mounted_pin
        if pin is None:
            return (str(world.mounted) if world.mounted else None), frozenset()
        return pin.label, frozenset(pin.faults)


@contextmanager
def reported_action(
    clock: SimClock, device: str, action: str, **details: Any
) -> Iterator[dict[str, Any]]:
    """Report one DeviceAction for everything done inside the block.

    A rotation sleeps once per frame so that triggers come at the right beamline time;
    listeners still get one record per rotation, not thousands. The yielded dict is the
    record's details (add to it); an error inside is recorded as ``details["error"]``.
    """
    start_s = clock.now()
    wall_start = time.perf_counter()
    try:
        yield details
    except BaseException as exc:
        details["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        clock.report(
            DeviceAction(
                device=device,
                action=action,
                start_s=start_s,
                duration_s=clock.now() - start_s,
                wall_s=time.perf_counter() - wall_start,
                details=details,
            )
        )
