"""Service configuration: database, bearer tokens and limits, from a TOML file or a data folder.

A config file::

    database_url = "postgresql+psycopg://lims@db.example.org/lims"   # default: SQLite
    database_schema = "lims"        # PostgreSQL schema (search_path); default: the user's
    max_body_bytes = 8388608        # larger request bodies get 413
    [tokens]                        # bearer token -> role
    "change-me-writer" = "writer"   # reads and writes
    "change-me-reader" = "reader"   # reads only

Without a file, ``bes lims serve`` keeps everything in a data folder: ``lims.sqlite`` and
``tokens.json`` (a writer and a reader token, generated once, readable by the owner only).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from lims.tokens import ROLES, TOKENS_FILE, Role, load_or_create_tokens

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DATABASE_FILE = "lims.sqlite"


class ConfigError(ValueError):
    """A LIMS config that cannot be used; the message says which entry and why."""


@dataclass(frozen=True)
class ServiceConfig:
    database_url: str
    tokens: Mapping[str, Role] = field(default_factory=dict)
    database_schema: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if not self.tokens:
            raise ConfigError("the LIMS needs at least one bearer token ([tokens] table)")
        for token, role in self.tokens.items():
            if role not in ROLES:
                raise ConfigError(f"token role {role!r} is unknown; known: {', '.join(ROLES)}")
            if len(token) < 16:
                raise ConfigError("bearer tokens must be at least 16 characters long")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"max_body_bytes {self.max_body_bytes} is below 1024")
        if self.database_schema is not None and not self.database_schema.isidentifier():
            raise ConfigError(f"database_schema {self.database_schema!r} is not an identifier")
        object.__setattr__(self, "tokens", MappingProxyType(dict(self.tokens)))

    def token_for(self, role: Role) -> str:
        """The first token of ``role`` (for printing and for embedded clients)."""
        for token, token_role in self.tokens.items():
            if token_role == role:
                return token
        raise ConfigError(f"no {role} token configured")

    @classmethod
    def from_toml(cls, path: str | Path) -> ServiceConfig:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"LIMS config {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"LIMS config {path} cannot be parsed: {exc}") from None
        known = {"database_url", "database_schema", "max_body_bytes", "tokens"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"LIMS config {path}: unknown key(s) {unknown}; known: {', '.join(sorted(known))}"
            )
        if "database_url" not in data:
            raise ConfigError(f"LIMS config {path}: database_url is missing")
        return cls(
            database_url=str(data["database_url"]),
            tokens=_roles(data.get("tokens", {}), str(path)),
            database_schema=data.get("database_schema"),
            max_body_bytes=int(data.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
        )

    @classmethod
    def for_data_dir(cls, data_dir: str | Path, **overrides: Any) -> ServiceConfig:
        """SQLite in ``data_dir/lims.sqlite`` and the tokens of ``data_dir/tokens.json``."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        settings: dict[str, Any] = {
            "database_url": sqlite_url(data_dir / DATABASE_FILE),
            "tokens": load_or_create_tokens(data_dir / TOKENS_FILE),
        }
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def _roles(tokens: Any, where: str) -> dict[str, Role]:
    if not isinstance(tokens, dict):
        raise ConfigError(f"LIMS config {where}: [tokens] must map token -> role")
    for role in tokens.values():
        if role not in ROLES:
            raise ConfigError(
                f"LIMS config {where}: token role {role!r} is unknown; known: {', '.join(ROLES)}"
            )
    return cast(dict[str, Role], dict(tokens))
