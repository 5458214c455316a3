"""The frame-source abstraction shared by the HDF5 and CBF readers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from bes.analysis.diffraction_geometry import DiffractionGeometry


@dataclass(frozen=True)
class Frame:
    index: int
    """Position in the series, from 0."""
    image: np.ndarray
    omega_deg: float


class FrameStall(TimeoutError):
    """No new frame arrived within the stall timeout while frames were still expected."""


class FrameSeries(Protocol):
    """A series of frames with one geometry; ``frames()`` yields them as they arrive."""

    geometry: DiffractionGeometry
    mask: np.ndarray
    """True where a pixel can be used."""
    saturation: float
    n_frames: int
    """Frames the series will hold when complete."""

    def frames(
        self,
        start: int = 0,
        stall_timeout_s: float = 30.0,
        poll_s: float = 0.02,
        stop: threading.Event | None = None,
    ) -> Iterator[Frame]: ...


def follow(
    available: Callable[[], int],
    read: Callable[[int], Frame],
    n_frames: int,
    start: int,
    stall_timeout_s: float,
    poll_s: float,
    stop: threading.Event | None,
    where: str,
) -> Iterator[Frame]:
    """Yield frames ``start..n_frames-1`` as ``available()`` reports them; raise FrameStall
    if none comes for ``stall_timeout_s``; end early when ``stop`` is set."""
    index = start
    last_progress = time.monotonic()
    while index < n_frames:
        if stop is not None and stop.is_set():
            return
        ready = available()
        if index < ready:
            while index < min(ready, n_frames):
                yield read(index)
                index += 1
            last_progress = time.monotonic()
            continue
        if time.monotonic() - last_progress > stall_timeout_s:
            raise FrameStall(
                f"{where}: {index} of {n_frames} frames after {stall_timeout_s:g} s without a "
                "new one; is the scan still running?"
            )
        time.sleep(poll_s)


class FollowedSeries:
    """Base of the readers: ``frames()`` follows ``available()`` / ``read()`` until the
    series is complete, then releases what ``read`` kept open (``close``)."""

    n_frames: int

    def available(self) -> int:
        raise NotImplementedError

    def read(self, index: int) -> Frame:
        raise NotImplementedError

    def close(self) -> None:
        """Release open files (nothing by default)."""

    def describe_source(self) -> str:
        raise NotImplementedError

    def frames(
        self,
        start: int = 0,
        stall_timeout_s: float = 30.0,
        poll_s: float = 0.02,
        stop: threading.Event | None = None,
    ) -> Iterator[Frame]:
        """Frames in order as they appear (see :func:`follow`)."""
        try:
            yield from follow(
                self.available,
                self.read,
                self.n_frames,
                start,
                stall_timeout_s,
                poll_s,
                stop,
                self.describe_source(),
            )
        finally:
            self.close()


def open_series(path: str | Path) -> FrameSeries:
    """An NXmx master file (``*_master.h5``) or the first CBF file of a series."""
    from bes.frames.cbf import CbfSeries
    from bes.frames.nxmx import NxmxSeries

    path = Path(path)
    if path.suffix in (".h5", ".nxs", ".hdf5"):
        return NxmxSeries(path)
    if path.suffix == ".cbf":
        return CbfSeries.from_first_file(path)
    raise ValueError(f"unknown frame file type {path.name!r}; expected *_master.h5 or *.cbf")
