"""NXmx (Eiger-style) HDF5 series: master file with external links to data files.

Data files appear one by one while the detector writes (each is complete when it
appears); the reader follows them and reads per-frame omega and the geometry from
the master."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  registers the compression filters h5py needs
import numpy as np

from bes.analysis.diffraction_geometry import DiffractionGeometry
from bes.frames import bslz4
from bes.frames.source import FollowedSeries, Frame


class NxmxSeries(FollowedSeries):
    def __init__(self, master: str | Path) -> None:
        self.master = Path(master)
        if not self.master.exists():
            raise FileNotFoundError(f"NXmx master file {self.master} does not exist")
        with h5py.File(self.master, "r") as f:
            det = f["/entry/instrument/detector"]
            spec = det["detectorSpecific"]
            rows = int(spec["y_pixels_in_detector"][()])
            cols = int(spec["x_pixels_in_detector"][()])
            self.n_frames = int(spec["nimages"][()])
            self.frames_per_file = int(spec["nframes_per_data_file"][()])
            self.geometry = DiffractionGeometry(
                shape=(rows, cols),
                pixel_size_mm=_in_mm(det["x_pixel_size"]),
                distance_mm=_in_mm(det["distance"]),
                beam_centre_px=(float(det["beam_center_x"][()]), float(det["beam_center_y"][()])),
                wavelength_a=float(f["/entry/instrument/beam/incident_wavelength"][()]),
            )
            self.mask = np.asarray(det["pixel_mask"][()]) == 0
            self.saturation = float(det["saturation_value"][()])
            self.exposure_s = float(det["count_time"][()])
            self.omega_deg = np.asarray(f["/entry/sample/goniometer/omega"][()], dtype=float)
            data = f["/entry/data"]
            self._data_files = [
                self.master.parent / data.get(name, getlink=True).filename
                for name in sorted(data)
                if isinstance(data.get(name, getlink=True), h5py.ExternalLink)
            ]
        self._open_number: int | None = None
        self._open_file: h5py.File | None = None
        self._open_data: h5py.Dataset | None = None
        self._direct = False

    def available(self) -> int:
        """Frames readable now: those in the data files that exist (each is complete)."""
        count = 0
        for path in self._data_files:
            if not path.exists():
                break
            count += self.frames_per_file
        return min(count, self.n_frames)

    def read(self, index: int) -> Frame:
        """Frame ``index`` (one chunk read); the data file stays open for the next frames."""
        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame {index} outside 0..{self.n_frames - 1} of {self.master}")
        number, offset = divmod(index, self.frames_per_file)
        if self._open_number != number:
            self.close()
            self._open_file = h5py.File(self._data_files[number], "r")
            self._open_number = number
            self._open_data = self._open_file["/entry/data/data"]
            self._direct = _direct_readable(self._open_data)
        data = self._open_data
        assert data is not None
        image = None
        if self._direct:
            mask, chunk = data.id.read_direct_chunk((offset, 0, 0))
            if mask == 0:  # the filter was applied: decompress it here, GIL released
                image = bslz4.decompress(chunk, data.dtype, data.shape[1:])
        if image is None:
            image = data[offset]
        omega = float(self.omega_deg[index]) if index < len(self.omega_deg) else float("nan")
        return Frame(index=index, image=image, omega_deg=omega)

    def close(self) -> None:
        """Close the data file kept open by :meth:`read`."""
        if self._open_file is not None:
            self._open_file.close()
        self._open_file = None
        self._open_data = None
        self._open_number = None

    def describe_source(self) -> str:
        return str(self.master)


def _direct_readable(data: h5py.Dataset) -> bool:
    """Whether each frame of ``data`` is one bitshuffle/LZ4 chunk that :mod:`bes.frames.bslz4`
    can decompress (EIGER and simulator files), rather than anything HDF5 must read."""
    if data.ndim != 3 or data.chunks != (1, *data.shape[1:]) or not bslz4.available():
        return False
    plist = data.id.get_create_plist()
    if plist.get_nfilters() != 1:
        return False
    code, _, values, _ = plist.get_filter(0)
    return code == bslz4.FILTER_ID and len(values) > 4 and values[4] == bslz4.LZ4


def _in_mm(dataset: h5py.Dataset) -> float:
    value = float(dataset[()])
    units = dataset.attrs.get("units", "m")
    units = units.decode() if isinstance(units, bytes) else str(units)
    scale = {"m": 1e3, "mm": 1.0, "um": 1e-3, "microns": 1e-3}.get(units)
    if scale is None:
        raise ValueError(f"{dataset.name}: unknown length unit {units!r}")
    return value * scale
