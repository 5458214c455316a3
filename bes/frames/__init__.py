"""Frame sources: read detector frames (NXmx HDF5, CBF) with their geometry, also while
the scan that writes them is still running."""

from bes.frames.cbf import CbfSeries
from bes.frames.nxmx import NxmxSeries
from bes.frames.source import Frame, FrameSeries, FrameStall, open_series

__all__ = ["CbfSeries", "Frame", "FrameSeries", "FrameStall", "NxmxSeries", "open_series"]
