"""Detector: an Eiger-like pixel detector that writes frames to files."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class FileFormat(StrEnum):
    HDF5 = "hdf5"
    """NXmx-style master file plus data files, compressed with a standard HDF5 filter."""
    CBF = "cbf"
    """One miniCBF file per frame."""


class TriggerMode(StrEnum):
    INTERNAL = "internal"
    """``trigger()`` starts the series; frames are taken at the current pose."""
    EXTERNAL = "external"
    """Frames are taken on triggers from the goniometer (rotation or raster)."""


@dataclass(frozen=True)
class ArmRequest:
    """What the next acquisition writes: ``n_frames`` of ``exposure_s`` to
    ``directory/prefix_run`` in ``file_format``; omega values are recorded per frame."""

    n_frames: int
    exposure_s: float
    directory: Path
    prefix: str
    run_number: int = 1
    file_format: FileFormat = FileFormat.HDF5
    trigger_mode: TriggerMode = TriggerMode.EXTERNAL
    first_image_number: int = 1
    omega_start_deg: float = 0.0
    omega_increment_deg: float = 0.0
    header: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DetectorGeometry:
    """What a frame's reader needs to turn pixels into resolution."""

    shape: tuple[int, int]
    """(rows, columns) in pixels."""
    pixel_size_mm: float
    distance_mm: float
    beam_centre_px: tuple[float, float]
    """(x = column, y = row) in pixels."""


@dataclass(frozen=True)
class AcquisitionResult:
    frames_written: int
    paths: tuple[Path, ...]
    """Files written: the HDF5 master file first (then its data files), or every CBF."""


@runtime_checkable
class Detector(Protocol):
    name: str

    @property
    def geometry(self) -> DetectorGeometry: ...

    @property
    def roi_modes(self) -> tuple[str, ...]:
        """ROI modes this detector offers (``"full"`` first)."""

    @property
    def roi_mode(self) -> str: ...

    def set_roi_mode(self, mode: str) -> None: ...

    @property
    def max_frame_rate_hz(self) -> float: ...

    @property
    def distance_limits_mm(self) -> tuple[float, float]:
        """Shortest and longest sample-detector distance."""

    def move_distance(self, distance_mm: float) -> None: ...

    def arm(self, request: ArmRequest) -> None:
        """Prepare an acquisition; DetectorError if it cannot be done (rate, disk, state)."""

    def trigger(self) -> None:
        """Start an internally triggered series (no-op in external mode)."""

    def wait(self, timeout_s: float | None = None) -> AcquisitionResult:
        """Wait until every frame is written and the files are closed."""

    def stop(self) -> None:
        """Stop the current acquisition and close the files written so far."""

    @property
    def frames_written(self) -> int: ...

    @property
    def paths(self) -> tuple[Path, ...]: ...
