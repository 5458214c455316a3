"""Characterisation: reference wedges at two omegas -> resolution, mosaicity, spots, ice ->
a strategy within the dose budget; poor diffraction stops the workflow with its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bes.acquisition.rotation import Rotation, run_rotation
from bes.analysis.characterisation import Characterisation, ReferenceWedge, characterise
from bes.analysis.dose import CHARACTERISATION_SHARE, DOSE_LIMIT_MGY
from bes.analysis.strategy import (
    BeamState,
    DetectorLimits,
    Strategy,
    distance_for_resolution,
    plan_strategy,
)
from bes.hal import Beamline
from bes.hal.detector import FileFormat
from bes.tasks.lims_records import ScreeningRecord, StrategyRecord
from bes.tasks.mx_state import MxTask, SampleRun, frame_dose_mgy

DEFAULT_MOSAICITY_DEG = 0.3
"""Used for the strategy when the reference frames cannot measure the mosaicity."""
EDGE_MARGIN = 0.8
"""Place the detector edge at this fraction of the mesh's resolution estimate (the longer
reference exposures see further than a 4 ms mesh frame)."""


class Characterise(MxTask, output_names=["verdict", "collect", "characterisation", "strategy"]):
    """``verdict``: ``collect``, ``poor`` (resolution worse than ``min_resolution_a``, or no
    dose left) or ``no_diffraction``; ``collect``: whether to go on to data collection."""

    def run(self) -> None:
        run = self.sample_run
        p = run.parameters
        beamline = self.beamline
        omega0 = float(beamline.goniometer.read("omega"))
        _place_detector(beamline, run)
        size = _crystal_size(run)
        transmission = p.char_transmission or _reference_transmission(beamline, run, size)
        beamline.beam.set_transmission(transmission)
        wedges: list[ReferenceWedge] = []
        scans = []
        for offset in p.char_omegas_deg:
            self.check_abort()
            rotation = Rotation(
                omega_start_deg=omega0 + float(offset),
                oscillation_deg=p.char_oscillation_deg,
                n_frames=p.char_frames_per_wedge,
                exposure_s=p.char_exposure_s,
            )
            target = run.reserve("ref")
            scan = run_rotation(
                beamline,
                rotation,
                target=target,
                file_format=FileFormat(p.file_format),
                analyse=True,
                keep_spots=True,
                software=run.software,
                software_label="characterisation analysis",
            )
            scans.append((rotation, target, scan))
            run.files.extend(str(path) for path in scan.result.paths)
            wedges.append(
                ReferenceWedge(rotation.omega_start_deg, rotation.oscillation_deg, scan.frames)
            )
        full = frame_dose_mgy(beamline.beam, p.char_exposure_s, size, beamline.beam.full_flux_ph_s)
        used = full * transmission * sum(len(w.frames) for w in wedges)
        run.dose_used_mgy += used
        geometry = scans[0][2].geometry
        assert geometry is not None
        with run.software.waiting("characterisation"):
            result = characterise(wedges, geometry)
            strategy = _strategy(beamline, run, result, size, omega0)
        run.characterisation = _describe(result)
        run.strategy = _strategy_dict(strategy) if strategy else None
        verdict, reason = _verdict(result, strategy, p.min_resolution_a)
        self.decide(verdict, reason)
        if verdict == "poor":
            self.conclude("poor_diffraction", reason, success=False)
        elif verdict == "no_diffraction":
            self.conclude("no_diffraction", reason, success=False)
        if result.resolution_a is not None:
            self.report("resolution_a", round(result.resolution_a, 2), "A")
        if result.mosaicity_deg is not None:
            self.report("mosaicity_deg", round(result.mosaicity_deg, 3), "deg")
        self.report("spots_per_frame", round(result.n_spots_per_frame, 1))
        self.report("dose_mgy", round(run.dose_used_mgy, 3), "MGy")
        if p.space_group:
            self.report("space_group", p.space_group)
        self._record(run, scans, result, strategy, transmission, verdict, reason)
        self.outputs.verdict = verdict
        self.outputs.collect = verdict == "collect"
        self.outputs.characterisation = run.characterisation
        self.outputs.strategy = run.strategy

    def _record(
        self,
        run: SampleRun,
        scans: list[Any],
        result: Characterisation,
        strategy: Strategy | None,
        transmission: float,
        verdict: str,
        reason: str,
    ) -> None:
        lims = run.lims
        beamline = self.beamline
        group = lims.start_group("Characterization", start=scans[0][2].start)
        first = None
        for rotation, target, scan in scans:
            collection = lims.add_collection(
                group,
                self.scan_record(
                    scan,
                    target,
                    omega_start_deg=rotation.omega_start_deg,
                    oscillation_deg=rotation.oscillation_deg,
                    exposure_s=rotation.exposure_s,
                    transmission=transmission,
                    resolution_a=result.resolution_a,
                    comments="characterisation reference images",
                ),
            )
            lims.add_position(collection, beamline.goniometer.positions())
            lims.end_collection(collection, end=scan.end, run_status="Data collection successful")
            first = first or collection
        lims.add_screening(
            first,
            ScreeningRecord(
                program="mxbes characterisation",
                resolution_a=result.resolution_a,
                mosaicity_deg=result.mosaicity_deg,
                n_spots=int(sum(result.spots_per_frame)),
                indexing_success=False,
                strategy_success=strategy is not None and strategy.collectable,
                space_group=run.parameters.space_group,
                comments=reason,
                strategy=_strategy_record(strategy) if strategy else None,
            ),
        )
        lims.end_group(group, end=datetime.now(UTC), comments=reason)
        lims.add_step(
            "Characterisation",
            "Success" if verdict == "collect" else "Failure",
            comments=reason,
        )


def _place_detector(beamline: Beamline, run: SampleRun) -> None:
    """Detector where the mesh's resolution estimate falls near its edge (so the reference
    frames can measure the limit); unchanged without an estimate."""
    estimate = run.mesh_resolution_a
    if estimate is None:
        return
    detector = beamline.detector
    distance = round(
        distance_for_resolution(
            EDGE_MARGIN * estimate, beamline.beam.wavelength_a, detector_limits(beamline)
        ),
        1,
    )
    if abs(distance - detector.geometry.distance_mm) > 1.0:
        detector.move_distance(distance)


def detector_limits(beamline: Beamline) -> DetectorLimits:
    """What the strategy needs of the detector: frame rate, nearest edge, distance range."""
    detector = beamline.detector
    g = detector.geometry
    x, y = g.beam_centre_px
    rows, cols = g.shape
    low, high = detector.distance_limits_mm
    return DetectorLimits(
        max_frame_rate_hz=detector.max_frame_rate_hz,
        edge_radius_mm=min(x, y, cols - x, rows - y) * g.pixel_size_mm,
        min_distance_mm=low,
        max_distance_mm=high,
    )


def _crystal_size(run: SampleRun) -> tuple[float, float] | None:
    if run.crystal and run.crystal.get("size_um"):
        size = run.crystal["size_um"]
        return float(size[0]), float(size[1])
    return None


def _reference_transmission(
    beamline: Beamline, run: SampleRun, size: tuple[float, float] | None
) -> float:
    """As much transmission as the characterisation share of the dose cap allows after the
    meshes (at least 1 %)."""
    p = run.parameters
    n = len(p.char_omegas_deg) * p.char_frames_per_wedge
    beam = beamline.beam
    full = frame_dose_mgy(beam, p.char_exposure_s, size, beam.full_flux_ph_s) * n
    left = DOSE_LIMIT_MGY * CHARACTERISATION_SHARE - run.dose_used_mgy
    if full <= 0:
        return 1.0
    return float(min(1.0, max(0.01, left / full)))


def _strategy(
    beamline: Beamline,
    run: SampleRun,
    result: Characterisation,
    size: tuple[float, float] | None,
    omega0: float,
) -> Strategy | None:
    if result.resolution_a is None:
        return None
    beam = beamline.beam
    return plan_strategy(
        resolution_a=result.resolution_a,
        mosaicity_deg=result.mosaicity_deg or DEFAULT_MOSAICITY_DEG,
        beam=BeamState(beam.full_flux_ph_s, beam.beam_size_um, beam.energy_kev),
        detector=detector_limits(beamline),
        space_group=run.parameters.space_group,
        used_dose_mgy=run.dose_used_mgy,
        omega_start_deg=omega0,
        crystal_size_um=size,
    )


def _verdict(
    result: Characterisation, strategy: Strategy | None, min_resolution_a: float
) -> tuple[str, str]:
    if not result.diffracts or result.resolution_a is None:
        return "no_diffraction", (
            f"no diffraction in the reference images ({result.n_spots_per_frame:.0f} spots "
            "per frame)"
        )
    if result.resolution_a > min_resolution_a:
        return "poor", (
            f"poor diffraction: {result.resolution_a:.1f} A is worse than the "
            f"{min_resolution_a:g} A threshold"
        )
    if strategy is None or not strategy.collectable:
        return "poor", "no dose left for a data collection"
    return "collect", (
        f"{result.resolution_a:.2f} A, mosaicity "
        + (f"{result.mosaicity_deg:.2f} deg" if result.mosaicity_deg else "unknown")
        + f"; {strategy.n_frames} x {strategy.oscillation_deg:g} deg, "
        f"{strategy.dose_mgy:.1f} MGy"
    )


def _describe(result: Characterisation) -> dict[str, Any]:
    return {
        "resolution_a": None if result.resolution_a is None else round(result.resolution_a, 2),
        "mosaicity_deg": None if result.mosaicity_deg is None else round(result.mosaicity_deg, 3),
        "spots_per_frame": round(result.n_spots_per_frame, 1),
        "ice_rings_a": list(result.ice_rings_a),
        "flags": list(result.flags),
    }


def _strategy_dict(strategy: Strategy) -> dict[str, Any]:
    return {
        "omega_start_deg": round(strategy.omega_start_deg, 3),
        "total_range_deg": strategy.total_range_deg,
        "oscillation_deg": strategy.oscillation_deg,
        "n_frames": strategy.n_frames,
        "exposure_s": round(strategy.exposure_s, 5),
        "transmission": round(strategy.transmission, 5),
        "detector_distance_mm": round(strategy.detector_distance_mm, 1),
        "resolution_a": round(strategy.resolution_a, 2),
        "dose_mgy": round(strategy.dose_mgy, 3),
        "budget_mgy": round(strategy.budget_mgy, 3),
        "collectable": strategy.collectable,
        "rationale": list(strategy.rationale),
    }


def _strategy_record(strategy: Strategy) -> StrategyRecord:
    return StrategyRecord(
        omega_start_deg=strategy.omega_start_deg,
        total_range_deg=strategy.total_range_deg,
        oscillation_deg=strategy.oscillation_deg,
        n_images=strategy.n_frames,
        exposure_s=strategy.exposure_s,
        transmission=strategy.transmission,
        resolution_a=strategy.resolution_a,
        dose_mgy=strategy.dose_mgy,
    )
