"""bench/soak.py, short: 20 samples with random device faults at a high rate end every sample
in a final state that an injected fault explains, lose no record (queue file, workflow
database, LIMS), hang nowhere and leave nothing running. ``--run-slow``: 200 samples."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_soak", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def figures(out: str) -> dict[str, int]:
    found = {
        "not final": r"not final \(must be 0\)\s+(\d+)",
        "unexplained": r"FAILED by no injected fault \(must be 0\)\s+(\d+)",
        "lost": r"records lost \(must be 0\): (\d+)",
        "hangs": r"hangs \(must be 0\): (\d+)",
    }
    values = {}
    for name, pattern in found.items():
        match = re.search(pattern, out)
        assert match, f"{name} not printed:\n{out}"
        values[name] = int(match.group(1))
    return values


def run_soak(soak: ModuleType, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = soak.main(list(args))
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_a_short_soak_loses_nothing_and_hangs_nowhere(
    soak: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_soak(soak, capsys, "--samples", "20", "--rate", "0.02", "--seed", "3")

    assert figures(out) == {"not final": 0, "unexplained": 0, "lost": 0, "hangs": 0}
    states = dict(re.findall(r"^  (DONE \w+|FAILED|SKIPPED|ABORTED)\s+(\d+)$", out, re.MULTILINE))
    assert sum(int(n) for n in states.values()) == 20
    fired = [int(n) for n in re.findall(r"^  \w+\s+(\d+) fired", out, re.MULTILINE)]
    assert sum(fired) > 0, "no fault fired: the soak tested nothing"
    assert "soak: OK" in out
    assert re.search(r"memory \(RSS\): start \d+ MB, after \d+ samples \d+ MB, end \d+ MB", out)
    assert "wall time:" in out and "parameters:" in out


@pytest.mark.slow
def test_a_longer_soak(soak: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_soak(soak, capsys, "--samples", "200")

    assert figures(out) == {"not final": 0, "unexplained": 0, "lost": 0, "hangs": 0}
