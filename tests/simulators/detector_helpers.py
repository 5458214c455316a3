"""Helpers for the detector tests: worlds built from the dataclasses, frames rendered
directly, strong pixels counted against the exact Poisson background."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import stats

from bes.hal import HC_KEV_A, Location
from simulators.detector_models import detector_models
from simulators.diffraction import Exposure, Frame, FrameGeometry, FrameRenderer
from simulators.geometry import centred_pose
from simulators.world import Crystal, Loop, Pin, SampleWorld

PIN = Location(1, 1)
CRYSTAL_AT_MM = (0.05, 0.02, -0.01)
"""Where the test crystal sits in the sample frame."""
ENERGY_KEV = 12.7
STRONG_TAIL = 1e-6
"""A pixel is strong when background alone would reach its count with this probability."""


def make_pin(
    crystals: Iterable[Crystal] = (), ice: float = 0.0, salt: bool = False, loop: bool = True
) -> Pin:
    holder = Loop(centre_mm=CRYSTAL_AT_MM, size_um=(300.0, 250.0), ice=ice, salt=salt)
    return Pin(location=PIN, loop=holder if loop else None, crystals=list(crystals), name="test")


def make_crystal(size_um: float = 50.0, **kwargs: object) -> Crystal:
    return Crystal(position_mm=CRYSTAL_AT_MM, size_um=(size_um, size_um, size_um), **kwargs)  # type: ignore[arg-type]


def make_world(pin: Pin | None, shutter_open: bool = True) -> SampleWorld:
    world = SampleWorld(pins={PIN: pin} if pin else {}, seed=3, mounted=PIN if pin else None)
    world.beam.shutter_open = shutter_open
    world.pose.update(centred_pose(CRYSTAL_AT_MM))
    return world


def frame_geometry(model: str = "small", exposure_s: float = 0.1) -> FrameGeometry:
    m = detector_models()[model]
    wavelength = HC_KEV_A / ENERGY_KEV
    return FrameGeometry(
        shape=m.shape,
        pixel_size_mm=m.pixel_size_mm,
        distance_mm=m.default_distance_mm(wavelength),
        beam_centre_px=m.beam_centre_px(),
        wavelength_a=wavelength,
        mask=m.mask(),
        spot_sigma_px=m.spot_sigma_px,
        count_cutoff=int(m.max_count_rate_cps * exposure_s),
        layout=f"{model}/full",
    )


def centred(offset_phiy_mm: float = 0.0, omega: float = 0.0) -> dict[str, float]:
    pose = {"omega": omega, "kappa": 0.0, "phi": 0.0, "phiz": 0.0, "sampx": 0.0, "sampy": 0.0}
    pose.update(centred_pose(CRYSTAL_AT_MM))
    pose["phiy"] += offset_phiy_mm
    return pose


def render(
    renderer: FrameRenderer,
    pin: Pin | None,
    exposure_s: float = 0.1,
    oscillation_deg: float = 0.0,
    omega: float = 0.0,
    offset_phiy_mm: float = 0.0,
    flux_ph_s: float = 2e12,
    beam_um: tuple[float, float] = (20.0, 20.0),
    geometry: FrameGeometry | None = None,
) -> Frame:
    start = centred(offset_phiy_mm, omega)
    end = {**start, "omega": omega + oscillation_deg}
    geometry = geometry or frame_geometry(exposure_s=exposure_s)
    return renderer.render(geometry, Exposure(start, end, exposure_s, flux_ph_s, beam_um), pin)


class StrongPixels:
    """Pixels above what the background alone reaches with probability STRONG_TAIL."""

    def __init__(self, background: np.ndarray) -> None:
        mean = np.maximum(background, 1e-9)
        self.threshold = stats.poisson.isf(STRONG_TAIL, mean)
        self.noise_expectation = float(stats.poisson.sf(self.threshold, mean).sum())
        """How many strong pixels background alone gives on average."""

    def __call__(self, frame: Frame) -> np.ndarray:
        return frame.counts > self.threshold
