"""The simulated detector (implements ``bes.hal.Detector``): renders frames from the shared
world at the goniometer's pose and writes them as NXmx HDF5 or miniCBF.

External trigger mode: one frame per goniometer :class:`~simulators.triggers.Trigger`
(the goniometer spends the time). Internal mode: ``trigger()`` takes every frame at the
current pose (omega advancing by the request's increment) and spends their time on the
clock. Frames are dark while the shutter is closed or there is no beam. Faults
(``detector_error``, ``disk_full``) are decided at arm and strike at a random frame after
the first: frames before it stay written, the files are closed, and ``wait()`` raises.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bes.hal.beam import HC_KEV_A
from bes.hal.detector import (
    AcquisitionResult,
    ArmRequest,
    DetectorGeometry,
    FileFormat,
    TriggerMode,
)
from bes.hal.errors import DetectorError, DeviceError, DiskFullError
from simulators.clock import SimClock
from simulators.detector_models import DetectorModel, detector_models
from simulators.diffraction import Exposure, Frame, FrameGeometry, FrameRenderer
from simulators.faults import FaultPlan
from simulators.profile import TimingProfile, load_profile
from simulators.triggers import Trigger, TriggerLine
from simulators.world import Pin, SampleWorld
from simulators.writers import (
    BackgroundWriter,
    CbfWriter,
    FrameInfo,
    Hdf5Writer,
    SeriesInfo,
    SeriesWriter,
)

DEVICE = "detector"
NO_PROGRESS_TIMEOUT_S = 60.0
"""wait() without a timeout gives up when no frame has come for this many wall seconds."""


@dataclass
class _Acquisition:
    """One armed series: what was asked, where it is written, and how it ended."""

    request: ArmRequest
    writer: SeriesWriter
    geometry: FrameGeometry
    pin: str | None
    fail_at: int | None
    """Frame index where the injected fault strikes (None: no fault)."""
    fail_kind: str | None
    frames: int = 0
    error: DeviceError | None = None
    closed: bool = False
    paths: tuple[Path, ...] = ()
    charged_bytes: int = 0
    """Bytes of this series already counted in the detector's ``bytes_written``."""
    done: threading.Condition = field(default_factory=threading.Condition)


