"""The embedded simulated beamline config builds, and its devices share one world and clock."""

from __future__ import annotations

import numpy as np
import pytest

from bes.config import SIMULATED_BEAMLINE
from bes.hal import Beamline, Location
from simulators.profile import TimingProfile

STAND_IN_DETECTOR = {"detector": {"factory": "tests.hal.fakes:FakeDevice"}}


def exercise(beamline: Beamline) -> None:
    """Mount a pin, look at it, turn it: the devices must agree on one world and clock."""
    world = beamline.extras["world"]
    profile: TimingProfile = beamline.extras["profile"]
    beamline.sample_changer.load(Location(1, 1))
    assert world.mounted == Location(1, 1)
    image = beamline.camera.snapshot()
    assert image.shape == (512, 640) and image.min() < 120  # the pin is in view
    beamline.goniometer.move("omega", 90.0)
    assert world.pose["omega"] == 90.0
    expected = (
        profile.sample_changer.load_s
        + profile.camera.snapshot_s
        + profile.goniometer.move_time("omega", 90.0)
    )
    assert beamline.clock.now() == pytest.approx(expected)
    assert not np.array_equal(image, beamline.camera.snapshot())  # the loop turned
    beamline.stop()


def test_config_builds_every_simulated_device_with_a_stand_in_detector() -> None:
    beamline = Beamline.from_config(SIMULATED_BEAMLINE, overrides=STAND_IN_DETECTOR)
    assert beamline.name == "SIM-MX1" and beamline.clock.mode == "instant"
    exercise(beamline)
    for role in ("goniometer", "sample_changer", "beam", "shutter", "camera"):
        assert isinstance(getattr(beamline, role).describe(), dict)


def test_full_simulated_beamline_from_the_embedded_config() -> None:
    beamline = Beamline.from_config(SIMULATED_BEAMLINE)
    exercise(beamline)
