"""The Beamline container: built from a config naming each device's implementation."""

from __future__ import annotations

from pathlib import Path

import pytest

from bes.hal import DEVICE_ROLES, Beamline, BeamlineConfigError, Location

FAKE = "tests.hal.fakes:FakeDevice"


def config(**changes: dict) -> dict:
    components: dict[str, dict] = {role: {"factory": FAKE} for role in DEVICE_ROLES}
    components["clock"] = {"factory": "tests.hal.fakes:FakeClock"}
    components.update(changes)
    return {"beamline": {"name": "TEST-BL"}, "components": components}


def test_builds_every_role_and_passes_references() -> None:
    cfg = config(
        shared={"factory": FAKE, "colour": "blue"},
        goniometer={"factory": FAKE, "clock": "@clock", "shared": "@shared", "speed": 3},
    )
    beamline = Beamline.from_dict(cfg)
    assert beamline.name == "TEST-BL"
    assert set(beamline.devices()) == set(DEVICE_ROLES)
    gonio_kwargs = beamline.goniometer.kwargs  # type: ignore[attr-defined]
    assert gonio_kwargs["clock"] is beamline.clock
    assert gonio_kwargs["shared"] is beamline.extras["shared"]
    assert gonio_kwargs["speed"] == 3


def test_overrides_change_one_component() -> None:
    beamline = Beamline.from_dict(config(), overrides={"clock": {"mode": "real"}})
    assert beamline.clock.mode == "real"


def test_override_of_unknown_component_is_named() -> None:
    with pytest.raises(BeamlineConfigError, match="unknown component 'clok'"):
        Beamline.from_dict(config(), overrides={"clok": {"mode": "real"}})


def test_missing_role_is_named() -> None:
    cfg = config()
    del cfg["components"]["camera"]
    with pytest.raises(BeamlineConfigError, match="camera"):
        Beamline.from_dict(cfg)


def test_component_not_implementing_its_protocol_is_refused() -> None:
    cfg = config(detector={"factory": "tests.hal.fakes:NotADetector"})
    with pytest.raises(BeamlineConfigError, match=r"'detector' .*Detector protocol"):
        Beamline.from_dict(cfg)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("no_such_module_xyz:Thing", "cannot import 'no_such_module_xyz'"),
        ("tests.hal.fakes:Nope", "has no 'Nope'"),
        ("not-an-entry-point", "unknown factory 'not-an-entry-point'"),
    ],
)
def test_bad_factory_reference_is_explained(factory: str, message: str) -> None:
    with pytest.raises(BeamlineConfigError, match=message):
        Beamline.from_dict(config(goniometer={"factory": factory}))


def test_unknown_reference_and_cycles_are_reported() -> None:
    with pytest.raises(BeamlineConfigError, match=r"unknown component 'nowhere'.*goniometer"):
        Beamline.from_dict(config(goniometer={"factory": FAKE, "x": "@nowhere"}))
    cyclic = config(a={"factory": FAKE, "other": "@b"}, b={"factory": FAKE, "other": "@a"})
    with pytest.raises(BeamlineConfigError, match="cycle: a -> b -> a"):
        Beamline.from_dict(cyclic)


def test_factory_rejecting_arguments_names_the_component() -> None:
    with pytest.raises(BeamlineConfigError, match=r"'clock'.*unexpected keyword"):
        Beamline.from_dict(config(clock={"factory": "tests.hal.fakes:FakeClock", "bogus": 1}))


def test_entry_point_names_resolve() -> None:
    beamline = Beamline.from_dict(config(clock={"factory": "sim.clock", "mode": "scaled"}))
    assert type(beamline.clock).__name__ == "SimClock"


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(BeamlineConfigError, match="does not exist"):
        Beamline.from_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[components\n")
    with pytest.raises(BeamlineConfigError, match="not valid TOML"):
        Beamline.from_config(bad)


@pytest.mark.parametrize("text", ["1", "a:b", "0:3", "1:2:3", ""])
def test_bad_locations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad sample location"):
        Location.parse(text)


def test_location_round_trip() -> None:
    assert str(Location.parse("2:16")) == "2:16"
    assert Location.parse("1:3") < Location.parse("1:10") < Location.parse("2:1")
