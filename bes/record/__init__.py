"""The workflow database: SQLAlchemy models and migrations, the recorder that writes engine
events into it, and mining that reads it back as pandas DataFrames. See docs/record.md.

Names are imported on first use, so that ``bes --help`` loads neither SQLAlchemy nor pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bes.record.database import (
        Database,
        DatabaseError,
        SchemaOutOfDate,
        default_url,
        open_database,
    )
    from bes.record.mining import STANDARD_QUERIES, Filters, Miner
    from bes.record.recorder import Recorder
    from bes.record.timeline import RunNotFound, Timeline, load_timeline

_EXPORTS = {
    "bes.record.database": (
        "Database",
        "DatabaseError",
        "SchemaOutOfDate",
        "default_url",
        "open_database",
    ),
    "bes.record.mining": ("STANDARD_QUERIES", "Filters", "Miner"),
    "bes.record.recorder": ("Recorder",),
    "bes.record.timeline": ("RunNotFound", "Timeline", "load_timeline"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "STANDARD_QUERIES",
    "Database",
    "DatabaseError",
    "Filters",
    "Miner",
    "Recorder",
    "RunNotFound",
    "SchemaOutOfDate",
    "Timeline",
    "default_url",
    "load_timeline",
    "open_database",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'bes.record' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
