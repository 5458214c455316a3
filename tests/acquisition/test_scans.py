"""``acquire``: an abort that stops the detector after the motion ended ends the scan at once
(it used to follow the files for frames that never came until the stall timeout)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bes.acquisition.scans import acquire
from bes.hal import ArmRequest, FileFormat, TriggerMode
from bes.hal.errors import ActionInterrupted
from tests.conftest import make_sim_beamline


def test_a_detector_stopped_after_the_motion_ends_the_scan_interrupted(tmp_path: Path) -> None:
    beamline = make_sim_beamline()
    beamline.sample_changer.load(beamline.sample_changer.inventory()[0].location)
    request = ArmRequest(
        n_frames=6,
        exposure_s=0.01,
        directory=tmp_path,
        prefix="short",
        file_format=FileFormat.HDF5,
        trigger_mode=TriggerMode.EXTERNAL,
        omega_start_deg=0.0,
        omega_increment_deg=0.5,
    )
    motion_over = threading.Event()

    def motion() -> None:  # triggers 2 of the 6 frames, then ends without a fault
        beamline.goniometer.rotate(0.0, 1.0, 50.0, n_triggers=2)
        motion_over.set()

    def abort() -> None:  # as the engine does on an abort: stop the beamline
        motion_over.wait(30)
        beamline.stop()

    stopper = threading.Thread(target=abort)
    stopper.start()
    errors: list[BaseException] = []

    def scan() -> None:
        try:
            acquire(beamline, request, motion)
        except BaseException as exc:
            errors.append(exc)

    scanner = threading.Thread(target=scan, daemon=True)
    scanner.start()
    scanner.join(20)  # a bound for a hang (the stall timeout is 60 s)
    stopper.join(10)
    assert not scanner.is_alive(), "the scan kept following frames that never came"
    assert len(errors) == 1 and isinstance(errors[0], ActionInterrupted)
    assert "stopped after 2 of 6 frames" in str(errors[0])
    with pytest.raises(ActionInterrupted):
        raise errors[0]
