"""Seeded sample worlds are reproducible and varied; sample sheets place pins exactly."""

from __future__ import annotations

import json
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from bes.hal import Location
from simulators import world_builder
from simulators.world import SampleWorld
from simulators.world_builder import PROTEINS, build_world, loop_axes, world_from_sheet
from tests.simulators.conftest import CRYSTAL_AT_MM


def fingerprint(world: SampleWorld) -> list[tuple]:
    """Everything that makes a pin what it is, comparable across worlds."""
    out = []
    for loc, pin in sorted(world.pins.items()):
        loop = pin.loop
        out.append(
            (
                loc,
                pin.present,
                pin.name,
                pin.barcode,
                None if loop is None else (loop.centre_mm, loop.size_um, loop.plane_angle_deg),
                [(c.position_mm, c.size_um, c.orientation.tobytes(), c.cell) for c in pin.crystals],
            )
        )
    return out


def test_seeded_worlds_are_reproducible() -> None:
    assert fingerprint(build_world(seed=7)) == fingerprint(build_world(seed=7))
    assert fingerprint(build_world(seed=7)) != fingerprint(build_world(seed=8))


def test_a_pin_does_not_change_when_the_dewar_grows() -> None:
    small = build_world(seed=3, pucks=1, pins_per_puck=4)
    large = build_world(seed=3)
    assert fingerprint(small) == [p for p in fingerprint(large) if p[0] in small.pins]


def test_random_world_has_the_requested_mix_and_plausible_samples() -> None:
    world = build_world(seed=1)
    pins = list(world.pins.values())
    assert len(pins) == 24 * 16
    present = [p for p in pins if p.present]
    crystals = [c for p in present for c in p.crystals]
    assert 0 < len(pins) - len(present) < 25  # missing ~2 %
    assert 15 < sum(not p.crystals for p in present) < 70  # empty ~10 %
    assert 15 < sum(len(p.crystals) > 1 for p in present) < 70  # multi ~10 %
    assert 15 < sum(p.loop.ice > 0 for p in present if p.loop) < 70  # ice ~10 %
    assert 20 < sum(c.strength < 0.2 for c in crystals) < 120  # weak ~15 %
    cells = {(p.cell, p.space_group) for p in PROTEINS.values()}
    for pin in present:
        assert pin.loop is not None and pin.barcode
        length_um, width_um = pin.loop.size_um
        assert 100 <= length_um <= 400 and width_um <= length_um
        assert max(abs(pin.loop.centre_mm[1]), abs(pin.loop.centre_mm[2])) <= 0.3
        for crystal in pin.crystals:
            assert (crystal.cell, crystal.space_group) in cells
            assert 1.2 <= crystal.resolution_limit_a <= 4.0
            assert 0.05 <= crystal.mosaicity_deg <= 1.0
            assert 10 <= max(crystal.size_um) <= 150
            assert np.allclose(crystal.orientation @ crystal.orientation.T, np.eye(3))


def test_crystals_sit_inside_their_loop() -> None:
    for pin in build_world(seed=5, pucks=4).pins.values():
        if pin.loop is None:
            continue
        along, across, normal = loop_axes(pin.loop)
        half_length, half_width = (s * 5e-4 for s in pin.loop.size_um)
        for crystal in pin.crystals:
            offset = np.asarray(crystal.position_mm) - np.asarray(pin.loop.centre_mm)
            s, t = offset @ along / half_length, offset @ across / half_width
            assert s * s + t * t < 1.0
            assert abs(offset @ normal) <= 0.011


def test_mix_options_are_checked() -> None:
    world = build_world(seed=2, pucks=2, empty_fraction=1.0, multi_fraction=0.0)
    assert all(not p.crystals for p in world.pins.values())
    with pytest.raises(ValueError, match="unknown world mix option"):
        build_world(emtpy_fraction=0.5)
    with pytest.raises(ValueError, match=r"missing_fraction must be within 0\.\.1"):
        build_world(missing_fraction=2.0)


