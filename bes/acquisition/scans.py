"""Run one detector acquisition while a motion (raster or rotation) triggers it, and analyse
the frames as they are written, not after the scan.

The motion runs in a worker thread; this thread follows the files the detector writes and
runs the spot finder on each frame as soon as it is readable. When the motion fails (a
detector or motor fault, an abort) following stops at once and the fault is raised here.
What the analysis still had to do after the last frame was written is the time the
hardware waited for software (``SoftwareTime``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bes.acquisition.finders import finder_for
from bes.acquisition.software_time import SoftwareTime
from bes.analysis.diffraction_geometry import DiffractionGeometry
from bes.analysis.spotfinder import FrameSpots
from bes.frames.cbf import CbfSeries
from bes.frames.nxmx import NxmxSeries
from bes.frames.source import FrameSeries
from bes.hal import Beamline
from bes.hal.detector import AcquisitionResult, ArmRequest, FileFormat
from bes.hal.errors import ActionInterrupted

FIRST_FILE_TIMEOUT_S = 30.0
"""How long to wait for the detector's first file before calling the acquisition stuck."""
STALL_TIMEOUT_S = 60.0
"""How long the analysis waits for a frame that does not come while the motion still runs."""


@dataclass(frozen=True)
class ScanFrames:
    """An acquisition and, when analysed, each frame's spots in acquisition order."""

    result: AcquisitionResult
    frames: tuple[FrameSpots, ...]
    geometry: DiffractionGeometry | None
    """The frames' geometry as the files give it (None when not analysed)."""
    omegas_deg: tuple[float, ...]
    start: datetime
    end: datetime
    beamline_s: float
    """Beamline time from arming to the last file closed."""
    analysis_wait_s: float
    """Wall time the analysis needed after the last frame was written."""

    @property
    def master_file(self) -> Path:
        return self.result.paths[0]


def acquire(
    beamline: Beamline,
    request: ArmRequest,
    motion: Callable[[], None],
    *,
    analyse: bool = True,
    keep_spots: bool = False,
    software: SoftwareTime | None = None,
    software_label: str = "analysis",
) -> ScanFrames:
    """Arm the detector, run ``motion`` (which triggers it) in a worker thread, follow and
    analyse the frames, wait for the files. The shutter is open only during the motion. An
    abort stops the beamline, so the motion fails and following ends with it."""
    clock = beamline.clock
    start, start_s = datetime.now(UTC), clock.now()
    detector = beamline.detector
    detector.arm(request)
    failure: list[BaseException] = []
    results: list[AcquisitionResult] = []
    motion_done = threading.Event()
    halt = threading.Event()
    motion_ended_at: list[float] = []

    def run_motion() -> None:
        try:
            beamline.shutter.open()
            try:
                motion()
            finally:
                beamline.shutter.close()
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)
            halt.set()
        finally:
            motion_ended_at.append(time.perf_counter())
            motion_done.set()
        if failure:
            return
        # The detector's own verdict: a detector fault cuts the series short, and following
        # must stop at once with the fault (not stall, or trip over the short files).
        try:
            result = detector.wait()
        except BaseException as exc:
            failure.append(exc)
            halt.set()
            return
        if result.frames_written < request.n_frames:
            # Stopped short without a fault: an abort stopped the detector after the motion
            # ended. No more frames will come; following must not wait for them.
            failure.append(
                ActionInterrupted(
                    detector.name,
                    f"acquisition stopped after {result.frames_written} of "
                    f"{request.n_frames} frames",
                )
            )
            halt.set()
            return
        results.append(result)

    worker = threading.Thread(target=run_motion, name="bes-scan-motion", daemon=True)
    worker.start()
    frames: list[FrameSpots] = []
    omegas: list[float] = []
    geometry: DiffractionGeometry | None = None
    try:
        if analyse:
            series = _open_series(beamline, request, halt, motion_done)
            if series is not None:
                geometry = series.geometry
                finder = finder_for(series)
                for frame in series.frames(stall_timeout_s=STALL_TIMEOUT_S, stop=halt):
                    frames.append(finder.find(frame.image, keep_spots=keep_spots))
                    omegas.append(frame.omega_deg)
        worker.join()
        if failure:
            raise failure[0]
        result = results[0]
    except BaseException:
        worker.join(timeout=5.0)  # a detector fault behind a reader's error arrives here
        detector.stop()
        worker.join(timeout=5.0)
        if failure:
            raise failure[0] from None
        raise
    analysed_at = time.perf_counter()
    wait_s = max(0.0, analysed_at - motion_ended_at[0]) if analyse and motion_ended_at else 0.0
    if software is not None and wait_s > 0:
        software.add(software_label, wait_s)
    return ScanFrames(
        result=result,
        frames=tuple(frames),
        geometry=geometry,
        omegas_deg=tuple(omegas),
        start=start,
        end=datetime.now(UTC),
        beamline_s=clock.now() - start_s,
        analysis_wait_s=wait_s,
    )


def _open_series(
    beamline: Beamline,
    request: ArmRequest,
    halt: threading.Event,
    motion_done: threading.Event,
) -> FrameSeries | None:
    """The series the detector writes, once its first file exists (None if the scan failed
    before writing anything)."""
    deadline = time.monotonic() + FIRST_FILE_TIMEOUT_S
    while True:
        paths = beamline.detector.paths
        if paths and paths[0].exists():
            if request.file_format == FileFormat.HDF5:
                return NxmxSeries(paths[0])
            return CbfSeries.from_first_file(paths[0], request.n_frames)
        if halt.is_set():
            return None
        if motion_done.is_set() and not paths:
            raise TimeoutError(
                f"the detector wrote no file for {request.prefix}_{request.run_number} "
                "although the scan ended"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the detector's first file for {request.prefix}_{request.run_number} did not "
                f"appear within {FIRST_FILE_TIMEOUT_S:g} s"
            )
        time.sleep(0.002)
