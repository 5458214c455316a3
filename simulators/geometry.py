"""Sample-frame <-> lab-frame geometry of the simulated goniometer.

Lab frame (mm): the beam runs along +z through the origin, the omega axis along +x,
+y points up. A point ``s = (a, b, c)`` fixed to the pin (a along the omega axis,
b and c along ``sampx`` and ``sampy`` when omega = 0) sits in the lab at

    x = a + phiy
    (y, z) = R(omega) . (b + sampx, c + sampy) + (phiz, 0)

with ``R(w) = [[cos w, -sin w], [sin w, cos w]]``. The axis is aligned with the beam
when ``phiz = 0``. A point is in the beam when its (x, y) lies inside the beam
footprint; z (depth along the beam) does not matter. The on-axis camera looks along
the beam: image column grows with x, image row grows with -y.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def omega_rotation(omega_deg: float) -> np.ndarray:
    w = np.deg2rad(omega_deg)
    c, s = np.cos(w), np.sin(w)
    return np.array([[c, -s], [s, c]])


def sample_to_lab(points_mm: np.ndarray, pose: Mapping[str, float]) -> np.ndarray:
    """Lab coordinates (N, 3) of sample-frame points (N, 3) at a goniometer pose."""
    p = np.atleast_2d(np.asarray(points_mm, dtype=float))
    lab = np.empty_like(p)
    lab[:, 0] = p[:, 0] + pose["phiy"]
    bc = np.stack([p[:, 1] + pose["sampx"], p[:, 2] + pose["sampy"]])
    yz = omega_rotation(pose["omega"]) @ bc
    lab[:, 1] = yz[0] + pose["phiz"]
    lab[:, 2] = yz[1]
    return lab


def lab_to_sample(points_mm: np.ndarray, pose: Mapping[str, float]) -> np.ndarray:
    """Inverse of :func:`sample_to_lab`."""
    q = np.atleast_2d(np.asarray(points_mm, dtype=float))
    out = np.empty_like(q)
    out[:, 0] = q[:, 0] - pose["phiy"]
    yz = np.stack([q[:, 1] - pose["phiz"], q[:, 2]])
    bc = omega_rotation(pose["omega"]).T @ yz
    out[:, 1] = bc[0] - pose["sampx"]
    out[:, 2] = bc[1] - pose["sampy"]
    return out


def centred_pose(point_mm: tuple[float, float, float]) -> dict[str, float]:
    """Motor positions (phiy, sampx, sampy) that put a sample point on the axis in the beam."""
    a, b, c = point_mm
    return {"phiy": -a, "sampx": -b, "sampy": -c}


def table_shift_for_vertical(omega_deg: float, dy_mm: float) -> dict[str, float]:
    """Centring-table move that shifts the sample by ``dy_mm`` vertically (lab y) at omega,
    without moving it along the beam: how a mesh steps vertically."""
    d = omega_rotation(omega_deg).T @ np.array([dy_mm, 0.0])
    return {"sampx": float(d[0]), "sampy": float(d[1])}
