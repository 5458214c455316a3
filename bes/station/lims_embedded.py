"""The station's own LIMS: ``lims.service`` on a free loopback port, in this process.

The one place in ``bes`` that starts the LIMS service. It imports ``lims.service`` inside
:func:`start_station_lims` only (the import contract's declared exception, see
pyproject.toml), so importing ``bes`` never loads the service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from lims.tokens import TOKENS_FILE, load_or_create_tokens


class RunningLims(Protocol):
    """What the station uses of ``lims.service.embedded.EmbeddedLims``."""

    url: str
    token: str
    port: int
    database_url: str

    @property
    def running(self) -> bool: ...

    def stop(self, timeout_s: float = 10.0) -> None: ...


def start_station_lims(folder: Path) -> RunningLims:
    """Start the LIMS with its SQLite file and token file in ``folder`` (``DATA_DIR/lims``).

    The tokens are those of ``folder/tokens.json`` (made once), as ``bes lims serve
    --data-dir DATA_DIR`` uses them: the same data can later be served, flushed or read
    with ``bes lims status``."""
    from lims.service.embedded import start_embedded  # only here: see the module docstring

    folder.mkdir(parents=True, exist_ok=True)
    tokens = load_or_create_tokens(folder / TOKENS_FILE)
    by_role = {role: token for token, role in tokens.items()}
    return start_embedded(folder, token=by_role["writer"], reader_token=by_role["reader"])
