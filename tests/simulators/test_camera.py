"""The simulated on-axis camera shows the loop where the geometry puts it, so a loop-centring
algorithm has something real to find."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bes.hal import Camera, DeviceAction, Location
from simulators.camera import BARE_PIN_TIP_MM, SimCamera
from simulators.clock import SimClock
from simulators.profile import TimingProfile
from simulators.world import SampleWorld
from simulators.world_builder import world_from_sheet
from tests.simulators.conftest import mount

LOOP_CENTRE_MM = (0.1, 0.05, 0.0)
LOOP_SIZE_UM = (300.0, 200.0)
FIBRE_UM = 15.0
DARK = 120
"""Grey level below which a pixel belongs to the pin, the fibre or a crystal edge."""


@pytest.fixture
def loop_world() -> SampleWorld:
    world = world_from_sheet(
        {
            "pins": [
                {
                    "location": "1:1",
                    "loop": {
                        "centre_mm": list(LOOP_CENTRE_MM),
                        "size_um": list(LOOP_SIZE_UM),
                        "fibre_um": FIBRE_UM,
                    },
                }
            ]
        }
    )
    mount(world, "1:1")
    return world


@pytest.fixture
def loop_camera(clock: SimClock, profile: TimingProfile, loop_world: SampleWorld) -> SimCamera:
    return SimCamera(clock=clock, profile=profile, world=loop_world)


def dark(image: np.ndarray) -> np.ndarray:
    return image < DARK


def tip_column(image: np.ndarray) -> int:
    """The rightmost dark column: the loop tip (the pin comes from the left)."""
    return int(np.nonzero(dark(image).any(axis=0))[0].max())


def rows_at(image: np.ndarray, column: float) -> np.ndarray:
    return np.nonzero(dark(image)[:, round(column)])[0]


def test_implements_the_hal_protocol(camera: SimCamera) -> None:
    assert isinstance(camera, Camera)
    assert camera.beam_position_px == (319.5, 255.5)  # the image centre
    assert camera.pixel_size_um == 2.0


def test_snapshot_is_a_grey_image_and_takes_profile_time(
    camera: SimCamera,
    clock: SimClock,
    profile: TimingProfile,
    world: SampleWorld,
    actions: list[DeviceAction],
) -> None:
    mount(world, "1:1")
    world.pose["omega"] = 30.0
    image = camera.snapshot()
    assert image.shape == (512, 640) and image.dtype == np.uint8
    assert clock.now() == pytest.approx(profile.camera.snapshot_s)
    (snap,) = actions
    assert (snap.device, snap.action) == ("camera", "snapshot")
    assert snap.details == {"omega": 30.0, "pin": "1:1"}


def test_loop_appears_where_the_geometry_says(loop_camera: SimCamera) -> None:
    image = loop_camera.snapshot()
    col, row = loop_camera.lab_to_pixel(LOOP_CENTRE_MM[0], LOOP_CENTRE_MM[1])
    assert (col, row) == pytest.approx((369.5, 230.5))
    half_length_px = (LOOP_SIZE_UM[0] + FIBRE_UM) / 2 / 2.0
    assert tip_column(image) == pytest.approx(col + half_length_px, abs=1.5)
    rows = rows_at(image, col)  # the rim above and below the loop centre
    assert rows.mean() == pytest.approx(row, abs=1.0)
    assert rows.max() - rows.min() == pytest.approx((LOOP_SIZE_UM[1] + FIBRE_UM) / 2.0, abs=2)
    assert image[round(row), round(col)] > DARK  # the middle of the loop is see-through


def test_loop_moves_with_the_motors_by_the_expected_pixels(
    loop_camera: SimCamera, loop_world: SampleWorld
) -> None:
    before = loop_camera.snapshot()
    col, _ = loop_camera.lab_to_pixel(LOOP_CENTRE_MM[0], LOOP_CENTRE_MM[1])
    loop_world.pose["phiy"] = 0.1  # along the omega axis: 50 pixels to the right
    after = loop_camera.snapshot()
    assert tip_column(after) - tip_column(before) == pytest.approx(50, abs=1)
    loop_world.pose.update(phiy=0.0, sampx=0.1)  # at omega 0 sampx moves the sample up
    raised = loop_camera.snapshot()
    shift = rows_at(raised, col).mean() - rows_at(before, col).mean()
    assert shift == pytest.approx(-50, abs=1)


def test_loop_seen_edge_on_at_omega_90(loop_camera: SimCamera, loop_world: SampleWorld) -> None:
    col, _ = loop_camera.lab_to_pixel(LOOP_CENTRE_MM[0], LOOP_CENTRE_MM[1])
    face_on = rows_at(loop_camera.snapshot(), col)
    loop_world.pose["omega"] = 90.0
    edge_on = rows_at(loop_camera.snapshot(), col)
    assert face_on.max() - face_on.min() > 90
    assert edge_on.max() - edge_on.min() < 10
    # at omega 90 the loop's height is -(c + sampy) = 0: on the beam row
    assert edge_on.mean() == pytest.approx(loop_camera.beam_position_px[1], abs=1.0)


def test_crystal_shows_darker_than_the_loop_around_it(
    camera: SimCamera, world: SampleWorld
) -> None:
    pin = world.pins[Location(1, 1)]
    crystal = pin.crystals[0]
    pose = dict(world.pose)
    col, row = camera.lab_to_pixel(crystal.position_mm[0], crystal.position_mm[1])
    window = (slice(round(row) - 4, round(row) + 5), slice(round(col) - 4, round(col) + 5))
    with_crystal = camera.render(pin, pose)[window].mean()
    without = camera.render(replace(pin, crystals=[]), pose)[window].mean()
    assert with_crystal < 0.9 * without


def test_missing_pin_shows_nothing_and_a_bare_pin_only_its_stem(
    camera: SimCamera, world: SampleWorld
) -> None:
    assert not dark(camera.snapshot()).any()  # nothing mounted
    mount(world, "1:3")  # the sheet's place without a pin
    assert not dark(camera.snapshot()).any()
    mount(world, "1:4")  # a pin without a loop
    stem = camera.snapshot()
    tip_col, _ = camera.lab_to_pixel(BARE_PIN_TIP_MM, 0.0)
    assert dark(stem).any() and tip_column(stem) <= tip_col + 1
    mount(world, "1:2")  # a pin with an empty loop reaches further right
    assert tip_column(camera.snapshot()) > tip_col + 50


@pytest.mark.parametrize(("omega", "height_um"), [(0.0, 40.0), (90.0, 20.0)])
def test_crystal_shadow_has_its_projected_size(
    clock: SimClock, profile: TimingProfile, omega: float, height_um: float
) -> None:
    """A 100 x 40 x 20 um ellipsoid with its axes along (a, b, c) casts a 100 x 40 um shadow
    face-on at omega 0 and 100 x 20 um at omega 90."""
    crystal = {"position_mm": [0, 0, 0], "size_um": [100, 40, 20]}
    world = world_from_sheet({"pins": [{"location": "1:1", "crystals": [crystal]}]})
    camera = SimCamera(clock=clock, profile=profile, world=world, noise=0.0)
    pin = world.pins[Location(1, 1)]
    pose = {**world.pose, "omega": omega}
    with_crystal = camera.render(pin, pose).astype(float)
    without = camera.render(replace(pin, crystals=[]), pose).astype(float)
    rows, cols = np.nonzero(with_crystal < 0.95 * without)
    assert cols.max() - cols.min() + 1 == pytest.approx(100 / 2.0, abs=2)
    assert rows.max() - rows.min() + 1 == pytest.approx(height_um / 2.0, abs=2)
    assert (cols.mean(), rows.mean()) == pytest.approx(camera.beam_position_px, abs=0.5)
