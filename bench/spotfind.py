"""Spot-finding speed on EIGER2 X 4M frames (2162 x 2068) from the simulated detector.

Prints frames/s for our spot finder (bes.analysis.spotfinder: numba kernels that release
the GIL, one frame per thread) and for a plain reference in the same run (scipy: local
mean and sigma filters + ndimage.label, the textbook method), with frames already in
memory and, separately, including reading them from the NXmx HDF5 files. Target: >= 100
frames/s in memory on a 2-core machine.

    python bench/spotfind.py [--frames 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import ndimage
from sim_frames import EXPOSURE_S, bench_world, poses

from bes.analysis.spotfinder import SpotFinder
from bes.frames import NxmxSeries
from bes.hal import ArmRequest, FileFormat, TriggerMode
from simulators.detector import SimDetector
from simulators.triggers import Trigger, TriggerLine


def write_series(directory: Path, n_frames: int) -> Path:
    """A rotation series of a crystal in the beam, written by the simulated detector."""
    world = bench_world()
    line = TriggerLine()
    detector = SimDetector(model="eiger2_4m", world=world, triggers=line)
    detector.arm(
        ArmRequest(
            n_frames=n_frames,
            exposure_s=EXPOSURE_S,
            directory=directory,
            prefix="bench",
            file_format=FileFormat.HDF5,
            trigger_mode=TriggerMode.EXTERNAL,
        )
    )
    for i in range(n_frames):
        start, end = poses(world, i)
        line.fire(Trigger(i, start, end, EXPOSURE_S, 0.0))
    return detector.wait().paths[0]


def reference_find(image: np.ndarray, mask: np.ndarray, size: int = 15) -> int:
    """Textbook spot finding: local mean/sigma filters, mean + 3 sigma, >= 3 connected px."""
    data = image.astype(np.float32)
    mean = ndimage.uniform_filter(data, size)
    mean_sq = ndimage.uniform_filter(data * data, size)
    sigma = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    strong = (data > mean + 3.0 * sigma) & (data >= 2) & mask
    labels, _ = ndimage.label(strong, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= 3).sum())


def rate(work, items, threads: int) -> tuple[float, list]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(work, items))
    else:
        results = [work(item) for item in items]
    return len(items) / (time.perf_counter() - start), results


def read_while_finding(master: Path, finder: SpotFinder, threads: int) -> float:
    """Frames/s reading the series from its files (one reader, as the scan writes them) while
    ``threads`` workers find spots: the pipeline a mesh task runs."""
    start = time.perf_counter()
    reader = NxmxSeries(master)
    with ThreadPoolExecutor(threads) as pool:
        pending = [pool.submit(finder.find, frame.image) for frame in reader.frames()]
        for future in pending:
            future.result()
    return reader.n_frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        master = write_series(Path(tmp), args.frames)
        series = NxmxSeries(master)
        frames = [f.image for f in series.frames(stall_timeout_s=5.0)]
        finder = SpotFinder(series.geometry, mask=series.mask, saturation=series.saturation)
        finder.find(frames[0])  # compile (cached on disk after the first run)

        ours_mem, found = rate(finder.find, frames, args.threads)
        ours_1, _ = rate(finder.find, frames, 1)
        ref_n = max(4, args.frames // 6)
        ref_mem, ref_found = rate(lambda f: reference_find(f, series.mask), frames[:ref_n], 1)

        ours_file = read_while_finding(master, finder, args.threads)
        ref_file, _ = rate(
            lambda i: reference_find(series.read(i).image, series.mask), list(range(ref_n)), 1
        )
        series.close()
    spots = np.mean([r.spot_total for r in found])
    print(
        f"EIGER2 X 4M frames {series.geometry.shape[0]}x{series.geometry.shape[1]}, "
        f"{args.frames} frames, {os.cpu_count()} cores; mean spots/frame: ours {spots:.0f}, "
        f"reference {np.mean(ref_found):.0f}"
    )
    print(f"{'':32s}{'ours':>10s}{'reference':>12s}{'ratio':>8s}")
    print(
        f"{'in memory, 1 thread (per core)':32s}{ours_1:10.1f}{ref_mem:12.1f}"
        f"{ours_1 / ref_mem:8.1f}"
    )
    print(
        f"{'in memory, ' + str(args.threads) + ' threads':32s}{ours_mem:10.1f}{'':12s}"
        f"{ours_mem / ref_mem:8.1f}"
    )
    print(
        f"{'from HDF5, ' + str(args.threads) + ' threads':32s}{ours_file:10.1f}"
        f"{ref_file:12.1f}{ours_file / ref_file:8.1f}"
    )
    print(
        "frames/s; the reference runs on one thread (scipy filters hold the GIL part of the "
        "time); ratio = ours / reference"
    )


if __name__ == "__main__":
    main()
