"""X-ray centring: crystals from two orthogonal meshes (or a mesh and a line), and moving to
them one after the other."""

from __future__ import annotations

from typing import Any

from bes.analysis.xray_centring import (
    CentringResult,
    CrystalRegion,
    centre_2d_and_line,
    centre_3d,
)
from bes.tasks.mx_state import MxTask, SampleRun


class CentreCrystal(
    MxTask, optional_input_names=["mode"], output_names=["found", "n_crystals", "crystals"]
):
    """3D centring from the ``first`` and ``second`` meshes (``mode`` ``3d``, default) or from
    the ``first`` mesh and the ``line`` (``mode`` ``line``): labelled regions, ranked."""

    def run(self) -> None:
        run = self.sample_run
        p = run.parameters
        mode = str(self.get_input_value("mode", "3d"))
        if mode not in ("3d", "line"):
            raise ValueError(f"unknown centring mode {mode!r}; known: 3d, line")
        first = run.meshes.get("first")
        other = run.meshes.get("second" if mode == "3d" else "line")
        if first is None or other is None:
            raise RuntimeError(f"centring ({mode}) needs both meshes; scan them first")
        centre = centre_3d if mode == "3d" else centre_2d_and_line
        with run.software.waiting("centring"):
            result = centre(
                first.map.filled(),
                first.geometry,
                other.map.filled(),
                other.geometry,
                threshold=p.centring_threshold,
                min_peak=p.min_score,
            )
        run.centring = result
        run.crystal_index = 0
        crystals = [_describe(region) for region in result.regions]
        group = run.mesh_groups.get("second" if mode == "3d" else "line")
        run.lims.add_xray_centring(
            group,
            status="success" if result.found else "failed",
            kind="3d" if mode == "3d" else "2d",
            regions=[_lims_region(r) for r in result.regions],
        )
        self.outputs.found = result.found
        self.outputs.n_crystals = len(result.regions)
        self.outputs.crystals = crystals[:10]
        if not result.found:
            reason = "no diffraction: no crystal in the combined mesh maps"
            self.decide("no crystal", reason)
            self.conclude("no_diffraction", reason, success=False)
            run.lims.add_step("XrayCentring", "Failure", comments=reason)
            return
        best = result.regions[0]
        self.decide(
            "crystal found",
            f"{len(result.regions)} region(s); best {_size_text(best)} um, "
            f"max {best.max_count:.1f}",
        )
        _report_crystal(self, best)
        run.lims.add_step(
            "XrayCentring",
            "Success",
            crystal_size_um=best.size_um,
            max_score=max(first.max_score, other.max_score),
            comments=f"{len(result.regions)} crystal(s)",
        )


class MoveToCrystal(MxTask, output_names=["position", "crystal"]):
    """Move the best crystal's centre of mass into the beam."""

    def run(self) -> None:
        run = self.sample_run
        region = _regions(run)[0]
        _move_to(self, run, region)
        self.conclude("centred", f"crystal centred ({_size_text(region)} um)", success=True)
        self.outputs.position = run.crystal["position"] if run.crystal else None
        self.outputs.crystal = run.crystal


class NextCrystal(MxTask, output_names=["more", "crystal"]):
    """mesh_and_collect: move to the next of the best ``n_crystals`` regions; ``more`` false
    once they are all done."""

    def run(self) -> None:
        run = self.sample_run
        regions = _regions(run)
        wanted = min(run.parameters.n_crystals, len(regions))
        if run.crystal_index >= wanted:
            self.outputs.more = False
            self.outputs.crystal = None
            self.decide("done", f"collected {run.crystal_index} of {len(regions)} crystal(s)")
            return
        region = regions[run.crystal_index]
        run.crystal_index += 1
        _move_to(self, run, region)
        self.decide("next crystal", f"crystal {run.crystal_index} of {wanted}")
        self.outputs.more = True
        self.outputs.crystal = run.crystal


def _regions(run: SampleRun) -> tuple[CrystalRegion, ...]:
    result: CentringResult | None = run.centring
    if result is None or not result.found:
        raise RuntimeError("no crystal to move to: X-ray centring found none")
    return result.regions


def _move_to(task: MxTask, run: SampleRun, region: CrystalRegion) -> None:
    task.beamline.goniometer.move_many(region.position)
    run.crystal = _describe(region)
    _report_crystal(task, region)


def _describe(region: CrystalRegion) -> dict[str, Any]:
    return {
        "rank": region.rank,
        "position": {k: round(v, 5) for k, v in region.position.items()},
        "size_um": [round(s, 1) for s in region.size_um],
        "max_count": round(region.max_count, 2),
        "n_voxels": region.n_voxels,
    }


def _report_crystal(task: MxTask, region: CrystalRegion) -> None:
    size = region.size_um
    task.report("crystal_size_um", round(max(size), 1), "um")
    task.report("crystal_volume_um3", round(size[0] * size[1] * size[2], 0), "um3")
    task.report("crystal_position_mm", {k: round(v, 5) for k, v in region.position.items()})


def _size_text(region: CrystalRegion) -> str:
    return " x ".join(f"{s:.0f}" for s in region.size_um)


def _lims_region(region: CrystalRegion) -> dict[str, Any]:
    return {
        "centre_of_mass": region.centre_of_mass,
        "max_voxel": region.max_voxel,
        "n_voxels": region.n_voxels,
        "total_count": region.total_count,
        "bounding_box_min": region.bounding_box_min,
        "bounding_box_max": region.bounding_box_max,
    }
