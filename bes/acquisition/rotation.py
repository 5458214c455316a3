"""Rotation scans: reference wedges for characterisation and data collections."""

from __future__ import annotations

from dataclasses import dataclass

from bes.acquisition.layout import Target
from bes.acquisition.scans import ScanFrames, acquire
from bes.acquisition.software_time import SoftwareTime
from bes.hal import Beamline
from bes.hal.detector import ArmRequest, FileFormat, TriggerMode


@dataclass(frozen=True)
class Rotation:
    """What to rotate: ``n_frames`` of ``oscillation_deg`` from ``omega_start_deg``."""

    omega_start_deg: float
    oscillation_deg: float
    n_frames: int
    exposure_s: float

    def __post_init__(self) -> None:
        if self.n_frames < 1:
            raise ValueError(f"a rotation needs at least one frame, got n_frames={self.n_frames}")
        if not self.oscillation_deg > 0:
            raise ValueError(f"oscillation_deg must be > 0, got {self.oscillation_deg}")
        if not self.exposure_s > 0:
            raise ValueError(f"exposure_s must be > 0, got {self.exposure_s}")

    @property
    def omega_end_deg(self) -> float:
        return self.omega_start_deg + self.n_frames * self.oscillation_deg

    @property
    def speed_deg_s(self) -> float:
        return self.oscillation_deg / self.exposure_s


def run_rotation(
    beamline: Beamline,
    rotation: Rotation,
    *,
    target: Target,
    file_format: FileFormat = FileFormat.HDF5,
    analyse: bool = False,
    keep_spots: bool = False,
    software: SoftwareTime | None = None,
    software_label: str = "rotation analysis",
) -> ScanFrames:
    """One continuous omega rotation triggering one frame per oscillation."""
    request = ArmRequest(
        n_frames=rotation.n_frames,
        exposure_s=rotation.exposure_s,
        directory=target.directory,
        prefix=target.prefix,
        run_number=target.run,
        file_format=file_format,
        trigger_mode=TriggerMode.EXTERNAL,
        omega_start_deg=rotation.omega_start_deg,
        omega_increment_deg=rotation.oscillation_deg,
        header={"scan": "rotation"},
    )

    def rotate() -> None:
        beamline.goniometer.rotate(
            rotation.omega_start_deg,
            rotation.omega_end_deg,
            rotation.speed_deg_s,
            n_triggers=rotation.n_frames,
        )

    return acquire(
        beamline,
        request,
        rotate,
        analyse=analyse,
        keep_spots=keep_spots,
        software=software,
        software_label=software_label,
    )
