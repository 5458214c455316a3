"""The token file of a LIMS data folder: ``tokens.json`` = ``{"writer": "...", "reader": "..."}``.

Written once by the service (``bes lims serve`` without a config file), readable by its owner
only; the client commands (``bes lims load-sheet``, ``flush``) read the writer token from it.
Shared by ``lims.service`` and ``lims.cli`` so the CLI needs no import of the service.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Literal

Role = Literal["reader", "writer"]
ROLES: tuple[Role, ...] = ("reader", "writer")
TOKENS_FILE = "tokens.json"


class TokenFileError(ValueError):
    """A token file that cannot be used; the message says why and what to do."""


def new_token() -> str:
    """A new random token (192 bits, hex): no leading ``-`` that a command line such as
    ``--token TOKEN`` would read as an option (URL-safe base64 can start with one)."""
    return secrets.token_hex(24)


def read_or_create_token_file(path: Path, new_text: Callable[[], str]) -> str:
    """The text of the token file ``path``; when it is missing, ``new_text()`` is written
    there first, in a new file (and folder) readable by its owner only (mode 600).

    Also the expert system's REST server's token file (``bes serve``: ``api-token``)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = new_text()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        return text
    return path.read_text()


def load_or_create_tokens(path: Path) -> dict[str, Role]:
    """token -> role from ``path``; a new writer and reader token are made if it is missing."""
    return _parse(read_or_create_token_file(path, _new_tokens), path)


def _new_tokens() -> str:
    return json.dumps({"writer": new_token(), "reader": new_token()}, indent=2)


def read_token(path: Path, role: Role = "writer") -> str:
    """The ``role`` token of an existing token file."""
    if not path.exists():
        raise TokenFileError(
            f"no token file {path}: start the LIMS once (bes lims serve) or pass --token"
        )
    for token, token_role in _read(path).items():
        if token_role == role:
            return token
    raise TokenFileError(f"token file {path} has no {role} token")


def _read(path: Path) -> dict[str, Role]:
    return _parse(path.read_text(), path)


def _parse(text: str, path: Path) -> dict[str, Role]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenFileError(f"token file {path} cannot be parsed: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(r), str) for r in ROLES):
        raise TokenFileError(f"token file {path} must hold a 'writer' and a 'reader' token")
    return {data["writer"]: "writer", data["reader"]: "reader"}
