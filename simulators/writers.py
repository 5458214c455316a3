"""File writers of the simulated detector: NXmx-style HDF5 (EIGER layout) and miniCBF.

HDF5: ``<prefix>_<run>_master.h5`` holds the metadata and ``/entry/data/data_NNNNNN``
external links to ``<prefix>_<run>_data_NNNNNN.h5`` (``/entry/data/data``, N frames each,
bitshuffle+LZ4 (the hdf5plugin filter's format; chunks made by ``simulators.bslz4`` on the
writer's thread and written as they are), gzip if that filter is missing). The master is written at
arm with the planned omega of every frame, then rewritten (atomically) when the series
ends with the omegas and positions actually recorded and the frames actually written, so
a reader gets geometry, wavelength and omega per frame from the master alone.
CBF: one ``<prefix>_<run>_<NNNNN>.cbf`` per frame (NNNNN = image number) with a Pilatus
miniCBF header; pixels without a sensor (module gaps) read -1 (Pilatus convention).
Every file is written under a ``.part`` name and renamed when complete, so readers never
see half a file; no writer ever replaces an existing file.
"""

from __future__ import annotations

import datetime
import functools
import math
import operator
import os
import queue
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import fabio.cbfimage
import h5py
import numpy as np

from bes.hal.beam import HC_KEV_A
from bes.hal.detector import DetectorGeometry
from simulators import bslz4

try:
    import hdf5plugin

    _BITSHUFFLE: dict[str, Any] | None = dict(hdf5plugin.Bitshuffle(cname="lz4"))
except ImportError:  # pragma: no cover - hdf5plugin is a dependency
    _BITSHUFFLE = None

PART_SUFFIX = ".part"
MOTORS_PER_FRAME = ("omega", "kappa", "phi", "sampx", "sampy", "phiy", "phiz")


@dataclass(frozen=True)
class SeriesInfo:
    """What every file of a series says about the acquisition."""

    directory: Path
    prefix: str
    run_number: int
    n_frames: int
    geometry: DetectorGeometry
    wavelength_a: float
    exposure_s: float
    frame_time_s: float
    count_cutoff: int
    mask: np.ndarray
    """True where there is no pixel."""
    omega_start_deg: float = 0.0
    omega_increment_deg: float = 0.0
    first_image_number: int = 1
    detector_description: str = "simulated detector"
    sensor_material: str = "Si"
    sensor_thickness_mm: float = 0.45
    flux_ph_s: float = 0.0
    transmission: float = 1.0
    beam_size_um: tuple[float, float] = (20.0, 20.0)
    pose: Mapping[str, float] = field(default_factory=dict)
    """Goniometer pose at arm (the planned per-frame positions start from it)."""
    sample_name: str = ""
    roi_mode: str = "full"
    extra: Mapping[str, Any] = field(default_factory=dict)
    """The arm request's free-form header: stored as attributes of /entry (HDF5)."""


@dataclass(frozen=True)
class FrameInfo:
    """One written frame: its index in the series and the pose at its start and end."""

    index: int
    pose_start: Mapping[str, float]
    pose_end: Mapping[str, float]


class SeriesWriter(Protocol):
    def planned_paths(self) -> tuple[Path, ...]:
        """Every final file name the whole series would write."""

    def open(self) -> None: ...

    def write(self, counts: np.ndarray, frame: FrameInfo) -> None: ...

    def close(self) -> tuple[Path, ...]:
        """Finish the files (also after fewer frames than planned); return the paths written."""

    def written(self) -> tuple[Path, ...]:
        """Complete files so far (the HDF5 master first)."""

    @property
    def frames_written(self) -> int: ...

    def bytes_on_disk(self) -> int: ...


def refuse_existing(paths: tuple[Path, ...]) -> None:
    """FileExistsError naming the first of ``paths`` (or its .part file) that exists."""
    for path in paths:
        for candidate in (path, _part(path)):
            if candidate.exists():
                raise FileExistsError(
                    f"{candidate} already exists; data files are never overwritten "
                    f"(choose another prefix or run number)"
                )


