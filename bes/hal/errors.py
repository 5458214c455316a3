"""Typed device errors: each fault a device raises, naming the device and, where known, the pin."""

from __future__ import annotations


class DeviceError(Exception):
    """A device could not do what it was asked.

    ``device`` names the device (e.g. ``sample_changer``), ``pin`` the sample
    location ``puck:pin`` concerned, when there is one.
    """

    def __init__(self, device: str, message: str, pin: str | None = None) -> None:
        self.device = device
        self.pin = pin
        self.reason = message
        where = f" (pin {pin})" if pin else ""
        super().__init__(f"{device}{where}: {message}")


class PinMissingError(DeviceError):
    """The sample changer found no pin at the requested location."""


class LoadError(DeviceError):
    """Loading (or unloading) a pin failed; the pin may still be in the gripper."""


class SampleChangerFault(DeviceError):
    """The sample changer is in FAULT and needs a reset before it moves again."""


class MotorTimeout(DeviceError):
    """A motor did not reach its target in time."""


class MotorLimitError(DeviceError):
    """A requested position lies outside a motor's limits."""


class DetectorError(DeviceError):
    """The detector stopped or failed during an acquisition."""


class BeamLossError(DeviceError):
    """No beam (flux is zero) while an exposure needed it."""


class DiskFullError(DeviceError):
    """The data directory has no room for the frames being written."""


class ActionInterrupted(DeviceError):
    """A move or exposure was stopped before its end (abort, stop)."""
