"""The detector's own Bitshuffle/LZ4 chunks read back through HDF5's bitshuffle filter."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

from bes.frames import bslz4 as reader
from simulators import bslz4


def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    spotty = rng.poisson(1.8, (512, 512)).astype(np.uint32)
    spotty[100:107, 200:207] = 4_000_000  # planes of bytes 1-2
    spotty[0, :5] = 2**32 - 1  # every plane
    return [
        np.zeros((512, 512), np.uint32),
        rng.poisson(0.05, (512, 512)).astype(np.uint32),
        rng.poisson(20.0, (512, 512)).astype(np.uint32),
        spotty,
        rng.poisson(0.3, (37, 51)).astype(np.uint32),  # a short last block, n % 8 != 0
        rng.poisson(2.0, (3, 5)).astype(np.uint32),  # shorter than one group of 8
        rng.poisson(2.0, (217, 2068)).astype(np.uint32),  # EIGER width, several blocks
    ]


def test_chunks_read_back_through_the_bitshuffle_filter(tmp_path: Path) -> None:
    path = tmp_path / "chunks.h5"
    cases = frames()
    with h5py.File(path, "w") as f:
        for i, frame in enumerate(cases):
            data = f.create_dataset(
                f"d{i}",
                shape=(1, *frame.shape),
                dtype=np.uint32,
                chunks=(1, *frame.shape),
                **hdf5plugin.Bitshuffle(cname="lz4"),
            )
            data.id.write_direct_chunk((0, 0, 0), bslz4.compress(frame))
    with h5py.File(path, "r") as f:
        for i, frame in enumerate(cases):
            np.testing.assert_array_equal(f[f"d{i}"][0], frame)
            if reader.available():  # bes's own reader of such chunks
                _, chunk = f[f"d{i}"].id.read_direct_chunk((0, 0, 0))
                decoded = reader.decompress(chunk, np.dtype(np.uint32), frame.shape)
                np.testing.assert_array_equal(decoded, frame)


@pytest.mark.parametrize("mean", [0.05, 1.8, 20.0])
def test_chunks_are_about_as_small_as_the_filters_own(tmp_path: Path, mean: float) -> None:
    frame = np.random.default_rng(1).poisson(mean, (512, 512)).astype(np.uint32)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        data = f.create_dataset(
            "d", data=frame[None], chunks=(1, 512, 512), **hdf5plugin.Bitshuffle(cname="lz4")
        )
        filter_size = len(data.id.read_direct_chunk((0, 0, 0))[1])
    assert bslz4.compress(frame).size <= 1.35 * filter_size