def publish(temp: Path, final: Path) -> None:
    """Give a finished ``.part`` file its final name without ever replacing a file."""
    try:
        os.link(temp, final)
    except FileExistsError:
        raise FileExistsError(
            f"{final} appeared while it was being written; not overwritten (data left in {temp})"
        ) from None
    except OSError:  # no hard links on this file system
        if final.exists():
            raise FileExistsError(
                f"{final} exists; not overwritten (data left in {temp})"
            ) from None
        os.rename(temp, final)
        return
    os.unlink(temp)


def _part(path: Path) -> Path:
    return path.with_name(path.name + PART_SUFFIX)


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


# --- HDF5 ------------------------------------------------------------------------


class Hdf5Writer:
    """NXmx master + data files, EIGER style (see the module docstring)."""

    def __init__(self, info: SeriesInfo, frames_per_data_file: int = 100) -> None:
        if frames_per_data_file < 1:
            raise ValueError(f"frames_per_data_file must be >= 1, got {frames_per_data_file}")
        self.info = info
        self.frames_per_file = frames_per_data_file
        self.master = info.directory / f"{info.prefix}_{info.run_number}_master.h5"
        self._frames: list[FrameInfo] = []
        self._written: list[Path] = []
        self._closed_bytes = 0
        self._file: h5py.File | None = None
        self._dataset: h5py.Dataset | None = None
        self._file_number = 0
        self._in_file = 0
        self._chunk_bytes = 0
        """Bytes of the chunks written to the open data file (its storage size)."""
        self._file_frames = 0
        """Frames the open data file holds when full."""
        self._frame_shape: tuple[int, ...] = ()
        self._master_bytes = 0
        self._direct = _BITSHUFFLE is not None and self.compression is _BITSHUFFLE
        """Compress chunks here (simulators.bslz4, GIL released) and write them as they are."""
        self._start_time = _now_iso()

    @property
    def compression(self) -> dict[str, Any]:
        if _BITSHUFFLE is not None and h5py.h5z.filter_avail(_BITSHUFFLE["compression"]):
            return _BITSHUFFLE
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}

    def data_path(self, number: int) -> Path:
        info = self.info
        return info.directory / f"{info.prefix}_{info.run_number}_data_{number:06d}.h5"

    def planned_paths(self) -> tuple[Path, ...]:
        n_files = math.ceil(self.info.n_frames / self.frames_per_file)
        return (self.master, *(self.data_path(i) for i in range(1, n_files + 1)))

    def open(self) -> None:
        refuse_existing(self.planned_paths())
        n_files = math.ceil(self.info.n_frames / self.frames_per_file)
        planned = [FrameInfo(i, *self._planned_poses(i)) for i in range(self.info.n_frames)]
        temp = _part(self.master)
        _write_master(temp, self.info, planned, n_files, self.frames_per_file, self._start_time)
        publish(temp, self.master)
        self._master_bytes = self.master.stat().st_size

    def write(self, counts: np.ndarray, frame: FrameInfo) -> None:
        if self._dataset is None:
            self._open_data_file(counts.shape)
        assert self._dataset is not None
        if self._direct and counts.shape == self._frame_shape:
            chunk = bslz4.compress(counts)
            self._dataset.id.write_direct_chunk((self._in_file, 0, 0), chunk)
            self._chunk_bytes += chunk.size
        else:
            self._dataset[self._in_file] = counts
            self._chunk_bytes = int(self._dataset.id.get_storage_size())
        self._in_file += 1
        self._frames.append(frame)
        if self._in_file == self._file_frames:
            self._close_data_file()

    def written(self) -> tuple[Path, ...]:
        return (self.master, *self._written) if self.master.exists() else ()

    @property
    def frames_written(self) -> int:
        return len(self._frames)

    def bytes_on_disk(self) -> int:
        current = self._chunk_bytes if self._dataset is not None else 0
        return self._master_bytes + self._closed_bytes + int(current)

    def close(self) -> tuple[Path, ...]:
        if self._dataset is not None:
            self._close_data_file()
        temp = _part(self.master)
        _write_master(
            temp,
            self.info,
            self._frames,
            len(self._written),
            self.frames_per_file,
            self._start_time,
            end_time=_now_iso(),
        )
        os.replace(temp, self.master)  # our own master: replaced atomically with the final one
        self._master_bytes = self.master.stat().st_size
        return (self.master, *self._written)

    def _planned_poses(self, index: int) -> tuple[dict[str, float], dict[str, float]]:
        info = self.info
        base = {m: float(info.pose.get(m, 0.0)) for m in MOTORS_PER_FRAME}
        start = info.omega_start_deg + index * info.omega_increment_deg
        return {**base, "omega": start}, {**base, "omega": start + info.omega_increment_deg}

    def _open_data_file(self, shape: tuple[int, ...]) -> None:
        self._file_number += 1
        done = len(self._frames)
        n = max(1, min(self.frames_per_file, self.info.n_frames - done))
        path = _part(self.data_path(self._file_number))
        self._file = h5py.File(path, "w-")
        entry = self._file.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        self._dataset = data.create_dataset(
            "data",
            shape=(n, *shape),
            maxshape=(None, *shape),
            dtype=np.uint32,
            chunks=(1, *shape),
            **self.compression,
        )
        first = self.info.first_image_number + done
        self._dataset.attrs["image_nr_low"] = np.int32(first)
        self._in_file = 0
        self._chunk_bytes = 0
        self._file_frames = n
        self._frame_shape = tuple(shape)

    def _close_data_file(self) -> None:
        assert self._file is not None and self._dataset is not None
        if self._in_file < self._dataset.shape[0]:
            self._dataset.resize(self._in_file, axis=0)
        low = int(self._dataset.attrs["image_nr_low"])
        self._dataset.attrs["image_nr_high"] = np.int32(low + self._in_file - 1)
        temp = Path(self._file.filename)
        self._file.close()
        self._file = None
        self._dataset = None
        final = self.data_path(self._file_number)
        publish(temp, final)
        self._written.append(final)
        self._closed_bytes += final.stat().st_size


