"""Frame physics: what a spot finder sees depends on the crystal, the beam and the pose."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from simulators.diffraction import STILL_WIDTH_DEG, Exposure, FrameRenderer, OmegaWindow
from simulators.world import ICE_RING_D_A, Crystal
from tests.simulators.detector_helpers import (
    CRYSTAL_AT_MM,
    StrongPixels,
    frame_geometry,
    make_crystal,
    make_pin,
    render,
)


@pytest.fixture(scope="module")
def renderer() -> FrameRenderer:
    """Shared by the module: keeps its maps and reflection tables between tests."""
    return FrameRenderer(seed=11)


@pytest.mark.parametrize("exposure_s", [0.004, 0.1])
def test_centred_crystal_gives_many_more_strong_pixels_than_100um_away(
    renderer: FrameRenderer, exposure_s: float
) -> None:
    pin = make_pin([make_crystal(50.0)])
    geometry = frame_geometry(exposure_s=exposure_s)
    strong = StrongPixels(renderer.background_mean(geometry, 2e12 * exposure_s))
    centred = strong(render(renderer, pin, exposure_s, geometry=geometry))
    away = strong(render(renderer, pin, exposure_s, offset_phiy_mm=0.1, geometry=geometry))
    assert centred.sum() >= 15
    assert centred.sum() > 10 * max(away.sum(), 1)


def test_no_crystal_gives_background_only(renderer: FrameRenderer) -> None:
    geometry = frame_geometry(exposure_s=0.1)
    background = renderer.background_mean(geometry, 2e11)
    strong = StrongPixels(background)
    noise = strong.noise_expectation
    for pin in (make_pin(), make_pin(loop=False), None):
        frame = render(renderer, pin, 0.1, geometry=geometry)
        assert strong(frame).sum() <= noise + 3 * np.sqrt(noise) + 2
        assert frame.counts.mean() == pytest.approx(background.mean(), rel=0.01)
        assert frame.spot_photons.size == 0


def test_each_crystal_of_a_pin_diffracts_when_it_is_in_the_beam(renderer: FrameRenderer) -> None:
    first = make_crystal(40.0)
    second = Crystal(position_mm=(CRYSTAL_AT_MM[0] + 0.1, *CRYSTAL_AT_MM[1:]), size_um=(40.0,) * 3)
    pin = make_pin([first, second], salt=True)
    on_first = render(renderer, pin, 0.1)
    on_second = render(renderer, pin, 0.1, offset_phiy_mm=-0.1)
    assert on_first.lit_fraction[0] > 0.1 and on_first.lit_fraction[1] == 0.0
    assert on_second.lit_fraction[0] == 0.0 and on_second.lit_fraction[1] > 0.1
    assert set(np.unique(on_first.spot_crystal)) <= {0, -1}
    assert set(np.unique(on_second.spot_crystal)) <= {1, -1}
    assert np.sum(on_first.spot_crystal == 0) > 100 and np.sum(on_second.spot_crystal == 1) > 100


def test_shutter_closed_or_no_beam_gives_a_dark_frame(renderer: FrameRenderer) -> None:
    frame = render(renderer, make_pin([make_crystal(50.0)]), 0.1, flux_ph_s=0.0)
    assert frame.counts.dtype == np.uint32
    assert not frame.counts.any()


def test_signal_grows_with_crystal_volume_in_beam(renderer: FrameRenderer) -> None:
    geometry = frame_geometry(exposure_s=0.02)
    strong_pixels = StrongPixels(renderer.background_mean(geometry, 2e12 * 0.02))
    photons, strong = [], []
    for size_um in (10.0, 20.0, 40.0):
        frame = render(renderer, make_pin([make_crystal(size_um)]), 0.02, geometry=geometry)
        photons.append(frame.spot_photons.sum())
        strong.append(strong_pixels(frame).sum())
    assert photons[0] < photons[1] < photons[2]
    assert strong[0] < strong[1] < strong[2]
    # The same crystal half out of the beam gives less.
    pin = make_pin([make_crystal(40.0)])
    edge = render(renderer, pin, 0.02, offset_phiy_mm=0.025, geometry=geometry)
    assert 0 < edge.spot_photons.sum() < 0.5 * photons[2]


def test_spots_fall_off_with_resolution(renderer: FrameRenderer) -> None:
    geometry = frame_geometry(exposure_s=0.5)
    strong_pixels = StrongPixels(renderer.background_mean(geometry, 2e12 * 0.5))
    d_map = renderer.pixel_resolution_a(geometry)
    beyond = {}
    for limit_a in (2.0, 3.0):
        crystal = make_crystal(50.0, resolution_limit_a=limit_a)
        frame = render(renderer, make_pin([crystal]), 0.5, oscillation_deg=0.1, geometry=geometry)
        strong = strong_pixels(frame)
        assert strong.sum() > 50
        beyond[limit_a] = int((strong & (d_map < 2.7)).sum())
    assert beyond[3.0] <= 3  # noise only
    assert beyond[2.0] > 20


def test_mosaicity_records_more_reflections_per_frame(renderer: FrameRenderer) -> None:
    counts = []
    for mosaicity_deg in (0.1, 0.5, 1.5):
        crystal = make_crystal(50.0, mosaicity_deg=mosaicity_deg)
        frame = render(renderer, make_pin([crystal]), 0.1, oscillation_deg=0.1)
        counts.append(int(np.sum(frame.spot_photons > 1.0)))
    assert counts[0] < counts[1] < counts[2]
    assert counts[2] > 3 * counts[0]


def test_same_reflection_same_intensity_on_every_frame(renderer: FrameRenderer) -> None:
    pin = make_pin([make_crystal(50.0)])
    first = render(renderer, pin, 0.1, oscillation_deg=0.1, omega=12.0)
    again = render(renderer, pin, 0.1, oscillation_deg=0.1, omega=12.0)
    np.testing.assert_allclose(first.spot_photons, again.spot_photons)
    np.testing.assert_allclose(first.spot_xy_px, again.spot_xy_px)
    assert not np.array_equal(first.counts, again.counts)  # fresh noise


def test_spot_positions_obey_bragg_law(renderer: FrameRenderer) -> None:
    geometry = frame_geometry(exposure_s=0.1)
    frame = render(renderer, make_pin([make_crystal(50.0)]), 0.1, 0.1, geometry=geometry)
    x, y = frame.spot_xy_px.T
    radius_px = np.hypot(x - geometry.beam_centre_px[0], y - geometry.beam_centre_px[1])
    two_theta = 2.0 * np.arcsin(geometry.wavelength_a / (2.0 * frame.spot_d_a))
    bragg_px = geometry.distance_mm * np.tan(two_theta) / geometry.pixel_size_mm
    assert len(x) > 100
    np.testing.assert_allclose(radius_px, bragg_px, rtol=0.01, atol=0.5)


def test_strong_spots_cover_at_least_three_connected_pixels(renderer: FrameRenderer) -> None:
    geometry = frame_geometry(exposure_s=0.1)
    background = renderer.background_mean(geometry, 2e11)
    frame = render(renderer, make_pin([make_crystal(50.0)]), 0.1, geometry=geometry)
    labels, n = ndimage.label(frame.counts > background + 3 * np.sqrt(background) + 0.5)
    sizes = ndimage.sum(np.ones_like(labels), labels, range(1, n + 1))
    strongest = frame.spot_xy_px[frame.spot_photons > 500]
    assert len(strongest) >= 5
    for x, y in strongest:
        label = labels[int(y), int(x)]
        assert label > 0 and sizes[label - 1] >= 3


def test_ice_rings_at_the_ice_d_spacings_only_when_the_loop_is_in_the_beam(
    renderer: FrameRenderer,
) -> None:
    geometry = frame_geometry(exposure_s=0.1)
    background = renderer.background_mean(geometry, 2e11)
    d_map = renderer.pixel_resolution_a(geometry)
    icy = render(renderer, make_pin(ice=1.0), 0.1, geometry=geometry)
    for d in ICE_RING_D_A[:3]:
        ring = np.abs(d_map - d) < 0.01
        assert icy.counts[ring].mean() > 3 * background[ring].mean()
    between = np.abs(d_map - 3.78) < 0.01
    assert icy.counts[between].mean() == pytest.approx(background[between].mean(), rel=0.05)
    away = render(renderer, make_pin(ice=1.0), 0.1, offset_phiy_mm=0.5, geometry=geometry)
    ring = np.abs(d_map - ICE_RING_D_A[2]) < 0.01
    assert away.loop_in_beam == 0.0
    assert away.counts[ring].mean() == pytest.approx(background[ring].mean(), rel=0.05)


def test_salt_gives_a_few_very_strong_spots_when_the_loop_is_in_the_beam(
    renderer: FrameRenderer,
) -> None:
    salty = [render(renderer, make_pin(salt=True), 0.004, omega=w) for w in range(0, 40, 4)]
    per_frame = [int(np.sum(f.spot_photons > 200)) for f in salty]
    assert 1 <= np.mean(per_frame) <= 15
    away = render(renderer, make_pin(salt=True), 0.004, offset_phiy_mm=0.5)
    assert away.spot_photons.size == 0


def test_overloads_for_a_big_strong_crystal_at_full_transmission_not_at_5_percent(
    renderer: FrameRenderer,
) -> None:
    pin = make_pin([make_crystal(200.0, strength=5.0)])
    overloads = {}
    for transmission in (1.0, 0.05):
        frames = [
            render(renderer, pin, 0.1, 0.1, omega=w, flux_ph_s=2e12 * transmission)
            for w in range(0, 40, 4)
        ]
        overloads[transmission] = sum(f.overloads for f in frames)
        assert max(int(f.counts.max()) for f in frames) <= frame_geometry().count_cutoff
    assert overloads[1.0] > 0
    assert overloads[0.05] == 0


def test_partiality_of_a_rotation_series_adds_up_to_one() -> None:
    omega = np.array([0.37, 0.52, 1.1])
    sigma = np.array([0.08, 0.3, 0.05])
    total = np.zeros(3)
    for i in range(-30, 50):
        pose_start = {"omega": i * 0.1}
        pose_end = {"omega": (i + 1) * 0.1}
        window = OmegaWindow.of(_exposure(pose_start, pose_end))
        total += window.partiality(omega, sigma)[0]
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    still = OmegaWindow.of(_exposure({"omega": 5.0}, {"omega": 5.0}))
    assert still.high_deg - still.low_deg == pytest.approx(STILL_WIDTH_DEG)


def test_eiger2_4m_frame_has_module_gaps_at_zero() -> None:
    renderer = FrameRenderer(seed=1)
    geometry = frame_geometry("eiger2_4m", exposure_s=0.05)
    frame = render(renderer, make_pin([make_crystal(50.0)]), 0.05, 0.1, geometry=geometry)
    assert frame.counts.shape == (2162, 2068)
    assert not frame.counts[geometry.mask].any()
    assert frame.counts[~geometry.mask].mean() > 0.1
    assert geometry.mask[512:550, :].all() and geometry.mask[:, 1028:1040].all()
    assert len(frame.spot_photons) > 100


def _exposure(pose_start: dict[str, float], pose_end: dict[str, float]) -> Exposure:
    return Exposure(pose_start, pose_end, 0.1, 2e12, (20.0, 20.0))
