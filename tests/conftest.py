"""Fixtures shared by the whole suite: a simulated beamline on the instant clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from bes.config import SIMULATED_BEAMLINE
from bes.hal import Beamline


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run long soak runs marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow soak run: use --run-slow (bench/ runs the long one)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def make_sim_beamline(**overrides: dict[str, Any]) -> Beamline:
    """The embedded simulated beamline on the instant clock, with per-component overrides."""
    merged: dict[str, dict[str, Any]] = {"clock": {"mode": "instant"}}
    for name, values in overrides.items():
        merged.setdefault(name, {}).update(values)
    return Beamline.from_config(SIMULATED_BEAMLINE, overrides=merged)


@pytest.fixture
def sim_beamline() -> Iterator[Beamline]:
    """A fresh simulated beamline (seed 1 world, instant clock) for one test."""
    yield make_sim_beamline()