def _group(parent: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def _value(parent: h5py.Group, name: str, value: Any, units: str | None = None) -> h5py.Dataset:
    dataset = parent.create_dataset(name, data=value)
    if units is not None:
        dataset.attrs["units"] = units
    return dataset


def _axis(
    dataset: h5py.Dataset, kind: str, vector: tuple[float, ...], depends_on: str, units: str
) -> None:
    dataset.attrs["transformation_type"] = kind
    dataset.attrs["vector"] = np.asarray(vector, dtype=float)
    dataset.attrs["depends_on"] = depends_on
    dataset.attrs["units"] = units


def _motor_columns(poses: list[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """Per motor of MOTORS_PER_FRAME, its value in every pose (0 where a pose lacks it)."""
    get_all = operator.itemgetter(*MOTORS_PER_FRAME)
    try:
        rows = [get_all(pose) for pose in poses]
    except KeyError:
        rows = [tuple(pose.get(m, 0.0) for m in MOTORS_PER_FRAME) for pose in poses]
    table = np.array(rows, dtype=float).reshape(len(poses), len(MOTORS_PER_FRAME))
    return {m: table[:, i] for i, m in enumerate(MOTORS_PER_FRAME)}


@functools.lru_cache(maxsize=8)
def _deflated_mask(shape: tuple[int, ...], packed: bytes) -> bytes:
    """The pixel mask (uint32, one chunk) as HDF5's gzip filter stores it (zlib, level 4)."""
    bits = np.unpackbits(np.frombuffer(packed, np.uint8), count=int(np.prod(shape)))
    return zlib.compress(bits.astype(np.uint32).reshape(shape).tobytes(), 4)


def _mask_dataset(parent: h5py.Group, mask: np.ndarray) -> h5py.Dataset:
    """The pixel mask, gzip-compressed in one chunk; a night writes the same mask in every
    master file, so its compressed chunk is made once and written as it is."""
    shape = tuple(mask.shape)
    dataset = parent.create_dataset(
        "pixel_mask", shape=shape, dtype=np.uint32, chunks=shape, compression="gzip"
    )
    chunk = _deflated_mask(shape, np.packbits(mask.astype(bool).ravel()).tobytes())
    dataset.id.write_direct_chunk((0,) * len(shape), chunk)
    return dataset


def _write_master(
    path: Path,
    info: SeriesInfo,
    frames: list[FrameInfo],
    n_data_files: int,
    frames_per_file: int,
    start_time: str,
    end_time: str | None = None,
) -> None:
    """The NXmx master file: geometry, beam, detector, per-frame goniometer positions."""
    g = info.geometry
    rows, cols = g.shape
    pixel_m = g.pixel_size_mm * 1e-3
    with h5py.File(path, "w") as f:
        f.attrs["NX_class"] = "NXroot"
        f.attrs["default"] = "entry"
        f.attrs["creator"] = "mxbes simulated detector"
        entry = _group(f, "entry", "NXentry")
        entry.attrs["default"] = "data"
        for key, value in info.extra.items():
            entry.attrs[f"mxbes_{key}"] = str(value)
        entry["definition"] = "NXmx"
        entry["start_time"] = start_time
        if end_time is not None:
            entry["end_time"] = end_time
        data = _group(entry, "data", "NXdata")
        data.attrs["signal"] = "data_000001"
        for number in range(1, n_data_files + 1):
            name = f"{info.prefix}_{info.run_number}_data_{number:06d}.h5"
            data[f"data_{number:06d}"] = h5py.ExternalLink(name, "/entry/data/data")

        instrument = _group(entry, "instrument", "NXinstrument")
        instrument["name"] = "mxbes simulated beamline"
        beam = _group(instrument, "beam", "NXbeam")
        _value(beam, "incident_wavelength", info.wavelength_a, "angstrom")
        _value(beam, "total_flux", info.flux_ph_s, "Hz")
        _value(beam, "incident_beam_size", np.asarray(info.beam_size_um) * 1e-6, "m")
        _value(beam, "transmission", info.transmission)

        det = _group(instrument, "detector", "NXdetector")
        det["description"] = info.detector_description
        distance = _value(det, "distance", g.distance_mm * 1e-3, "m")
        det["detector_distance"] = distance
        _value(det, "x_pixel_size", pixel_m, "m")
        _value(det, "y_pixel_size", pixel_m, "m")
        _value(det, "beam_center_x", g.beam_centre_px[0], "pixel")
        _value(det, "beam_center_y", g.beam_centre_px[1], "pixel")
        _value(det, "count_time", info.exposure_s, "s")
        _value(det, "frame_time", info.frame_time_s, "s")
        _value(det, "saturation_value", np.int64(info.count_cutoff))
        _value(det, "sensor_material", info.sensor_material)
        _value(det, "sensor_thickness", info.sensor_thickness_mm * 1e-3, "m")
        _value(det, "bit_depth_readout", np.int32(32))
        mask = _mask_dataset(det, info.mask)
        mask.attrs["description"] = "1: no pixel (module gap); such pixels read 0 in the data"
        det["pixel_mask_applied"] = np.int32(0)
        det["depends_on"] = "/entry/instrument/detector/transformations/translation"
        spec = _group(det, "detectorSpecific", "NXcollection")
        spec["nimages"] = np.int64(len(frames))
        spec["ntrigger"] = np.int64(1)
        spec["nframes_per_data_file"] = np.int64(frames_per_file)
        spec["x_pixels_in_detector"] = np.int32(cols)
        spec["y_pixels_in_detector"] = np.int32(rows)
        _value(spec, "photon_energy", HC_KEV_A * 1000.0 / info.wavelength_a, "eV")
        spec["countrate_correction_count_cutoff"] = np.int64(info.count_cutoff)
        _value(spec, "frame_count_time", info.exposure_s, "s")
        spec["roi_mode"] = info.roi_mode
        spec["pixel_mask"] = mask
        spec["data_collection_date"] = start_time

        transformations = _group(det, "transformations", "NXtransformations")
        translation = _value(transformations, "translation", g.distance_mm * 1e-3)
        _axis(translation, "translation", (0.0, 0.0, 1.0), ".", "m")
        module = _group(det, "module", "NXdetector_module")
        module["data_origin"] = np.array([0, 0], dtype=np.int32)
        module["data_size"] = np.array([rows, cols], dtype=np.int32)
        module["data_stride"] = np.array([1, 1], dtype=np.int32)
        # Pixel (0, 0)'s corner seen from where the beam meets the detector plane.
        corner = np.array([-g.beam_centre_px[0] * pixel_m, g.beam_centre_px[1] * pixel_m, 0.0])
        norm = float(np.linalg.norm(corner))
        offset = _value(module, "module_offset", norm)
        _axis(
            offset,
            "translation",
            tuple(corner / norm) if norm else (1.0, 0.0, 0.0),
            "/entry/instrument/detector/transformations/translation",
            "m",
        )
        module_offset = "/entry/instrument/detector/module/module_offset"
        fast = _value(module, "fast_pixel_direction", pixel_m)
        _axis(fast, "translation", (1.0, 0.0, 0.0), module_offset, "m")
        slow = _value(module, "slow_pixel_direction", pixel_m)
        _axis(slow, "translation", (0.0, -1.0, 0.0), module_offset, "m")

        sample = _group(entry, "sample", "NXsample")
        sample["name"] = info.sample_name
        sample["depends_on"] = "/entry/sample/transformations/omega"
        gonio = _group(sample, "goniometer", "NXtransformations")
        starts = _motor_columns([fr.pose_start for fr in frames])
        omega_end = np.array([fr.pose_end.get("omega", 0.0) for fr in frames])
        omega = _value(gonio, "omega", starts["omega"], "deg")
        _axis(omega, "rotation", (1.0, 0.0, 0.0), ".", "deg")
        _value(gonio, "omega_end", omega_end, "deg")
        ranges = omega_end - starts["omega"]
        average = float(ranges.mean()) if ranges.size else info.omega_increment_deg
        _value(gonio, "omega_range_average", average, "deg")
        _value(gonio, "omega_increment_set", info.omega_increment_deg, "deg")
        _value(gonio, "omega_range_total", float(ranges.sum()), "deg")
        for motor in ("kappa", "phi"):
            _value(gonio, motor, starts[motor], "deg")
        for motor in ("sampx", "sampy", "phiy", "phiz"):
            _value(gonio, motor, starts[motor], "mm")
        transformations = _group(sample, "transformations", "NXtransformations")
        transformations["omega"] = omega


# --- CBF -------------------------------------------------------------------------


class CbfWriter:
    """One miniCBF file per frame (see the module docstring)."""

    def __init__(self, info: SeriesInfo) -> None:
        self.info = info
        self._written: list[Path] = []
        self._bytes = 0

    def frame_path(self, index: int) -> Path:
        info = self.info
        number = info.first_image_number + index
        return info.directory / f"{info.prefix}_{info.run_number}_{number:05d}.cbf"

    def planned_paths(self) -> tuple[Path, ...]:
        return tuple(self.frame_path(i) for i in range(self.info.n_frames))

    def open(self) -> None:
        refuse_existing(self.planned_paths())

    def write(self, counts: np.ndarray, frame: FrameInfo) -> None:
        data = counts.astype(np.int32)
        data[self.info.mask] = -1
        image = fabio.cbfimage.CbfImage(
            data=data,
            header={
                "_array_data.header_convention": "PILATUS_1.2",
                "_array_data.header_contents": cbf_header(self.info, frame),
            },
        )
        final = self.frame_path(frame.index)
        temp = _part(final)
        if temp.exists():
            raise FileExistsError(f"{temp} already exists; data files are never overwritten")
        image.write(str(temp))
        publish(temp, final)
        self._written.append(final)
        self._bytes += final.stat().st_size

    def bytes_on_disk(self) -> int:
        return self._bytes

    def written(self) -> tuple[Path, ...]:
        return tuple(self._written)

    @property
    def frames_written(self) -> int:
        return len(self._written)

    def close(self) -> tuple[Path, ...]:
        return tuple(self._written)


def cbf_header(info: SeriesInfo, frame: FrameInfo) -> str:
    """A Pilatus miniCBF header (what XDS, DIALS and fabio read) for one frame."""
    g = info.geometry
    start = frame.pose_start
    end = frame.pose_end
    omega = float(start.get("omega", 0.0))
    increment = float(end.get("omega", omega)) - omega
    pixel_m = g.pixel_size_mm * 1e-3
    lines = [
        f"Detector: {info.detector_description}, S/N SIM-0001",
        datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        f"Pixel_size {pixel_m:.6g} m x {pixel_m:.6g} m",
        f"{'Silicon' if info.sensor_material == 'Si' else info.sensor_material} sensor, "
        f"thickness {info.sensor_thickness_mm * 1e-3:.6f} m",
        f"Exposure_time {info.exposure_s:.7f} s",
        f"Exposure_period {info.frame_time_s:.7f} s",
        "Tau = 0 s",
        f"Count_cutoff {info.count_cutoff} counts",
        f"Threshold_setting: {HC_KEV_A * 1000.0 / info.wavelength_a / 2:.0f} eV",
        "N_excluded_pixels = 0",
        f"Image_path: {info.directory}/",
        f"Wavelength {info.wavelength_a:.5f} A",
        f"Detector_distance {g.distance_mm * 1e-3:.5f} m",
        f"Beam_xy ({g.beam_centre_px[0]:.2f}, {g.beam_centre_px[1]:.2f}) pixels",
        f"Flux {info.flux_ph_s:.6e}",
        f"Filter_transmission {info.transmission:.4f}",
        f"Start_angle {omega:.4f} deg.",
        f"Angle_increment {increment:.4f} deg.",
        "Detector_2theta 0.0000 deg.",
        f"Kappa {float(start.get('kappa', 0.0)):.4f} deg.",
        f"Phi {float(start.get('phi', 0.0)):.4f} deg.",
        f"Omega {omega:.4f} deg.",
        f"Omega_increment {increment:.4f} deg.",
        "Oscillation_axis X",
        "N_oscillations 1",
        f"Image_number {info.first_image_number + frame.index}",
    ]
    return "\r\n".join(f"# {line}" for line in lines)


# --- writing on a thread ------------------------------------------------------------


class BackgroundWriter:
    """Wraps a writer so that frames are compressed and written on a thread of their own
    while the next frame is rendered (as a detector's file writer does). A failure is
    raised by the next ``write`` or by ``close``, which still closes the files first."""

    def __init__(self, inner: SeriesWriter, depth: int = 2) -> None:
        self.inner = inner
        self._queue: queue.Queue[tuple[np.ndarray, FrameInfo] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._bytes = 0
        self._thread = threading.Thread(target=self._run, name="frame-writer", daemon=True)

    def planned_paths(self) -> tuple[Path, ...]:
        return self.inner.planned_paths()

    def open(self) -> None:
        self.inner.open()
        self._bytes = self.inner.bytes_on_disk()
        self._thread.start()

    def write(self, counts: np.ndarray, frame: FrameInfo) -> None:
        self._raise()
        self._queue.put((counts, frame))

    def flush(self) -> None:
        """Wait until every queued frame is on disk; raise a failure of the writer thread."""
        if self._thread.is_alive():
            self._queue.join()
        self._raise()

    def written(self) -> tuple[Path, ...]:
        if self._thread.is_alive():
            self._queue.join()
        return self.inner.written()

    @property
    def frames_written(self) -> int:
        return self.inner.frames_written

    def bytes_on_disk(self) -> int:
        """Bytes on disk after the last frame the thread finished (never blocks)."""
        return self._bytes

    def close(self) -> tuple[Path, ...]:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        paths = self.inner.close()
        self._bytes = self.inner.bytes_on_disk()
        self._raise()
        return paths

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:
                    self.inner.write(*item)
                    self._bytes = self.inner.bytes_on_disk()
            except BaseException as exc:  # kept for the caller's thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
