"""bench/sample_time.py: the per-step table of beamline time per sample is complete and its
shares add up to 100 %."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sample_time.py"


@pytest.fixture(scope="module")
def sample_time() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sample_time", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def table_rows(text: str, steps: tuple[str, ...]) -> dict[str, list[float]]:
    """``step -> [mean, median, p90, share]`` from the printed breakdown."""
    number = r"\s+([-\d.]+)"
    rows = {}
    for line in text.splitlines():
        for step in (*steps, "total"):
            match = re.fullmatch(re.escape(step) + 4 * number, line)
            if match:
                rows[step] = [float(v) for v in match.groups()]
    return rows


def test_two_samples_print_every_step_with_shares_adding_to_100(
    sample_time: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    # A short collection keeps the run quick; every step still runs.
    assert sample_time.main(["--samples", "2", "--param", "total_range_deg=5"]) == 0
    out = capsys.readouterr().out

    rows = table_rows(out, sample_time.STEPS)
    assert set(rows) == {*sample_time.STEPS, "total"}, out
    shares = [rows[step][3] for step in sample_time.STEPS]
    assert sum(shares) == pytest.approx(100.0, abs=0.5)
    assert rows["total"][3] == pytest.approx(100.0, abs=0.05)
    means = [rows[step][0] for step in sample_time.STEPS]
    assert sum(means) == pytest.approx(rows["total"][0], abs=0.1 * len(means))
    # Both samples are mounted, scanned and collected: those steps take beamline time.
    for step in ("mount", "loop centring", "meshes", "collection"):
        assert rows[step][0] > 0, step
    assert "outcomes: collected 2" in out
    assert re.search(r"target <= 2.5 min per sample: (met|NOT met)", out)
    assert re.search(r"target software wait <= 5 %: (met|NOT met)", out)
    assert "MASSIF-1" in out


def test_breakdown_takes_the_software_wait_out_of_its_step(sample_time: ModuleType) -> None:
    def sample(location: str, steps: dict[str, float]) -> object:
        full = dict.fromkeys(sample_time.STEPS, 0.0) | steps
        return sample_time.SampleTime(
            location=location,
            status="finished",
            outcome="collected",
            steps=full,
            total_s=sum(full.values()),
            software_wait_s=full["analysis wait"],
            software_wait_by_label_s={"mesh analysis": full["analysis wait"]},
            wait_by_step_s={"meshes": full["analysis wait"]},
            actions={},
            wall_s=1.0,
            summary_beamline_s=None,
        )

    samples = [
        sample("1:1", {"mount": 38.0, "meshes": 4.0, "analysis wait": 2.0, "collection": 16.0}),
        sample("1:2", {"mount": 38.0, "meshes": 6.0, "analysis wait": 6.0, "collection": 30.0}),
    ]
    rows = {r.step: r for r in sample_time.breakdown(samples)}

    assert list(rows) == list(sample_time.STEPS)
    assert sum(r.share_percent for r in rows.values()) == pytest.approx(100.0)
    assert rows["analysis wait"].mean_s == pytest.approx(4.0)
    assert rows["analysis wait"].share_percent == pytest.approx(100.0 * 8.0 / 140.0)
    assert rows["mount"].median_s == pytest.approx(38.0)
    assert rows["collection"].p90_s == pytest.approx(28.6)


def test_the_good_crystal_sheet_is_seeded_and_keeps_crystals_near_the_loop_centre(
    sample_time: ModuleType,
) -> None:
    sheet = sample_time.good_crystal_sheet(20, seed=3)
    assert sheet == sample_time.good_crystal_sheet(20, seed=3)
    assert sheet != sample_time.good_crystal_sheet(20, seed=4)
    assert [p["location"] for p in sheet["pins"]] == sample_time.locations(20)
    for pin in sheet["pins"]:
        centre = pin["loop"]["centre_mm"]
        (crystal,) = pin["crystals"]
        assert max(abs(c) for c in centre) <= 0.1
        assert 30.0 <= crystal["size_um"][0] <= 80.0
        offset_um = [1e3 * (p - c) for p, c in zip(crystal["position_mm"], centre, strict=True)]
        half_length_um = pin["loop"]["size_um"][0] / 2
        assert max(abs(o) for o in offset_um) <= 0.25 * half_length_um + 10.5
