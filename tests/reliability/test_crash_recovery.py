"""bench/crash_recovery.py, short: ``bes night`` and ``bes serve`` (queue started over REST)
each killed with SIGKILL mid-night, then restarted: every sample ends in one final state, the
one under way recorded INTERRUPTED and run again, none DONE twice, the workflow database's
transitions the queue file's. ``--run-slow``: the 20 runs of the bench."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.reliability.accounting import Snapshot, leftovers

BENCH = Path(__file__).resolve().parents[2] / "bench" / "crash_recovery.py"


@pytest.fixture(scope="module")
def crash_recovery() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_crash_recovery", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def totals(out: str) -> dict[str, int]:
    rows = re.findall(r"^  (\S[^\n]*?)\s+(\d+)(?: \(|$)", out, re.MULTILINE)
    return {name: int(value) for name, value in rows}


def run(module: ModuleType, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, int]:
    code = module.main(list(args))
    out = capsys.readouterr().out
    assert code == 0, out
    found = totals(out)
    assert found["DONE twice (must be 0)"] == 0, out
    assert found["transitions lost (must be 0)"] == 0, out
    assert found["runs with a problem (must be 0)"] == 0, out
    assert found["runs left running (must be 0)"] == 0, out
    return found


def test_kill_9_of_night_and_of_serve_then_restart_accounts_for_every_sample(
    crash_recovery: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    before = Snapshot()
    found = run(crash_recovery, capsys, "--runs", "2", "--samples", "2", "--seed", "2")

    assert found["runs"] == 2 and found["killed with SIGKILL"] == 2
    assert found["samples"] == 4 and found["DONE"] == 4
    assert found["recorded INTERRUPTED, run again"] == 2  # both kills caught a sample under way
    assert leftovers(before) == []  # no bes process, no reader thread


@pytest.mark.slow
def test_twenty_runs(crash_recovery: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    found = run(crash_recovery, capsys, "--runs", "20")

    assert found["killed with SIGKILL"] == 20
