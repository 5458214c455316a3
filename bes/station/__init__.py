"""The embedded station: beamline, workflow database, LIMS and data directory set up for
``bes run`` and ``bes night``.

``open_station(...)`` opens all four and ``Station.context()`` hands them to a workflow run::

    with open_station(data_dir=Path("bes-data")) as station:
        result = run_workflow("mxpresse", {"sample": "1:1"}, station.context())

Names are imported on first use, so that building the ``bes`` command loads none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bes.station.station import Station, open_station

_EXPORTS = {"Station": "bes.station.station", "open_station": "bes.station.station"}

__all__ = ["Station", "open_station"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bes.station' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
