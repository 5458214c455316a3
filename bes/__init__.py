"""mxbes: a Beamline Expert System for macromolecular crystallography."""

__version__ = "0.1.0"
