"""Dose model: known values, the way dose scales, and clear refusals of bad inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bes.analysis.dose import (
    CHARACTERISATION_SHARE,
    DOSE_LIMIT_MGY,
    collection_budget_mgy,
    crystal_fluence_fraction,
    dose_gy,
    dose_rate_mgy_s,
    mass_energy_absorption,
    peak_fluence_ph_um2,
)

AREA = math.pi / (4.0 * math.log(2.0))
"""A Gaussian beam's area is AREA x FWHM_h x FWHM_v."""


def flux_for_fluence(fluence_ph_um2: float, beam_um: tuple[float, float]) -> float:
    """Flux that gives ``fluence_ph_um2`` at the peak in one second."""
    return fluence_ph_um2 * AREA * beam_um[0] * beam_um[1]


def test_one_mgy_per_two_billion_photons_per_um2_at_12_4_kev() -> None:
    """Holton's rule of thumb (J. Synchrotron Rad. 2009): ~2e9 ph/um^2 per MGy near 1 A."""
    beam = (20.0, 20.0)
    dose_mgy = dose_gy(flux_for_fluence(2e9, beam), 1.0, beam, 12.4) / 1e6
    assert dose_mgy == pytest.approx(1.0, rel=0.2)


def test_default_beam_of_the_simulator_gives_about_2_mgy_per_second() -> None:
    """2e12 ph/s in 20 x 20 um at 12.7 keV: ~4.4e9 ph/um^2/s, i.e. ~2.4 MGy/s at the peak."""
    rate = dose_rate_mgy_s(2e12, (20.0, 20.0), 12.7)
    assert peak_fluence_ph_um2(2e12, 1.0, (20.0, 20.0)) == pytest.approx(4.41e9, rel=0.01)
    assert 1.8 < rate < 3.0


def test_dose_is_proportional_to_fluence() -> None:
    base = dose_gy(1e12, 0.1, (20.0, 10.0), 12.7)
    assert dose_gy(2e12, 0.1, (20.0, 10.0), 12.7) == pytest.approx(2 * base)
    assert dose_gy(1e12, 0.3, (20.0, 10.0), 12.7) == pytest.approx(3 * base)
    assert dose_gy(1e12, 0.1, (40.0, 10.0), 12.7) == pytest.approx(base / 2)
    assert dose_gy(0.0, 0.1, (20.0, 10.0), 12.7) == 0.0


def test_absorption_matches_the_nist_table_times_the_protein_factor() -> None:
    for energy_kev, water in ((6.0, 23.28), (10.0, 4.944), (15.0, 1.374), (20.0, 0.5503)):
        assert mass_energy_absorption(energy_kev) == pytest.approx(water * 1.15)


def test_dose_per_photon_falls_with_energy_from_6_to_20_kev() -> None:
    energies = np.linspace(6.0, 20.0, 15)
    per_photon = [dose_gy(1e12, 1.0, (20.0, 20.0), e) for e in energies]
    assert all(a > b for a, b in itertools.pairwise(per_photon))
    # mu_en/rho x E of water: 23.28 x 6 keV against ~2.5 x 12.4 keV: ~4.5x per photon.
    assert per_photon[0] / dose_gy(1e12, 1.0, (20.0, 20.0), 12.4) == pytest.approx(4.5, rel=0.1)


def test_a_crystal_smaller_than_the_beam_sees_nearly_its_peak() -> None:
    beam = (50.0, 50.0)
    assert crystal_fluence_fraction(beam, None) == 1.0
    assert crystal_fluence_fraction(beam, (5.0, 5.0)) == pytest.approx(1.0, abs=0.01)
    # A crystal as large as the beam FWHM: the Gaussian averages 0.81 per direction.
    assert crystal_fluence_fraction(beam, (50.0, 50.0)) == pytest.approx(0.81**2, rel=0.01)
    # Larger crystals are dosed where the beam is: no further dilution.
    assert crystal_fluence_fraction(beam, (500.0, 50.0)) == pytest.approx(0.81**2, rel=0.01)
    smaller = [crystal_fluence_fraction(beam, (s, s)) for s in (1.0, 10.0, 25.0, 50.0)]
    assert all(a > b for a, b in itertools.pairwise(smaller))
    peak = dose_rate_mgy_s(1e12, beam, 12.7)
    assert dose_rate_mgy_s(1e12, beam, 12.7, crystal_size_um=(50.0, 50.0)) < peak


def test_collection_budget_keeps_5_percent_for_characterisation() -> None:
    assert DOSE_LIMIT_MGY == 20.0 and CHARACTERISATION_SHARE == 0.05
    assert collection_budget_mgy() == pytest.approx(19.0)
    assert collection_budget_mgy(0.8) == pytest.approx(19.0)  # within the kept share
    assert collection_budget_mgy(3.0) == pytest.approx(17.0)
    assert collection_budget_mgy(25.0) == 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dose_gy(1e12, 1.0, (20.0, 20.0), 40.0), "outside the dose model's 5-30 keV"),
        (lambda: dose_gy(-1.0, 1.0, (20.0, 20.0), 12.7), "flux and exposure must be >= 0"),
        (lambda: dose_gy(1e12, float("nan"), (20.0, 20.0), 12.7), "flux and exposure"),
        (lambda: dose_gy(1e12, 1.0, (0.0, 20.0), 12.7), r"beam size must be > 0 um"),
        (lambda: crystal_fluence_fraction((20.0, 20.0), (0.0, 5.0)), "crystal size must be > 0"),
        (lambda: collection_budget_mgy(-1.0), "dose already absorbed must be >= 0"),
        (lambda: collection_budget_mgy(0.0, limit_mgy=0.0), "dose limit > 0"),
    ],
)
def test_bad_inputs_are_refused_with_the_value(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
