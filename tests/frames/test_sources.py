"""Frame sources read what the simulated detector wrote, also while it is still writing."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bes.frames import CbfSeries, FrameStall, NxmxSeries, open_series
from bes.hal import ArmRequest, Beamline, FileFormat, TriggerMode
from tests.conftest import make_sim_beamline


def acquire(beamline: Beamline, directory: Path, file_format: FileFormat, n: int = 7) -> Path:
    """A rotation of ``n`` frames of 0.5 deg with the shutter open; the first file written."""
    beamline.sample_changer.load(beamline.sample_changer.inventory()[0].location)
    beamline.shutter.open()
    beamline.detector.arm(
        ArmRequest(
            n_frames=n,
            exposure_s=0.01,
            directory=directory,
            prefix="ref",
            file_format=file_format,
            trigger_mode=TriggerMode.EXTERNAL,
            omega_start_deg=10.0,
            omega_increment_deg=0.5,
        )
    )
    beamline.goniometer.rotate(10.0, 10.0 + 0.5 * n, 50.0, n_triggers=n)
    result = beamline.detector.wait()
    beamline.shutter.close()
    assert result.frames_written == n
    return result.paths[0]


@pytest.fixture
def beamline() -> Beamline:
    return make_sim_beamline(detector={"frames_per_data_file": 3})


def test_nxmx_series_gives_geometry_frames_and_omegas(beamline: Beamline, tmp_path: Path) -> None:
    master = acquire(beamline, tmp_path, FileFormat.HDF5)
    series = open_series(master)
    assert isinstance(series, NxmxSeries)
    geometry = beamline.detector.geometry
    assert series.geometry.shape == geometry.shape
    assert series.geometry.distance_mm == pytest.approx(geometry.distance_mm)
    assert series.geometry.beam_centre_px == pytest.approx(geometry.beam_centre_px)
    assert series.geometry.wavelength_a == pytest.approx(beamline.beam.wavelength_a)
    frames = list(series.frames(stall_timeout_s=1.0))
    assert [f.index for f in frames] == list(range(7))
    assert frames[0].image.shape == geometry.shape
    omegas = [f.omega_deg for f in frames]
    assert np.all(np.diff(omegas) > 0) and omegas[0] >= 10.0 - 1e-6


def test_cbf_series_reads_the_same_geometry(beamline: Beamline, tmp_path: Path) -> None:
    first = acquire(beamline, tmp_path, FileFormat.CBF, n=4)
    series = open_series(first)
    assert isinstance(series, CbfSeries)
    assert series.n_frames == 4
    assert series.geometry.distance_mm == pytest.approx(beamline.detector.geometry.distance_mm)
    frames = list(series.frames(stall_timeout_s=1.0))
    assert len(frames) == 4 and frames[1].omega_deg > frames[0].omega_deg
    assert all(f.image.min() >= 0 for f in frames)  # gap pixels (-1) read as 0


def test_nxmx_frames_arrive_while_the_scan_is_written(beamline: Beamline, tmp_path: Path) -> None:
    written = tmp_path / "written"
    written.mkdir()
    master = acquire(beamline, written, FileFormat.HDF5)
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(master, live / master.name)
    data_files = sorted(written.glob("*_data_*.h5"))
    assert len(data_files) == 3

    def detector_writes() -> None:
        for path in data_files:
            time.sleep(0.05)
            shutil.copy(path, live / (path.name + ".part"))
            (live / (path.name + ".part")).rename(live / path.name)

    writer = threading.Thread(target=detector_writes)
    series = NxmxSeries(live / master.name)
    assert series.available() == 0
    writer.start()
    got = [f.index for f in series.frames(stall_timeout_s=5.0, poll_s=0.005)]
    writer.join()
    assert got == list(range(7))


def test_a_stalled_scan_is_reported(beamline: Beamline, tmp_path: Path) -> None:
    master = acquire(beamline, tmp_path, FileFormat.HDF5)
    for path in tmp_path.glob("*_data_000003.h5"):
        path.unlink()
    series = NxmxSeries(master)
    with pytest.raises(FrameStall, match="6 of 7 frames"):
        list(series.frames(stall_timeout_s=0.2, poll_s=0.01))


def test_unknown_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown frame file type"):
        open_series(tmp_path / "frames.tiff")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        NxmxSeries(tmp_path / "none_master.h5")
