"""The data layout puts each acquisition in its own place under the data area and never
overwrites an earlier one."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bes.acquisition.layout import DataLayout, Target, layout_from_parameters, safe_name


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    return DataLayout(tmp_path / "data", proposal="mx1234", beamline="ID-TEST", date="20250131")


def test_directory_follows_the_template_and_is_created(layout: DataLayout) -> None:
    raw = layout.directory("lyso_1_3")
    processed = layout.directory("lyso_1_3", kind="PROCESSED_DATA", subdir="mesh/autoproc")

    assert raw == layout.root / "mx1234/ID-TEST/20250131/RAW_DATA/lyso_1_3"
    session = layout.root / "mx1234/ID-TEST/20250131"
    assert processed == session / "PROCESSED_DATA/lyso_1_3/mesh/autoproc"
    assert raw.is_dir() and processed.is_dir()
    assert layout.directory("lyso_1_3") == raw  # asking again is fine


def test_custom_template_and_default_date_is_today_utc(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path, template="{beamline}-{date}/{sample}/{kind}")
    today = datetime.now(UTC).strftime("%Y%m%d")

    assert layout.date == today
    assert layout.directory("1-3") == tmp_path / f"SIM-MX1-{today}/1-3/RAW_DATA"


def test_next_run_skips_runs_that_have_files(layout: DataLayout) -> None:
    directory = layout.directory("lyso")
    (directory / "mesh_1_master.h5").touch()
    (directory / "mesh_2_0001.cbf").touch()
    (directory / "mesh_4").mkdir()
    (directory / "mesh_5.log").touch()
    (directory / "other_3_master.h5").touch()
    (directory / "mesh_30_0001.cbf").touch()

    assert layout.next_run(directory, "mesh") == 3
    assert layout.next_run(directory, "mesh", start=4) == 6
    assert layout.next_run(directory, "other") == 1
    assert layout.next_run(layout.root / "not-yet-made", "mesh", start=7) == 7


def test_reserve_takes_the_next_run_and_holds_it(layout: DataLayout) -> None:
    first = layout.reserve("lyso", "mesh")
    second = layout.reserve("lyso", "mesh")

    assert (first.run, second.run) == (1, 2)
    assert first.moved_from is None
    assert first.directory == layout.directory("lyso")
    assert first.file_template(".cbf") == "mesh_1_####.cbf"
    assert layout.next_run(first.directory, "mesh") == 3


def test_reserve_moves_a_taken_run_and_says_so(layout: DataLayout) -> None:
    directory = layout.directory("lyso", kind="PROCESSED_DATA")
    (directory / "ref_3_master.h5").touch()
    (directory / "ref_4_0001.cbf").touch()

    moved = layout.reserve("lyso", "ref", kind="PROCESSED_DATA", run=3)
    kept = layout.reserve("lyso", "ref", kind="PROCESSED_DATA", run=9)

    assert moved == Target(directory, "ref", 5, moved_from=3)
    assert kept == Target(directory, "ref", 9)


def test_concurrent_reservations_get_different_runs(layout: DataLayout) -> None:
    start = threading.Barrier(20)
    runs: list[int] = []
    errors: list[BaseException] = []

    def reserve() -> None:
        try:
            start.wait()
            runs.append(layout.reserve("lyso", "mesh").run)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=reserve) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(runs) == list(range(1, 21))


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"proposal": "mx 12"}, "proposal"),
        ({"proposal": ""}, "proposal"),
        ({"beamline": "../etc"}, "beamline"),
        ({"date": "2025-01-31"}, "date"),
        ({"date": "20251399"}, "date"),
        ({"template": "{proposal}/{user}/{sample}"}, "template"),
        ({"template": "/abs/{proposal}/{sample}"}, "template"),
        ({"template": "{proposal}/../{sample}"}, "template"),
        ({"template": "{proposal}/{sample"}, "template"),
    ],
)
def test_bad_layout_parameters_are_refused(
    tmp_path: Path, arguments: dict[str, str], parameter: str
) -> None:
    with pytest.raises(ValueError, match=f"^{parameter} "):
        DataLayout(tmp_path, **arguments)


def test_unknown_template_field_lists_the_known_ones(tmp_path: Path) -> None:
    known = "known: proposal, beamline, date, kind, sample"
    with pytest.raises(ValueError, match=r"\{user\}.*" + known):
        DataLayout(tmp_path, template="{proposal}/{user}")


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda layout: layout.directory("1:3"), "sample"),
        (lambda layout: layout.directory(".."), "sample"),
        (lambda layout: layout.directory("lyso", kind="RAW"), "kind"),
        (lambda layout: layout.directory("lyso", subdir="../../escape"), "subdir"),
        (lambda layout: layout.directory("lyso", subdir="/tmp/escape"), "subdir"),
        (lambda layout: layout.directory("lyso", subdir="a/b c"), "subdir"),
        (lambda layout: layout.reserve("lyso", "mesh/1"), "prefix"),
        (lambda layout: layout.reserve("lyso", "mesh", run=0), "run"),
        (lambda layout: layout.next_run(layout.root, "-mesh"), "prefix"),
    ],
)
def test_bad_names_and_paths_are_refused(layout: DataLayout, call, parameter: str) -> None:
    with pytest.raises(ValueError, match=f"^{parameter} "):
        call(layout)
    assert not (layout.root.parent / "escape").exists()


def test_symlink_out_of_the_data_area_is_refused(layout: DataLayout, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    proposal_dir = layout.root / "mx1234"
    proposal_dir.parent.mkdir(parents=True)
    proposal_dir.symlink_to(outside)

    with pytest.raises(ValueError, match="leaves the data area"):
        layout.directory("lyso")
    with pytest.raises(ValueError, match="leaves the data area"):
        layout.reserve("lyso", "mesh")
    with pytest.raises(ValueError, match="leaves the data area"):
        layout.next_run(proposal_dir, "mesh")
    assert list(outside.iterdir()) == []


def test_symlink_inside_the_data_area_is_followed(layout: DataLayout) -> None:
    elsewhere = layout.root / "mirror"
    elsewhere.mkdir(parents=True)
    (layout.root / "mx1234").symlink_to(elsewhere)

    assert layout.reserve("lyso", "mesh").run == 1
    assert (elsewhere / "ID-TEST/20250131/RAW_DATA/lyso").is_dir()


@pytest.mark.parametrize(
    ("text", "name"),
    [("1:3", "1-3"), ("lyso_1_3", "lyso_1_3"), ("..hidden", "hidden"), ("a b/c", "a-b-c")],
)
def test_safe_name_makes_a_valid_name(text: str, name: str) -> None:
    assert safe_name(text) == name


@pytest.mark.parametrize("text", ["", "..", "::"])
def test_safe_name_refuses_text_without_a_name(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        safe_name(text)


def test_layout_from_parameters_applies_defaults(tmp_path: Path) -> None:
    defaults = layout_from_parameters(str(tmp_path))
    given = layout_from_parameters(tmp_path, proposal="mx99", date="20240229", template="{sample}")

    assert (defaults.root, defaults.proposal, defaults.beamline) == (tmp_path, "mx0000", "SIM-MX1")
    assert defaults.template == DataLayout(tmp_path).template
    assert re.fullmatch(r"[0-9]{8}", defaults.date or "")
    assert given == DataLayout(tmp_path, proposal="mx99", date="20240229", template="{sample}")
