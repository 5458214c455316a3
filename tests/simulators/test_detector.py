"""The simulated detector: arms, takes frames from goniometer triggers (or by itself),
writes NXmx HDF5 or CBF, and fails the way a real one does."""

from __future__ import annotations

import os
from pathlib import Path

import fabio
import h5py
import hdf5plugin
import numpy as np
import pytest

from bes.hal import (
    ArmRequest,
    Detector,
    DetectorError,
    DeviceAction,
    DiskFullError,
    FileFormat,
    TriggerMode,
)
from simulators.clock import SimClock
from simulators.detector import SimDetector
from simulators.faults import FaultPlan
from simulators.profile import TimingProfile, load_profile
from simulators.triggers import Trigger, TriggerLine
from simulators.world import SampleWorld
from tests.simulators.detector_helpers import make_crystal, make_pin, make_world


@pytest.fixture(scope="module")
def timing() -> TimingProfile:
    return load_profile()


@pytest.fixture
def clock() -> SimClock:
    return SimClock("instant")


@pytest.fixture
def line() -> TriggerLine:
    return TriggerLine()


@pytest.fixture
def world() -> SampleWorld:
    return make_world(make_pin([make_crystal(50.0)]))


def make_detector(
    clock: SimClock,
    timing: TimingProfile,
    world: SampleWorld,
    line: TriggerLine,
    faults: FaultPlan | None = None,
    **kwargs: object,
) -> SimDetector:
    return SimDetector(
        model=str(kwargs.pop("model", "small")),
        clock=clock,
        profile=timing,
        world=world,
        faults=faults or FaultPlan(),
        triggers=line,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def detector(
    clock: SimClock, timing: TimingProfile, world: SampleWorld, line: TriggerLine
) -> SimDetector:
    return make_detector(clock, timing, world, line, frames_per_data_file=4)


def request(directory: Path, **kwargs: object) -> ArmRequest:
    values: dict[str, object] = {
        "n_frames": 10,
        "exposure_s": 0.01,
        "directory": directory,
        "prefix": "xtal",
        "omega_start_deg": 20.0,
        "omega_increment_deg": 0.1,
    }
    values.update(kwargs)
    return ArmRequest(**values)  # type: ignore[arg-type]


def rotate(
    line: TriggerLine, world: SampleWorld, clock: SimClock, n: int, step: float = 0.1
) -> None:
    """What the goniometer does: one trigger per frame, omega advancing."""
    pose = dict(world.pose)
    for i in range(n):
        start = {**pose, "omega": 20.0 + i * step}
        end = {**start, "omega": 20.0 + (i + 1) * step}
        line.fire(Trigger(i, start, end, 0.01, clock.now()))


def test_is_a_hal_detector_with_the_models_of_the_issue(
    clock: SimClock, timing: TimingProfile, world: SampleWorld, line: TriggerLine
) -> None:
    small = make_detector(clock, timing, world, line)
    big = make_detector(clock, timing, world, line, model="eiger2_4m")
    assert isinstance(small, Detector) and isinstance(big, Detector)
    assert small.geometry.shape == (512, 512) and small.geometry.pixel_size_mm == 0.2
    assert big.geometry.shape == (2162, 2068) and big.geometry.pixel_size_mm == 0.075
    assert big.max_frame_rate_hz == timing.detector.max_frame_rate_hz
    for det in (small, big):  # 2 A at the nearest edge by default
        g = det.geometry
        edge_mm = min(g.beam_centre_px) * g.pixel_size_mm
        two_theta = np.arctan(edge_mm / g.distance_mm)
        assert world.beam.energy_kev > 0
        assert 0.9762 / (2 * np.sin(two_theta / 2)) == pytest.approx(2.0, abs=0.01)
    info = big.describe()
    assert info["model"] == "eiger2_4m" and info["shape"] == "2162x2068"
    with pytest.raises(ValueError, match="unknown detector model 'pilatus'; known: small"):
        make_detector(clock, timing, world, line, model="pilatus")


def test_hdf5_series_from_goniometer_triggers(
    detector: SimDetector, world: SampleWorld, line: TriggerLine, clock: SimClock, tmp_path: Path
) -> None:
    detector.arm(request(tmp_path))
    assert (tmp_path / "xtal_1_master.h5").exists()
    rotate(line, world, clock, 10)
    rotate(line, world, clock, 2)  # extra triggers after the series are ignored
    result = detector.wait()
    assert result.frames_written == 10 == detector.frames_written
    assert [p.name for p in result.paths] == [
        "xtal_1_master.h5",
        "xtal_1_data_000001.h5",
        "xtal_1_data_000002.h5",
        "xtal_1_data_000003.h5",
    ]
    with h5py.File(result.paths[0]) as master:
        data = [master[f"/entry/data/{name}"] for name in sorted(master["/entry/data"])]
        assert sum(d.shape[0] for d in data) == 10
        assert all(d.shape[1:] == (512, 512) and d.dtype == np.uint32 for d in data)
        assert str(hdf5plugin.BSHUF_ID) in data[0]._filters
        np.testing.assert_allclose(
            master["/entry/sample/goniometer/omega"][()], 20.0 + 0.1 * np.arange(10)
        )
        frame = data[0][0]
        assert frame.sum() > 0
    assert clock.now() == pytest.approx(
        load_profile().detector.arm_s + load_profile().detector.disarm_s
    )


def test_cbf_series_opens_with_fabio(
    detector: SimDetector, world: SampleWorld, line: TriggerLine, clock: SimClock, tmp_path: Path
) -> None:
    detector.arm(request(tmp_path, n_frames=3, file_format=FileFormat.CBF, first_image_number=7))
    rotate(line, world, clock, 3)
    result = detector.wait()
    assert [p.name for p in result.paths] == [
        "xtal_1_00007.cbf",
        "xtal_1_00008.cbf",
        "xtal_1_00009.cbf",
    ]
    image = fabio.open(str(result.paths[2]))
    assert image.data.shape == (512, 512)
    header = image.header["_array_data.header_contents"]
    assert "# Start_angle 20.2000 deg." in header and "# Angle_increment 0.1000 deg." in header
    assert "# Beam_xy (256.00, 256.00) pixels" in header
    assert f"# Detector_distance {detector.geometry.distance_mm / 1000:.5f} m" in header


def test_internal_trigger_takes_frames_at_the_current_pose_and_spends_their_time(
    detector: SimDetector, world: SampleWorld, clock: SimClock, tmp_path: Path
) -> None:
    seen: list[DeviceAction] = []
    clock.subscribe(seen.append)
    world.pose["omega"] = 45.0
    detector.arm(request(tmp_path, n_frames=4, trigger_mode=TriggerMode.INTERNAL))
    detector.trigger()
    result = detector.wait()
    assert result.frames_written == 4
    expose = [a for a in seen if a.action == "expose"]
    assert expose[0].duration_s == pytest.approx(4 * (0.01 + load_profile().detector.dead_time_s))
    assert expose[0].details["pin"] == "1:1"
    with h5py.File(result.paths[0]) as master:
        np.testing.assert_allclose(
            master["/entry/sample/goniometer/omega"][()], [45.0, 45.1, 45.2, 45.3]
        )


def test_arm_refuses_impossible_requests(detector: SimDetector, tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="n_frames must be >= 1, got 0"):
        detector.arm(request(tmp_path, n_frames=0))
    with pytest.raises(DetectorError, match=r"exposure 0\.0005 s .* 1000 Hz") as err:
        detector.arm(request(tmp_path, exposure_s=0.0005))
    assert err.value.device == "detector" and err.value.pin == "1:1"
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(DetectorError, match="cannot create data directory"):
        detector.arm(request(blocked / "sub"))
    with pytest.raises(DetectorError, match="trigger\\(\\) without arm"):
        detector.trigger()


def test_never_overwrites_existing_data(
    detector: SimDetector, world: SampleWorld, line: TriggerLine, clock: SimClock, tmp_path: Path
) -> None:
    detector.arm(request(tmp_path, n_frames=2, file_format=FileFormat.CBF))
    rotate(line, world, clock, 2)
    first = detector.wait().paths[0]
    stamp = first.stat().st_mtime_ns
    with pytest.raises(DetectorError, match=r"xtal_1_00001\.cbf already exists"):
        detector.arm(request(tmp_path, n_frames=2, file_format=FileFormat.CBF))
    assert first.stat().st_mtime_ns == stamp
    detector.arm(request(tmp_path, n_frames=2, file_format=FileFormat.CBF, run_number=2))
    detector.stop()


def test_detector_error_mid_scan_keeps_earlier_frames(
    clock: SimClock, timing: TimingProfile, world: SampleWorld, line: TriggerLine, tmp_path: Path
) -> None:
    faults = FaultPlan(per_pin={"1:1": ["detector_error"]})
    detector = make_detector(clock, timing, world, line, faults, frames_per_data_file=4)
    detector.arm(request(tmp_path, n_frames=10))
    rotate(line, world, clock, 10)  # the goniometer never sees the error
    with pytest.raises(DetectorError) as err:
        detector.wait()
    assert err.value.device == "detector" and err.value.pin == "1:1"
    assert "detector (pin 1:1): detector error at frame" in str(err.value)
    kept = detector.frames_written
    assert 1 <= kept < 10
    assert not list(tmp_path.glob("*.part"))
    with h5py.File(tmp_path / "xtal_1_master.h5") as master:
        assert sum(master[f"/entry/data/{n}"].shape[0] for n in master["/entry/data"]) == kept
        assert len(master["/entry/sample/goniometer/omega"]) == kept
    assert ("detector_error", "1:1") in faults.fired
    detector.arm(request(tmp_path, n_frames=1, run_number=2))  # usable again after the fault
    detector.stop()


def test_disk_full_injected_or_over_quota(
    clock: SimClock, timing: TimingProfile, world: SampleWorld, line: TriggerLine, tmp_path: Path
) -> None:
    faults = FaultPlan(per_pin={"1:1": ["disk_full"]})
    injected = make_detector(clock, timing, world, line, faults)
    injected.arm(request(tmp_path, n_frames=5, file_format=FileFormat.CBF))
    rotate(line, world, clock, 5)
    with pytest.raises(DiskFullError, match=r"detector \(pin 1:1\): data disk full at frame"):
        injected.wait()
    assert 1 <= injected.frames_written < 5

    quota = make_detector(clock, timing, world, line, disk_quota_bytes=1_500_000)
    quota.arm(request(tmp_path / "q", n_frames=50, file_format=FileFormat.CBF))
    rotate(line, world, clock, 50)
    with pytest.raises(DiskFullError, match="bytes used"):
        quota.wait()
    assert 0 < quota.frames_written < 50
    assert quota.bytes_written <= 1_500_000
    with pytest.raises(DiskFullError, match="free space"):
        quota.arm(request(tmp_path / "q", n_frames=1, run_number=2))


def test_wait_gives_up_when_triggers_stop_coming(
    detector: SimDetector, world: SampleWorld, line: TriggerLine, clock: SimClock, tmp_path: Path
) -> None:
    detector.arm(request(tmp_path, n_frames=5))
    rotate(line, world, clock, 2)
    with pytest.raises(DetectorError, match="2 of 5 frames"):
        detector.wait(timeout_s=0.05)
    with h5py.File(tmp_path / "xtal_1_master.h5") as master:
        assert master["/entry/instrument/detector/detectorSpecific/nimages"][()] == 2


def test_stop_closes_the_files_written_so_far(
    detector: SimDetector, world: SampleWorld, line: TriggerLine, clock: SimClock, tmp_path: Path
) -> None:
    detector.arm(request(tmp_path, n_frames=10))
    rotate(line, world, clock, 5)
    assert [p.name for p in detector.paths] == ["xtal_1_master.h5", "xtal_1_data_000001.h5"]
    detector.stop()
    rotate(line, world, clock, 3)  # no longer listening
    assert detector.frames_written == 5
    assert detector.wait().frames_written == 5
    assert not list(tmp_path.glob("*.part"))


def test_roi_and_distance(
    detector: SimDetector, clock: SimClock, world: SampleWorld, line: TriggerLine, tmp_path: Path
) -> None:
    assert detector.roi_modes == ("full", "half")
    full_rate = detector.max_frame_rate_hz
    detector.set_roi_mode("half")
    assert detector.geometry.shape == (256, 512)
    assert detector.geometry.beam_centre_px == (256.0, 128.0)
    assert detector.max_frame_rate_hz == 2 * full_rate
    detector.arm(request(tmp_path, n_frames=1))
    with pytest.raises(DetectorError, match="while armed"):
        detector.set_roi_mode("full")
    with pytest.raises(DetectorError, match="while armed"):
        detector.move_distance(200.0)
    rotate(line, world, clock, 1)
    path = detector.wait().paths[1]
    with h5py.File(path) as data:
        assert data["/entry/data/data"].shape == (1, 256, 512)
    with pytest.raises(ValueError, match="unknown ROI mode '4m'; known: full, half"):
        detector.set_roi_mode("4m")
    start = clock.now()
    detector.move_distance(detector.geometry.distance_mm + 50.0)
    assert clock.now() - start == pytest.approx(50.0 / load_profile().detector.distance_speed_mm_s)
    with pytest.raises(DetectorError, match="distance 5 mm outside"):
        detector.move_distance(5.0)


def test_frames_are_dark_while_the_shutter_is_closed(
    detector: SimDetector, world: SampleWorld, line: TriggerLine, clock: SimClock, tmp_path: Path
) -> None:
    world.beam.shutter_open = False
    detector.arm(request(tmp_path, n_frames=1))
    rotate(line, world, clock, 1)
    with h5py.File(detector.wait().paths[0]) as master:
        assert not master["/entry/data/data_000001"][0].any()


def test_render_shows_what_the_detector_would_see_without_writing(
    detector: SimDetector, world: SampleWorld, clock: SimClock
) -> None:
    centred = detector.render(world.pose, exposure_s=0.05)
    away = detector.render({**world.pose, "phiy": world.pose["phiy"] + 0.1}, exposure_s=0.05)
    assert len(centred.spot_photons) > 50 and len(away.spot_photons) == 0
    assert centred.counts.shape == detector.geometry.shape
    assert clock.now() == 0.0 and detector.frames_written == 0
    with pytest.raises(ValueError, match="unknown beam profile 'flat'"):
        SimDetector(beam_profile="flat")


def test_unwritable_directory(detector: SimDetector, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(DetectorError, match="not writable"):
        detector.arm(request(locked))
