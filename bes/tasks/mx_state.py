"""What the tasks of one MX recipe run share: the sample, its parameters, where files go,
the LIMS writer, the dose spent, and every decision in words.

Results that decide the path through a recipe travel on its links as task outputs (and are
recorded with every node); the bookkeeping below lives in the run's ``RunContext.state``
under ``"sample_run"``, made by the recipe's first node (``PrepareRun``).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bes.acquisition.layout import DataLayout, Target, safe_name
from bes.acquisition.scans import ScanFrames
from bes.acquisition.software_time import SoftwareTime
from bes.analysis.dose import dose_gy
from bes.hal.beam import Beam
from bes.hal.sample_changer import Location
from bes.tasks.base import BesTask
from bes.tasks.lims_records import LimsWriter, ScanRecord
from bes.tasks.parameters import MxParameters

if TYPE_CHECKING:
    from bes.acquisition.mesh import MeshScan
    from bes.analysis.mesh_geometry import MeshGeometry
    from bes.analysis.xray_centring import CentringResult

STATE_KEY = "sample_run"


@dataclass
class Collected:
    """One rotation data set written."""

    master_file: str
    n_frames: int
    omega_start_deg: float
    oscillation_deg: float
    exposure_s: float
    transmission: float
    positions: dict[str, float]
    dose_mgy: float
    processing: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "master_file": self.master_file,
            "n_frames": self.n_frames,
            "omega_start_deg": round(self.omega_start_deg, 3),
            "oscillation_deg": self.oscillation_deg,
            "exposure_s": self.exposure_s,
            "transmission": round(self.transmission, 5),
            "positions": self.positions,
            "dose_mgy": round(self.dose_mgy, 3),
            "processing": self.processing,
        }


@dataclass
class SampleRun:
    """The state of one sample's recipe run (see the module docstring)."""

    recipe: str
    parameters: MxParameters
    location: Location | None
    sample_name: str
    layout: DataLayout
    lims: LimsWriter
    software: SoftwareTime
    start_beamline_s: float
    transmission: float
    """Transmission for the next mesh (lowered after overloads)."""
    mesh_attempt: int = 0
    attenuations: int = 0
    loop: dict[str, Any] | None = None
    """Loop centring result: found, length/heights in um, face-on omega, positions."""
    mesh_plan: dict[str, MeshGeometry] = field(default_factory=dict)
    """Planned mesh per face (``first``, ``second``, ``line``)."""
    meshes: dict[str, MeshScan] = field(default_factory=dict)
    """Last mesh per face."""
    mesh_groups: dict[str, Any] = field(default_factory=dict)
    """LIMS data collection group of the last mesh per face."""
    centring: CentringResult | None = None
    crystal_index: int = 0
    """mesh_and_collect: regions collected so far."""
    crystal: dict[str, Any] | None = None
    """Where the crystal being worked on is: positions, size (um), score."""
    mesh_resolution_a: float | None = None
    characterisation: dict[str, Any] | None = None
    strategy: dict[str, Any] | None = None
    dose_used_mgy: float = 0.0
    collections: list[Collected] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    outcome: str | None = None
    success: bool | None = None
    reason: str | None = None
    mounted_by_run: bool = False
    background: list[Future[Any]] = field(default_factory=list)
    """Work off the hardware's path (heat maps); waited for when the run ends."""

    @property
    def prefix(self) -> str:
        return self.parameters.prefix or safe_name(self.sample_name)

    def reserve(self, kind: str, subdir: str = "") -> Target:
        """A new run number for files of ``kind`` (``mesh``, ``ref``, ``dc``) of this sample."""
        prefix = f"{kind}-{self.prefix}"
        return self.layout.reserve(
            safe_name(self.sample_name), prefix, subdir=subdir, run=self.parameters.run_number
        )

    def processed_directory(self, subdir: str = "") -> str:
        return str(self.layout.directory(safe_name(self.sample_name), "PROCESSED_DATA", subdir))


class MxTask(BesTask, register=False):
    """A task of an MX recipe: reaches the run's :class:`SampleRun`."""

    @property
    def sample_run(self) -> SampleRun:
        state = self.context.state.get(STATE_KEY)
        if not isinstance(state, SampleRun):
            raise RuntimeError(
                f"task {type(self).__name__} needs the sample run that PrepareRun makes; "
                "start the recipe with a bes.tasks.prepare.PrepareRun node"
            )
        return state

    def decide(self, decision: str, reason: str) -> None:
        """Record a decision in words (run summary, workflow database ``reason``)."""
        self.sample_run.decisions.append(f"{decision}: {reason}")
        self.report("reason", reason)

    def scan_record(
        self,
        scan: ScanFrames,
        target: Target,
        *,
        omega_start_deg: float,
        oscillation_deg: float,
        exposure_s: float,
        transmission: float,
        comments: str,
        resolution_a: float | None = None,
    ) -> ScanRecord:
        """The LIMS DataCollection of a scan just written, with the beamline's state."""
        beam = self.beamline.beam
        geometry = self.beamline.detector.geometry
        x_px, y_px = geometry.beam_centre_px
        return ScanRecord(
            start=scan.start,
            omega_start_deg=omega_start_deg,
            oscillation_deg=oscillation_deg,
            n_images=scan.result.frames_written,
            exposure_s=exposure_s,
            directory=str(target.directory),
            prefix=target.prefix,
            run_number=target.run,
            suffix="h5" if scan.master_file.suffix == ".h5" else "cbf",
            file_template=target.file_template(),
            wavelength_a=beam.wavelength_a,
            resolution_a=resolution_a,
            detector_distance_mm=geometry.distance_mm,
            beam_centre_mm=(x_px * geometry.pixel_size_mm, y_px * geometry.pixel_size_mm),
            transmission=transmission,
            beam_size_um=beam.beam_size_um,
            flux_ph_s=beam.flux_ph_s,
            comments=comments,
        )

    def conclude(self, outcome: str, reason: str, success: bool) -> None:
        """The recipe's verdict on the sample (the last one reported wins)."""
        run = self.sample_run
        run.outcome, run.reason, run.success = outcome, reason, success
        self.report("outcome", outcome)
        self.report("success", success)
        self.report("reason", reason)


def frame_dose_mgy(
    beam: Beam,
    exposure_s: float,
    crystal_size_um: tuple[float, float] | None = None,
    flux_ph_s: float | None = None,
) -> float:
    """Dose of one exposure (MGy) at ``flux_ph_s`` (default: the beam's flux now)."""
    flux = beam.flux_ph_s if flux_ph_s is None else flux_ph_s
    return dose_gy(flux, exposure_s, beam.beam_size_um, beam.energy_kev, crystal_size_um) * 1e-6
