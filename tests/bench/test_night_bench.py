"""bench/night.py, short: a 3-sample night prints every final state, the wall and beamline
times and the targets, and leaves no sample unfinished."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "night.py"


def test_a_short_night_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_night", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    assert module.main(["--samples", "3", "--seed", "1"]) == 0

    out = capsys.readouterr().out
    counts = dict(re.findall(r"^  (\S.*?)\s{2,}(\d+)$", out, flags=re.MULTILINE))
    assert counts.pop("not final (must be 0)") == "0"
    assert sum(int(n) for n in counts.values()) == 3
    assert re.search(r"samples per beamline hour", out)
    assert re.search(r"LIMS: \d+ rows written over HTTP", out)
    assert "targets: 384-sample night wall <= 10 min" in out
