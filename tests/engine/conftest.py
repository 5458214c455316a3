"""Engine test fixtures: a registry that also allows the test tasks, graph builders, and a
check that no thread outlives a test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from bes.engine.registry import DEFAULT_REGISTRY, TaskRegistry
from tests.engine.builders import TEST_TASKS


@pytest.fixture(scope="session")
def registry() -> TaskRegistry:
    """bes.tasks plus the test tasks (the default registry never allows them)."""
    return DEFAULT_REGISTRY.with_packages(TEST_TASKS)


PROCESS_THREADS = ("bes-heatmap",)
"""Name prefixes of the worker threads bes keeps for the life of the process once used (the
heat-map writer of ``bes.tasks.mesh``, started by the first mesh scan of a recipe)."""


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Every thread a test starts (engine threads included) has ended when it returns."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        extra = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith(PROCESS_THREADS)
        ]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not extra, f"threads left behind: {[t.name for t in extra]}"
