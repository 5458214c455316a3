"""How fast the simulated detector renders and writes frames on this machine.

Renders a rotation series of a 50 um crystal centred in a 20 um beam (0.01 s per 0.1 deg,
full flux) and prints frames/s for rendering alone, for rendering + NXmx HDF5
(bitshuffle/LZ4) and for rendering + CBF, through the same SimDetector a workflow uses.
The first frame of each series builds the per-geometry maps and the reflection table; it
is reported apart ("setup") and left out of the rates.

    python bench/sim_frames.py --frames 100 [--model eiger2_4m|small]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bes.hal import ArmRequest, FileFormat, Location
from simulators.clock import SimClock
from simulators.detector import SimDetector
from simulators.geometry import centred_pose
from simulators.triggers import Trigger, TriggerLine
from simulators.world import Crystal, Loop, Pin, SampleWorld

PIN = Location(1, 1)
CRYSTAL_AT_MM = (0.05, 0.02, 0.0)
EXPOSURE_S = 0.01
STEP_DEG = 0.1


def bench_world() -> SampleWorld:
    crystal = Crystal(position_mm=CRYSTAL_AT_MM, size_um=(50.0, 50.0, 50.0))
    loop = Loop(centre_mm=CRYSTAL_AT_MM, size_um=(300.0, 250.0))
    world = SampleWorld(
        pins={PIN: Pin(location=PIN, loop=loop, crystals=[crystal], name="bench")},
        seed=1,
        mounted=PIN,
    )
    world.pose.update(centred_pose(CRYSTAL_AT_MM))
    world.beam.shutter_open = True
    return world


def poses(world: SampleWorld, index: int) -> tuple[dict[str, float], dict[str, float]]:
    start = {**world.pose, "omega": index * STEP_DEG}
    return start, {**start, "omega": (index + 1) * STEP_DEG}


def time_render(model: str, frames: int) -> tuple[float, float, int]:
    """Setup seconds, frames/s and spots on the last frame, rendering only."""
    world = bench_world()
    detector = SimDetector(model=model, world=world)

    def one(i: int) -> int:
        return len(detector.render(*poses(world, i), exposure_s=EXPOSURE_S).spot_photons)

    t0 = time.perf_counter()
    one(0)
    setup = time.perf_counter() - t0
    t1 = time.perf_counter()
    spots = 0
    for i in range(1, frames + 1):
        spots = one(i)
    return setup, frames / (time.perf_counter() - t1), spots


def time_series(
    model: str, frames: int, file_format: FileFormat, directory: Path
) -> tuple[float, float, int]:
    """Setup seconds, frames/s, bytes per frame: render + write through SimDetector."""
    world = bench_world()
    line = TriggerLine()
    clock = SimClock("instant")
    detector = SimDetector(model=model, clock=clock, world=world, triggers=line)
    detector.arm(
        ArmRequest(
            n_frames=frames + 1,
            exposure_s=EXPOSURE_S,
            directory=directory,
            prefix=f"bench_{file_format}",
            file_format=file_format,
            omega_increment_deg=STEP_DEG,
        )
    )
    t0 = time.perf_counter()
    line.fire(Trigger(0, *poses(world, 0), EXPOSURE_S, clock.now()))
    setup = time.perf_counter() - t0
    t1 = time.perf_counter()
    for i in range(1, frames + 1):
        line.fire(Trigger(i, *poses(world, i), EXPOSURE_S, clock.now()))
    result = detector.wait()
    rate = frames / (time.perf_counter() - t1)
    size = sum(p.stat().st_size for p in result.paths)
    return setup, rate, size // (frames + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames per series (default 100)")
    parser.add_argument("--model", default="eiger2_4m", help="detector model (default eiger2_4m)")
    args = parser.parse_args()
    shape = SimDetector(model=args.model).geometry.shape
    print(
        f"simulated {args.model} ({shape[0]}x{shape[1]}), {args.frames} frames of "
        f"{EXPOSURE_S} s / {STEP_DEG} deg, 50 um crystal in a 20 um beam"
    )
    print(f"{'what':<22}{'setup s':>9}{'frames/s':>10}{'MB/frame':>10}")
    setup, rate, spots = time_render(args.model, args.frames)
    print(f"{'render only':<22}{setup:>9.2f}{rate:>10.1f}{'-':>10}   ({spots} spots/frame)")
    with tempfile.TemporaryDirectory(prefix="mxbes-bench-") as tmp:
        for file_format, label in (
            (FileFormat.HDF5, "render + HDF5 (bslz4)"),
            (FileFormat.CBF, "render + CBF"),
        ):
            setup, rate, size = time_series(args.model, args.frames, file_format, Path(tmp))
            print(f"{label:<22}{setup:>9.2f}{rate:>10.1f}{size / 1e6:>10.2f}")


if __name__ == "__main__":
    main()
