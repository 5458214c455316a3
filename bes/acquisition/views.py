"""On-axis camera views of the mounted sample at several omegas (for loop centring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bes.hal import Beamline


@dataclass(frozen=True)
class View:
    omega_deg: float
    image: np.ndarray
    positions: dict[str, float]


def take_views(beamline: Beamline, omegas_deg: Sequence[float]) -> list[View]:
    """Move omega to each angle and take a snapshot there."""
    views = []
    for omega in omegas_deg:
        beamline.goniometer.move("omega", float(omega))
        image = np.asarray(beamline.camera.snapshot(), dtype=np.float64)
        if image.ndim != 2 or image.size == 0:
            raise ValueError(f"camera snapshot at omega {omega:g} has shape {image.shape}")
        views.append(View(float(omega), image, beamline.goniometer.positions()))
    return views
