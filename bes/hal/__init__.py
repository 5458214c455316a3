"""Hardware abstraction layer: small device protocols and the Beamline container.

Tasks talk to hardware only through these protocols; implementations (the
simulator, or a real beamline's control system) are named in a config file.
"""

from bes.hal.beam import HC_KEV_A, Beam, Camera, Shutter
from bes.hal.beamline import DEVICE_ROLES, Beamline, BeamlineConfigError
from bes.hal.clock import ActionListener, Clock, DeviceAction
from bes.hal.detector import (
    AcquisitionResult,
    ArmRequest,
    Detector,
    DetectorGeometry,
    FileFormat,
    TriggerMode,
)
from bes.hal.errors import (
    ActionInterrupted,
    BeamLossError,
    DetectorError,
    DeviceError,
    DiskFullError,
    LoadError,
    MotorLimitError,
    MotorTimeout,
    PinMissingError,
    SampleChangerFault,
)
from bes.hal.goniometer import MOTOR_NAMES, Goniometer, RasterLine
from bes.hal.sample_changer import Location, PinInfo, SampleChanger, SampleChangerState

__all__ = [
    "DEVICE_ROLES",
    "HC_KEV_A",
    "MOTOR_NAMES",
    "AcquisitionResult",
    "ActionInterrupted",
    "ActionListener",
    "ArmRequest",
    "Beam",
    "BeamLossError",
    "Beamline",
    "BeamlineConfigError",
    "Camera",
    "Clock",
    "Detector",
    "DetectorError",
    "DetectorGeometry",
    "DeviceAction",
    "DeviceError",
    "DiskFullError",
    "FileFormat",
    "Goniometer",
    "LoadError",
    "Location",
    "MotorLimitError",
    "MotorTimeout",
    "PinInfo",
    "PinMissingError",
    "RasterLine",
    "SampleChanger",
    "SampleChangerFault",
    "SampleChangerState",
    "Shutter",
    "TriggerMode",
]
