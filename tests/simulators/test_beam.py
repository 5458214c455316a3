"""The simulated beam and shutter: settings in profile time, flux, and beam losses that
last a span of beamline time and stop the shutter from opening."""

from __future__ import annotations

import pytest

from bes.hal import HC_KEV_A, Beam, BeamLossError, DeviceAction, Shutter
from simulators.beam import SimBeam, SimShutter
from simulators.clock import SimClock
from simulators.faults import FaultPlan
from simulators.profile import TimingProfile
from simulators.world import SampleWorld
from tests.simulators.conftest import mount


def test_implement_the_hal_protocols(beam: SimBeam, shutter: SimShutter) -> None:
    assert isinstance(beam, Beam) and isinstance(shutter, Shutter)
    assert beam.available and not shutter.is_open


def test_transmission_scales_the_flux_and_is_validated(
    beam: SimBeam, clock: SimClock, profile: TimingProfile, world: SampleWorld
) -> None:
    beam.set_transmission(0.25)
    assert beam.flux_ph_s == pytest.approx(0.25 * beam.full_flux_ph_s)
    assert world.beam.transmission == 0.25
    assert clock.now() == pytest.approx(profile.beam.transmission_change_s)
    for bad in (1.5, -0.1, 50, float("nan"), "half"):
        with pytest.raises(ValueError, match=r"within 0\.\.1"):
            beam.set_transmission(bad)  # type: ignore[arg-type]
    assert beam.transmission == 0.25


def test_energy_sets_the_wavelength(
    beam: SimBeam, clock: SimClock, profile: TimingProfile, actions: list[DeviceAction]
) -> None:
    beam.set_energy(HC_KEV_A)  # 1 Angstrom
    assert beam.wavelength_a == pytest.approx(1.0)
    assert clock.now() == pytest.approx(profile.beam.energy_change_s)
    assert actions[-1].details["energy_kev"] == HC_KEV_A
    with pytest.raises(ValueError, match="energy 40 keV is outside"):
        beam.set_energy(40)


def test_aperture_sets_the_beam_size(beam: SimBeam, world: SampleWorld) -> None:
    assert beam.apertures_um == (5.0, 10.0, 20.0, 50.0)
    beam.set_aperture(10)
    assert beam.beam_size_um == (10.0, 10.0) and world.beam.beam_size_um == (10.0, 10.0)
    with pytest.raises(ValueError, match="no aperture of 7 um; known: 5, 10, 20, 50 um"):
        beam.set_aperture(7)


def test_shutter_takes_its_profile_times(
    shutter: SimShutter, clock: SimClock, profile: TimingProfile, world: SampleWorld
) -> None:
    shutter.open()
    assert shutter.is_open and world.beam.shutter_open
    shutter.close()
    assert not shutter.is_open
    assert clock.now() == pytest.approx(profile.shutter.open_s + profile.shutter.close_s)


def test_injected_beam_loss_lasts_its_beamline_time(
    beam: SimBeam, shutter: SimShutter, clock: SimClock, world: SampleWorld
) -> None:
    mount(world, "1:1")
    beam.inject_beam_loss(30.0)
    assert not beam.available and not world.beam.available
    assert beam.flux_ph_s == 0.0
    with pytest.raises(BeamLossError) as error:
        shutter.open()
    assert error.value.device == "shutter" and error.value.pin == "1:1"
    assert not shutter.is_open
    clock.sleep(30.0)
    shutter.open()  # the beam is back, even though nobody asked the beam in between
    assert shutter.is_open and beam.available and beam.flux_ph_s > 0


def test_beam_loss_fault_fires_when_the_shutter_opens(
    clock: SimClock, profile: TimingProfile, world: SampleWorld
) -> None:
    faults = FaultPlan(per_pin={"1:1": ["beam_loss"]}, once=True, beam_loss_s=20.0)
    beam = SimBeam(clock=clock, profile=profile, world=world, faults=faults)
    shutter = SimShutter(clock=clock, profile=profile, world=world)
    mount(world, "1:1")
    with pytest.raises(BeamLossError, match=r"shutter \(pin 1:1\): no beam"):
        shutter.open()
    assert not beam.available
    assert beam.lost_until_s == pytest.approx(profile.shutter.open_s + 20.0)
    clock.sleep(20.0)
    shutter.open()
    assert shutter.is_open and faults.fired == [("beam_loss", "1:1")]


def test_describe(beam: SimBeam, shutter: SimShutter) -> None:
    assert beam.describe()["available"] is True
    assert shutter.describe() == {"open": False}
