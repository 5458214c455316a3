"""One spot finder per detector geometry, kept: building its background cells costs more
than analysing a frame, and a night uses the same few geometries over and over."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from bes.analysis.spotfinder import SpotFinder
from bes.frames.source import FrameSeries

_MAX_KEPT = 8
_lock = threading.Lock()
_finders: OrderedDict[tuple[object, ...], SpotFinder] = OrderedDict()


def finder_for(series: FrameSeries) -> SpotFinder:
    """A spot finder for the series' geometry, mask and saturation (reused when seen before)."""
    mask_digest = hashlib.blake2b(series.mask.tobytes(), digest_size=16).hexdigest()
    key = (series.geometry, series.mask.shape, mask_digest, float(series.saturation))
    with _lock:
        finder = _finders.get(key)
        if finder is not None:
            _finders.move_to_end(key)
            return finder
    finder = SpotFinder(series.geometry, series.mask, saturation=series.saturation)
    with _lock:
        _finders[key] = finder
        while len(_finders) > _MAX_KEPT:
            _finders.popitem(last=False)
    return finder
