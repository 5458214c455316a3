"""Embedded defaults: the simulated beamline's config file."""

from __future__ import annotations

from pathlib import Path

SIMULATED_BEAMLINE = Path(__file__).with_name("simulated.toml")
"""The beamline config used when none is given: every device simulated."""
