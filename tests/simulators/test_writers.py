"""The file writers: NXmx HDF5 readable from the master alone, miniCBF readable by fabio,
complete files only, never an overwrite."""

from __future__ import annotations

from pathlib import Path

import fabio
import h5py
import hdf5plugin
import numpy as np
import pytest

from bes.hal import DetectorGeometry
from simulators.writers import CbfWriter, FrameInfo, Hdf5Writer, SeriesInfo

SHAPE = (40, 30)


def series(directory: Path, n_frames: int = 7, **kwargs: object) -> SeriesInfo:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[20:22, :] = True
    values: dict[str, object] = {
        "directory": directory,
        "prefix": "lyso",
        "run_number": 2,
        "n_frames": n_frames,
        "geometry": DetectorGeometry(SHAPE, 0.2, 120.0, (15.5, 19.25)),
        "wavelength_a": 0.9762,
        "exposure_s": 0.01,
        "frame_time_s": 0.010003,
        "count_cutoff": 10_000,
        "mask": mask,
        "omega_start_deg": 30.0,
        "omega_increment_deg": 0.5,
        "first_image_number": 1,
        "pose": {"sampx": 0.1},
    }
    values.update(kwargs)
    return SeriesInfo(**values)  # type: ignore[arg-type]


def frames(n: int, omega0: float = 30.0, step: float = 0.5) -> list[tuple[np.ndarray, FrameInfo]]:
    out = []
    for i in range(n):
        counts = np.full(SHAPE, i, dtype=np.uint32)
        start = {"omega": omega0 + i * step, "sampx": 0.1, "phiy": 0.01 * i}
        end = {**start, "omega": omega0 + (i + 1) * step}
        out.append((counts, FrameInfo(i, start, end)))
    return out


def test_hdf5_master_alone_gives_frames_geometry_wavelength_and_omega(tmp_path: Path) -> None:
    writer = Hdf5Writer(series(tmp_path), frames_per_data_file=3)
    writer.open()
    for counts, info in frames(7, omega0=30.2):
        writer.write(counts, info)
    paths = writer.close()
    assert [p.name for p in paths] == [
        "lyso_2_master.h5",
        "lyso_2_data_000001.h5",
        "lyso_2_data_000002.h5",
        "lyso_2_data_000003.h5",
    ]
    assert not list(tmp_path.glob("*.part"))
    with h5py.File(paths[0]) as master:
        assert master["/entry/definition"][()] == b"NXmx"
        blocks = [master[f"/entry/data/{name}"] for name in sorted(master["/entry/data"])]
        assert [b.shape[0] for b in blocks] == [3, 3, 1]
        stacked = np.concatenate([b[()] for b in blocks])
        assert stacked.shape == (7, *SHAPE) and stacked.dtype == np.uint32
        assert [int(f[0, 0]) for f in stacked] == list(range(7))
        assert str(hdf5plugin.BSHUF_ID) in blocks[0]._filters
        det = master["/entry/instrument/detector"]
        assert det["distance"][()] == pytest.approx(0.12) and det["distance"].attrs["units"] == "m"
        assert det["x_pixel_size"][()] == pytest.approx(2e-4)
        assert det["beam_center_x"][()] == 15.5 and det["beam_center_y"][()] == 19.25
        assert det["saturation_value"][()] == 10_000
        assert det["count_time"][()] == 0.01
        assert det["detectorSpecific/nimages"][()] == 7
        np.testing.assert_array_equal(det["pixel_mask"][()] == 1, series(tmp_path).mask)
        beam = master["/entry/instrument/beam"]
        assert beam["incident_wavelength"][()] == pytest.approx(0.9762)
        omega = master["/entry/sample/goniometer/omega"]
        np.testing.assert_allclose(omega[()], 30.2 + 0.5 * np.arange(7))
        assert omega.attrs["units"] == "deg"
        assert master["/entry/sample/goniometer/omega_range_average"][()] == pytest.approx(0.5)
        np.testing.assert_allclose(master["/entry/sample/goniometer/phiy"][()], 0.01 * np.arange(7))
        assert master["/entry/sample/transformations/omega"] == omega
        assert master["/entry/sample/depends_on"][()] == b"/entry/sample/transformations/omega"


def test_hdf5_master_written_at_arm_lists_the_planned_omegas(tmp_path: Path) -> None:
    writer = Hdf5Writer(series(tmp_path, n_frames=5), frames_per_data_file=2)
    writer.open()
    with h5py.File(writer.master) as master:
        np.testing.assert_allclose(
            master["/entry/sample/goniometer/omega"][()], [30.0, 30.5, 31.0, 31.5, 32.0]
        )
        assert sorted(master["/entry/data"]) == ["data_000001", "data_000002", "data_000003"]
    counts, info = frames(1)[0]
    writer.write(counts, info)
    assert writer.written() == (writer.master,)  # the open data file is still a .part file
    assert (tmp_path / "lyso_2_data_000001.h5.part").exists()
    writer.close()  # stopped early: the master now tells what was written
    with h5py.File(writer.master) as master:
        assert master["/entry/instrument/detector/detectorSpecific/nimages"][()] == 1
        assert list(master["/entry/data"]) == ["data_000001"]
        assert master["/entry/data/data_000001"].shape == (1, *SHAPE)


def test_cbf_files_open_with_fabio_and_carry_the_pilatus_header(tmp_path: Path) -> None:
    writer = CbfWriter(series(tmp_path, n_frames=3, first_image_number=5))
    writer.open()
    for counts, info in frames(3):
        writer.write(counts, info)
    paths = writer.close()
    assert [p.name for p in paths] == ["lyso_2_00005.cbf", "lyso_2_00006.cbf", "lyso_2_00007.cbf"]
    image = fabio.open(str(paths[1]))
    assert image.data.shape == SHAPE
    assert image.data[0, 0] == 1
    assert (image.data[20:22] == -1).all()  # no pixel: Pilatus convention
    header = image.header["_array_data.header_contents"]
    for line in (
        "# Pixel_size 0.0002 m x 0.0002 m",
        "# Detector_distance 0.12000 m",
        "# Wavelength 0.97620 A",
        "# Beam_xy (15.50, 19.25) pixels",
        "# Start_angle 30.5000 deg.",
        "# Angle_increment 0.5000 deg.",
        "# Exposure_time 0.0100000 s",
        "# Count_cutoff 10000 counts",
    ):
        assert line in header
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("kind", ["hdf5", "cbf"])
def test_writers_never_overwrite(tmp_path: Path, kind: str) -> None:
    info = series(tmp_path, n_frames=3)
    existing = tmp_path / ("lyso_2_data_000001.h5" if kind == "hdf5" else "lyso_2_00002.cbf")
    existing.write_text("precious")
    writer = Hdf5Writer(info) if kind == "hdf5" else CbfWriter(info)
    with pytest.raises(FileExistsError, match=existing.name):
        writer.open()
    assert existing.read_text() == "precious"
    assert not (tmp_path / "lyso_2_master.h5").exists()
