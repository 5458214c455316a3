"""CBF series: one miniCBF file per frame, geometry from the Pilatus-style header."""

from __future__ import annotations

import re
from pathlib import Path

import fabio
import numpy as np

from bes.analysis.diffraction_geometry import DiffractionGeometry
from bes.frames.source import FollowedSeries, Frame

_NUMBER = r"([-+0-9.eE]+)"


class CbfSeries(FollowedSeries):
    """Frames ``<stem><NNNNN>.cbf`` numbered from ``first_number`` on."""

    def __init__(
        self, directory: Path, stem: str, width: int, first_number: int, n_frames: int
    ) -> None:
        self.directory = Path(directory)
        self.stem = stem
        self.width = width
        self.first_number = first_number
        self.n_frames = n_frames
        self._available = 0
        first = self.path(0)
        image = fabio.open(str(first))
        header = image.header.get("_array_data.header_contents", "")
        data = np.asarray(image.data)
        self.mask = data >= 0
        self.geometry = DiffractionGeometry(
            shape=(int(data.shape[0]), int(data.shape[1])),
            pixel_size_mm=_field(header, r"Pixel_size\s+" + _NUMBER) * 1e3,
            distance_mm=_field(header, r"Detector_distance\s+" + _NUMBER) * 1e3,
            beam_centre_px=(
                _field(header, r"Beam_xy\s+\(\s*" + _NUMBER),
                _field(header, r"Beam_xy\s+\(\s*[-+0-9.eE]+,\s*" + _NUMBER),
            ),
            wavelength_a=_field(header, r"Wavelength\s+" + _NUMBER),
        )
        self.saturation = _field(header, r"Count_cutoff\s+" + _NUMBER)

    @classmethod
    def from_first_file(cls, path: Path, n_frames: int | None = None) -> CbfSeries:
        """From the series' first file; ``n_frames`` defaults to the files present now."""
        match = re.fullmatch(r"(.*?)(\d+)\.cbf", path.name)
        if not match:
            raise ValueError(f"{path.name!r} is not a numbered CBF file (<prefix>_NNNNN.cbf)")
        stem, digits = match.groups()
        first = int(digits)
        if n_frames is None:
            n_frames = 0
            while (path.parent / f"{stem}{first + n_frames:0{len(digits)}d}.cbf").exists():
                n_frames += 1
        return cls(path.parent, stem, len(digits), first, n_frames)

    def path(self, index: int) -> Path:
        return self.directory / f"{self.stem}{self.first_number + index:0{self.width}d}.cbf"

    def available(self) -> int:
        """Frames present now (files appear in order, each complete)."""
        while self._available < self.n_frames and self.path(self._available).exists():
            self._available += 1
        return self._available

    def read(self, index: int) -> Frame:
        image = fabio.open(str(self.path(index)))
        header = image.header.get("_array_data.header_contents", "")
        data = np.asarray(image.data)
        return Frame(
            index=index,
            image=np.where(data < 0, 0, data),
            omega_deg=_field(header, r"Start_angle\s+" + _NUMBER),
        )

    def describe_source(self) -> str:
        return str(self.path(0))


def _field(header: str, pattern: str) -> float:
    match = re.search(pattern, header)
    if not match:
        raise ValueError(f"CBF header has no field matching {pattern!r}")
    return float(match.group(1))