class SimDetector:
    """Simulated EIGER-like detector; see the module docstring.

    ``model``: ``small`` (512 x 512, 0.2 mm) or ``eiger2_4m`` (2162 x 2068, 75 um).
    ``distance_mm``: None puts 2 A at the nearest edge at the world's energy.
    ``disk_quota_bytes``: room on the data disk (None: unlimited); exceeding it mid-series
    raises DiskFullError. ``beam_profile``: ``gaussian`` or ``tophat``.
    """

    name = DEVICE

    def __init__(
        self,
        model: str = "small",
        clock: SimClock | None = None,
        profile: TimingProfile | None = None,
        world: SampleWorld | None = None,
        faults: FaultPlan | None = None,
        triggers: TriggerLine | None = None,
        distance_mm: float | None = None,
        frames_per_data_file: int = 100,
        disk_quota_bytes: int | None = None,
        beam_profile: str = "gaussian",
        seed: int | None = None,
    ) -> None:
        models = detector_models()
        if model not in models:
            raise ValueError(f"unknown detector model {model!r}; known: {', '.join(models)}")
        if frames_per_data_file < 1:
            raise ValueError(f"frames_per_data_file must be >= 1, got {frames_per_data_file}")
        self.model: DetectorModel = models[model]
        self._clock = clock if clock is not None else SimClock("instant")
        self._timing = (profile if profile is not None else load_profile()).detector
        self._world = world if world is not None else SampleWorld(pins={})
        self._faults = faults if faults is not None else FaultPlan()
        self._triggers = triggers if triggers is not None else TriggerLine()
        self.frames_per_data_file = frames_per_data_file
        self.disk_quota_bytes = disk_quota_bytes
        self.bytes_written = 0
        """Bytes this detector has put on the data disk (counted against the quota)."""
        world_seed = self._world.seed if self._world.seed is not None else 0
        self._renderer = FrameRenderer(
            seed=seed if seed is not None else world_seed, beam_profile=beam_profile
        )
        self._fault_rng = np.random.default_rng([world_seed, 4242])
        self._mask_full = self.model.mask()
        self._roi_mode = "full"
        with self._world.lock:
            energy = self._world.beam.energy_kev
        self._distance_mm = (
            float(distance_mm)
            if distance_mm is not None
            else self.model.default_distance_mm(HC_KEV_A / energy)
        )
        self._check_distance(self._distance_mm)
        self._lock = threading.RLock()
        self._acq: _Acquisition | None = None
        self._last = AcquisitionResult(frames_written=0, paths=())
        self.last_frame: Frame | None = None
        """The last frame rendered, with its truth (spot positions, lit fraction)."""

    # --- description ------------------------------------------------------------------

    @property
    def geometry(self) -> DetectorGeometry:
        roi = self.model.roi(self._roi_mode)
        x, y = self.model.beam_centre_px()
        return DetectorGeometry(
            shape=(roi.rows[1] - roi.rows[0], self.model.shape[1]),
            pixel_size_mm=self.model.pixel_size_mm,
            distance_mm=self._distance_mm,
            beam_centre_px=(x, y - roi.rows[0]),
        )

    @property
    def mask(self) -> np.ndarray:
        """True where the current ROI has no pixel (module gaps)."""
        rows = self.model.roi(self._roi_mode).rows
        return self._mask_full[rows[0] : rows[1]]

    @property
    def roi_modes(self) -> tuple[str, ...]:
        return ("full", *self.model.roi_modes)

    @property
    def roi_mode(self) -> str:
        return self._roi_mode

    def set_roi_mode(self, mode: str) -> None:
        self.model.roi(mode)  # ValueError naming the known modes
        with self._lock:
            self._check_idle("change the ROI mode")
            self._roi_mode = mode

    @property
    def max_frame_rate_hz(self) -> float:
        base = self.model.max_frame_rate_hz or self._timing.max_frame_rate_hz
        return base * self.model.roi(self._roi_mode).rate_factor

    def count_cutoff(self, exposure_s: float) -> int:
        """Counts at which a pixel overloads for frames of ``exposure_s``."""
        return max(1, min(int(self.model.max_count_rate_cps * exposure_s), 2**32 - 2))

    def describe(self) -> dict[str, Any]:
        rows, cols = self.geometry.shape
        return {
            "model": self.model.name,
            "shape": f"{rows}x{cols}",
            "pixel_size_mm": self.model.pixel_size_mm,
            "distance_mm": self._distance_mm,
            "max_frame_rate_hz": self.max_frame_rate_hz,
            "roi_mode": self._roi_mode,
            "count_rate_cps": self.model.max_count_rate_cps,
        }

    # --- distance ---------------------------------------------------------------------

    @property
    def distance_limits_mm(self) -> tuple[float, float]:
        return self.model.distance_limits_mm

    def move_distance(self, distance_mm: float) -> None:
        self._check_distance(distance_mm)
        with self._lock:
            self._check_idle("move the detector")
            travel = abs(distance_mm - self._distance_mm)
            self._clock.spend(
                DEVICE,
                "move_distance",
                travel / self._timing.distance_speed_mm_s,
                start_mm=self._distance_mm,
                end_mm=float(distance_mm),
            )
            self._distance_mm = float(distance_mm)

    def _check_distance(self, distance_mm: float) -> None:
        low, high = self.model.distance_limits_mm
        if not low <= distance_mm <= high:
            raise DetectorError(
                DEVICE,
                f"distance {distance_mm:g} mm outside the {self.model.name} limits "
                f"{low:g}..{high:g} mm",
            )

    # --- acquisition ------------------------------------------------------------------

    def arm(self, request: ArmRequest) -> None:
        with self._lock:
            self._check_idle("arm")
            pin_label, pin = self._mounted()
            self._validate(request, pin_label)
            geometry = self._frame_geometry(request.exposure_s)
            writer = self._writer(request, geometry, pin)
            try:
                writer.open()
            except FileExistsError as exc:
                raise DetectorError(DEVICE, str(exc), pin=pin_label) from None
            except OSError as exc:
                raise DetectorError(
                    DEVICE, f"cannot write in {request.directory}: {exc}", pin=pin_label
                ) from None
            kind, fail_at = self._planned_fault(request.n_frames, pin_label, pin)
            self._acq = _Acquisition(
                request=request,
                writer=writer,
                geometry=geometry,
                pin=pin_label,
                fail_at=fail_at,
                fail_kind=kind,
            )
            self._settle_bytes(self._acq)
            if request.trigger_mode == TriggerMode.EXTERNAL:
                self._triggers.connect(self._on_trigger)
        self._clock.spend(
            DEVICE,
            "arm",
            self._timing.arm_s,
            pin=pin_label,
            n_frames=request.n_frames,
            exposure_s=request.exposure_s,
            format=str(request.file_format),
            mode=str(request.trigger_mode),
        )

    def trigger(self) -> None:
        with self._lock:
            acq = self._acq
            if acq is None:
                raise DetectorError(DEVICE, "trigger() without arm(): arm the detector first")
            if acq.request.trigger_mode != TriggerMode.INTERNAL or acq.closed:
                return
            request = acq.request
            with self._world.lock:
                pose = dict(self._world.pose)
            start = time.perf_counter()
            first = acq.frames
            for i in range(first, request.n_frames):
                omega = pose["omega"] + i * request.omega_increment_deg
                pose_start = {**pose, "omega": omega}
                pose_end = {**pose, "omega": omega + request.omega_increment_deg}
                if not self._take_frame(acq, i, pose_start, pose_end):
                    break
            taken = acq.frames - first
        frame_time = request.exposure_s + self._timing.dead_time_s
        self._clock.spend(
            DEVICE,
            "expose",
            taken * frame_time,
            pin=acq.pin,
            frames=taken,
            render_wall_s=round(time.perf_counter() - start, 3),
        )
        with self._lock:
            if acq.frames >= request.n_frames or acq.error is not None:
                self._finish(acq)

    def wait(self, timeout_s: float | None = None) -> AcquisitionResult:
        """Block until the series is complete (or failed); ``timeout_s`` in wall seconds.

        Without a timeout, a series that gets no frame for NO_PROGRESS_TIMEOUT_S wall seconds
        fails (a goniometer that stopped sending triggers must not hang the caller).
        """
        with self._lock:
            acq = self._acq
        if acq is None:
            return self._last
        limit = timeout_s if timeout_s is not None else NO_PROGRESS_TIMEOUT_S
        deadline = time.monotonic() + limit
        seen = acq.frames
        with acq.done:
            while not acq.closed:
                if timeout_s is None and acq.frames != seen:
                    seen, deadline = acq.frames, time.monotonic() + limit
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                acq.done.wait(min(left, 1.0))
        with self._lock:
            if self._acq is not acq:  # another caller finished it
                return self._last
            if not acq.closed:
                self._finish(acq)
                acq.error = acq.error or DetectorError(
                    DEVICE,
                    f"gave up waiting after {limit:g} s with {acq.frames} of "
                    f"{acq.request.n_frames} frames; files closed with the frames received",
                    pin=acq.pin,
                )
            self._acq = None
            self._last = AcquisitionResult(frames_written=acq.frames, paths=acq.paths)
        self._clock.spend(DEVICE, "disarm", self._timing.disarm_s, pin=acq.pin)
        if acq.error is not None:
            raise acq.error
        return self._last

    def stop(self) -> None:
        with self._lock:
            acq = self._acq
            if acq is None:
                return
            self._finish(acq)
            self._acq = None
            self._last = AcquisitionResult(frames_written=acq.frames, paths=acq.paths)

    @property
    def frames_written(self) -> int:
        acq = self._acq
        return acq.frames if acq is not None else self._last.frames_written

    @property
    def paths(self) -> tuple[Path, ...]:
        acq = self._acq
        return acq.writer.written() if acq is not None else self._last.paths

    def render(
        self,
        pose_start: Mapping[str, float],
        pose_end: Mapping[str, float] | None = None,
        exposure_s: float = 0.1,
    ) -> Frame:
        """A frame of the world as it is now, between two poses, without writing or spending
        time: for benchmarks and for checking what the detector would see."""
        with self._lock:
            geometry = self._frame_geometry(exposure_s)
            flux, size = self._beam_at_sample()
            exposure = Exposure(
                dict(pose_start), dict(pose_end or pose_start), exposure_s, flux, size
            )
            return self._renderer.render(geometry, exposure, self._pin())

    # --- internals --------------------------------------------------------------------

    def _check_idle(self, action: str) -> None:
        if self._acq is not None:
            raise DetectorError(
                DEVICE,
                f"cannot {action} while armed ({self._acq.frames} of "
                f"{self._acq.request.n_frames} frames); call wait() or stop() first",
                pin=self._acq.pin,
            )

    def _mounted(self) -> tuple[str | None, Pin | None]:
        with self._world.lock:
            pin = self._world.mounted_pin
            label = str(self._world.mounted) if self._world.mounted else None
        return label, pin

    def _validate(self, request: ArmRequest, pin: str | None) -> None:
        if request.n_frames < 1:
            raise DetectorError(DEVICE, f"n_frames must be >= 1, got {request.n_frames}", pin=pin)
        if not request.exposure_s > 0:
            raise DetectorError(
                DEVICE, f"exposure must be > 0 s, got {request.exposure_s!r}", pin=pin
            )
        period = request.exposure_s + self._timing.dead_time_s
        rate = self.max_frame_rate_hz
        if period < 1.0 / rate - 1e-12:
            raise DetectorError(
                DEVICE,
                f"exposure {request.exposure_s:g} s + dead time {self._timing.dead_time_s:g} s "
                f"= {period:g} s is shorter than the frame period {1.0 / rate:g} s of the "
                f"{self.model.name} ({self._roi_mode} ROI) at its maximum {rate:g} Hz; "
                f"use an exposure of at least {1.0 / rate - self._timing.dead_time_s:g} s",
                pin=pin,
            )
        if request.file_format not in (FileFormat.HDF5, FileFormat.CBF):
            raise DetectorError(DEVICE, f"unknown file format {request.file_format!r}", pin=pin)
        directory = Path(request.directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DetectorError(
                DEVICE, f"cannot create data directory {directory}: {exc}", pin=pin
            ) from None
        if not os.access(directory, os.W_OK):
            raise DetectorError(DEVICE, f"data directory {directory} is not writable", pin=pin)
        room = None if self.disk_quota_bytes is None else self.disk_quota_bytes - self.bytes_written
        if room is not None and room < self._first_frame_bytes(self.geometry.shape):
            raise DiskFullError(
                DEVICE,
                f"data disk full: {self.bytes_written} of {self.disk_quota_bytes} bytes used; "
                f"free space before collecting to {directory}",
                pin=pin,
            )

    def _frame_geometry(self, exposure_s: float) -> FrameGeometry:
        g = self.geometry
        with self._world.lock:
            energy = self._world.beam.energy_kev
        return FrameGeometry(
            shape=g.shape,
            pixel_size_mm=g.pixel_size_mm,
            distance_mm=g.distance_mm,
            beam_centre_px=g.beam_centre_px,
            wavelength_a=HC_KEV_A / energy,
            mask=self.mask,
            spot_sigma_px=self.model.spot_sigma_px,
            count_cutoff=self.count_cutoff(exposure_s),
            layout=f"{self.model.name}/{self._roi_mode}",
        )

    def _writer(
        self, request: ArmRequest, geometry: FrameGeometry, pin: Pin | None
    ) -> SeriesWriter:
        with self._world.lock:
            beam = self._world.beam
            flux = beam.full_flux_ph_s * beam.transmission if beam.available else 0.0
            transmission, size = beam.transmission, beam.beam_size_um
            pose = dict(self._world.pose)
        info = SeriesInfo(
            directory=Path(request.directory),
            prefix=request.prefix,
            run_number=request.run_number,
            n_frames=request.n_frames,
            geometry=self.geometry,
            wavelength_a=geometry.wavelength_a,
            exposure_s=request.exposure_s,
            frame_time_s=request.exposure_s + self._timing.dead_time_s,
            count_cutoff=geometry.count_cutoff,
            mask=geometry.mask,
            omega_start_deg=request.omega_start_deg,
            omega_increment_deg=request.omega_increment_deg,
            first_image_number=request.first_image_number,
            detector_description=self.model.description,
            sensor_material=self.model.sensor_material,
            sensor_thickness_mm=self.model.sensor_thickness_mm,
            flux_ph_s=flux,
            transmission=transmission,
            beam_size_um=size,
            pose=pose,
            sample_name=pin.name if pin is not None else "",
            roi_mode=self._roi_mode,
            extra=dict(request.header),
        )
        if request.file_format == FileFormat.CBF:
            return BackgroundWriter(CbfWriter(info))
        return BackgroundWriter(Hdf5Writer(info, self.frames_per_data_file))

    def _planned_fault(
        self, n_frames: int, pin_label: str | None, pin: Pin | None
    ) -> tuple[str | None, int | None]:
        pin_faults = pin.faults if pin is not None else set()
        for kind in ("detector_error", "disk_full"):
            if self._faults.should_fire(kind, pin_label, pin_faults):
                index = int(self._fault_rng.integers(1, n_frames)) if n_frames > 1 else 0
                return kind, index
        return None, None

    def _on_trigger(self, trigger: Trigger) -> None:
        """A goniometer trigger: take one frame (errors are kept for wait(), never raised
        into the goniometer)."""
        with self._lock:
            acq = self._acq
            if acq is None or acq.closed or acq.frames >= acq.request.n_frames:
                return
            self._take_frame(acq, acq.frames, trigger.pose_start, trigger.pose_end)
            if acq.frames >= acq.request.n_frames or acq.error is not None:
                self._finish(acq)

    def _take_frame(
        self,
        acq: _Acquisition,
        index: int,
        pose_start: Mapping[str, float],
        pose_end: Mapping[str, float],
    ) -> bool:
        """Render and write frame ``index``; False (error stored, files closed) if it failed."""
        try:
            if acq.fail_at is not None and index >= acq.fail_at:
                raise self._injected_error(acq, index)
            self._check_quota(acq, index)
            frame = self._renderer.render(
                acq.geometry, self._exposure(acq, pose_start, pose_end), self._pin()
            )
            acq.writer.write(frame.counts, FrameInfo(index, dict(pose_start), dict(pose_end)))
            self._settle_bytes(acq)
        except DeviceError as exc:
            acq.error = exc
        except OSError as exc:
            acq.error = DetectorError(DEVICE, f"writing frame {index} failed: {exc}", pin=acq.pin)
        if acq.error is not None:
            self._finish(acq)
            return False
        self.last_frame = frame
        acq.frames += 1
        with acq.done:
            acq.done.notify_all()
        return True

    def _exposure(
        self, acq: _Acquisition, pose_start: Mapping[str, float], pose_end: Mapping[str, float]
    ) -> Exposure:
        """This frame's exposure with the beam at the sample now."""
        flux, size = self._beam_at_sample()
        return Exposure(
            pose_start=dict(pose_start),
            pose_end=dict(pose_end),
            exposure_s=acq.request.exposure_s,
            flux_ph_s=flux,
            beam_size_um=size,
        )

    def _beam_at_sample(self) -> tuple[float, tuple[float, float]]:
        """Flux (0 while the shutter is closed or the beam is lost) and beam size now."""
        with self._world.lock:
            beam = self._world.beam
            lit = beam.available and beam.shutter_open
            flux = beam.full_flux_ph_s * beam.transmission if lit else 0.0
            return flux, beam.beam_size_um

    def _pin(self) -> Pin | None:
        with self._world.lock:
            return self._world.mounted_pin

    def _injected_error(self, acq: _Acquisition, index: int) -> DeviceError:
        where = f"at frame {index} of {acq.request.n_frames} ({acq.request.prefix})"
        if acq.fail_kind == "disk_full":
            return DiskFullError(DEVICE, f"data disk full {where}", pin=acq.pin)
        return DetectorError(DEVICE, f"detector error {where}", pin=acq.pin)

    def _check_quota(self, acq: _Acquisition, index: int) -> None:
        """DiskFullError if this frame (and those still being written) would not fit."""
        if self.disk_quota_bytes is None:
            return
        done = acq.writer.frames_written
        per_frame = (
            acq.charged_bytes / done if done else self._first_frame_bytes(acq.geometry.shape)
        )
        in_flight = acq.frames - done + 1
        if self.bytes_written + in_flight * per_frame > self.disk_quota_bytes:
            raise DiskFullError(
                DEVICE,
                f"data disk full at frame {index} of {acq.request.n_frames}: "
                f"{self.bytes_written} of {self.disk_quota_bytes} bytes used",
                pin=acq.pin,
            )

    @staticmethod
    def _first_frame_bytes(shape: tuple[int, int]) -> float:
        """Guess of a compressed frame's size before any is written: a quarter of 32 bits."""
        return shape[0] * shape[1] * 4 / 4.0

    def _charge(self, n_bytes: int) -> None:
        self.bytes_written += max(0, int(n_bytes))

    def _settle_bytes(self, acq: _Acquisition) -> None:
        """Count the bytes the series' files hold now against the quota."""
        now = acq.writer.bytes_on_disk()
        self._charge(now - acq.charged_bytes)
        acq.charged_bytes = now

    def _finish(self, acq: _Acquisition) -> None:
        """Close the files (once) and stop listening to triggers."""
        if acq.closed:
            return
        self._triggers.disconnect(self._on_trigger)
        try:
            acq.paths = acq.writer.close()
        except OSError as exc:
            acq.paths = acq.writer.written()
            if acq.error is None:
                acq.error = DetectorError(DEVICE, f"writing the files failed: {exc}", pin=acq.pin)
        self._settle_bytes(acq)
        acq.frames = acq.writer.frames_written
        acq.closed = True
        self._renderer.close()  # its threads end with the series (the maps stay cached)
        with acq.done:
            acq.done.notify_all()