def test_sheet_places_a_crystal_at_a_known_position(world: SampleWorld) -> None:
    pin = world.pins[Location(1, 1)]
    assert pin.name == "lyso-known" and pin.barcode == "DM0101"
    (crystal,) = pin.crystals
    assert crystal.position_mm == CRYSTAL_AT_MM
    assert crystal.size_um == (60.0, 40.0, 30.0)
    assert (crystal.space_group, crystal.cell[:3]) == ("P43212", (79.1, 79.1, 37.9))
    assert pin.loop is not None and pin.loop.size_um == (300.0, 200.0)
    assert world.pins[Location(1, 2)].crystals == []
    assert not world.pins[Location(1, 3)].present
    assert world.pins[Location(1, 4)].present and world.pins[Location(1, 4)].loop is None
    assert world.pins[Location(1, 5)].crystals[0].space_group == "P41212"  # thaumatin
    assert not world.pins[Location(3, 3)].present  # not listed: no pin


SHEET_TOML = """
fill = "random"

[[pins]]
location = "2:3"
faults = ["load_fails"]
protein = "insulin"

[pins.loop]
centre_mm = [0.1, 0.0, 0.0]
plane_angle_deg = 90

[[pins.crystals]]
position_mm = [0.1, 0.0, 0.0]
shape = "box"
resolution_limit_a = 1.5
"""


def test_toml_and_json_sheets_and_random_fill(tmp_path: Path) -> None:
    toml_path = tmp_path / "sheet.toml"
    toml_path.write_text(SHEET_TOML)
    world = build_world(seed=4, sheet=toml_path)
    pin = world.pins[Location(2, 3)]
    assert pin.faults == {"load_fails"}
    assert pin.loop is not None and pin.loop.plane_angle_deg == 90 and pin.loop.size_um
    assert pin.crystals[0].shape == "box" and pin.crystals[0].space_group == "I213"
    random_world = build_world(seed=4)
    assert fingerprint(world)[0] == fingerprint(random_world)[0]  # unlisted pins: random fill
    json_path = tmp_path / "sheet.json"
    json_path.write_text(json.dumps({"pins": [{"location": "1:1", "loop": None}]}))
    assert world_from_sheet(json_path).pins[Location(1, 1)].loop is None


@pytest.mark.parametrize(
    ("sheet", "message"),
    [
        ({"pins": [{"location": "1:1", "crystal": []}]}, r"unknown key\(s\) \['crystal'\]"),
        ({"pins": [{"location": "30:1"}]}, "location 30:1 is outside the dewar"),
        ({"pins": [{"location": "1:1", "protein": "ferritin"}]}, "unknown protein 'ferritin'"),
        ({"pins": [{"location": "1:1", "faults": ["fire"]}]}, "unknown fault 'fire'"),
        ({"pins": [{"location": "1:1", "crystals": [{}]}]}, "needs at least 'position_mm'"),
        (
            {"pins": [{"location": "1:1", "crystals": [{"position_mm": [0, 0]}]}]},
            r"pin 1:1\) crystals\[0\]: position_mm needs 3 numbers",
        ),
        ({"fill": "full"}, "unknown fill 'full'"),
    ],
)
def test_bad_sheets_are_explained(sheet: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        world_from_sheet(sheet)


def test_the_documented_sheet_example_is_valid() -> None:
    doc = world_builder.__doc__ or ""
    example = doc[doc.index('    fill = "missing"') : doc.index("The JSON form")]
    sheet = tomllib.loads(textwrap.dedent(example))
    pin = world_from_sheet(sheet).pins[Location(1, 1)]
    assert pin.name == "lyso-1" and pin.faults == {"load_fails"}
    assert pin.crystals[0].position_mm == (0.0, 0.1, 0.0)


def test_sheet_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        world_from_sheet(tmp_path / "nope.toml")
    bad = tmp_path / "sheet.yaml"
    bad.write_text("pins: []")
    with pytest.raises(ValueError, match=r"use \.toml or \.json"):
        world_from_sheet(bad)
