"""Bitshuffle/LZ4 chunks (EIGER/NXmx data) decompressed outside HDF5, with the GIL released.

A chunk written by the bitshuffle HDF5 filter (``hdf5plugin.Bitshuffle(cname="lz4")``, filter
id 32008, what EIGER detectors and the simulator write) is: the uncompressed size (uint64,
big-endian), the block size in bytes (uint32, big-endian), then bitshuffle/LZ4 blocks.
:func:`decompress` unpacks one with the bitshuffle library that hdf5plugin ships, through
ctypes (which releases the GIL while it runs), so that frames are read while other threads
work; h5py's own read holds the GIL for the whole decompression. :func:`available` is False
when the library cannot be found; readers then let HDF5 decompress.
"""

from __future__ import annotations

import ctypes
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np

FILTER_ID = 32008
"""HDF5 filter id of bitshuffle."""
LZ4 = 2
"""Bitshuffle's compression code for LZ4 (its filter's 5th parameter)."""


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    try:
        import hdf5plugin

        lib = ctypes.CDLL(str(Path(hdf5plugin.PLUGIN_PATH) / "libh5bshuf.so"))
        decompress = lib.bshuf_decompress_lz4
    except (ImportError, OSError, AttributeError):
        return None
    decompress.restype = ctypes.c_int64
    decompress.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
        ctypes.c_size_t,
    ]
    return lib


def available() -> bool:
    return _library() is not None


def decompress(chunk: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The array of ``shape`` and ``dtype`` held by one bitshuffle/LZ4 chunk."""
    lib = _library()
    if lib is None:
        raise RuntimeError("the bitshuffle library of hdf5plugin is not available")
    dtype = np.dtype(dtype)
    if len(chunk) < 12:
        raise ValueError(f"bitshuffle chunk of {len(chunk)} bytes has no header")
    n_bytes, block_bytes = struct.unpack(">QI", chunk[:12])
    out = np.empty(shape, dtype=dtype)
    if n_bytes != out.nbytes:
        raise ValueError(f"bitshuffle chunk holds {n_bytes} bytes, expected {out.nbytes}")
    source = np.frombuffer(chunk, dtype=np.uint8)
    used = lib.bshuf_decompress_lz4(
        source.ctypes.data + 12,
        out.ctypes.data,
        out.size,
        dtype.itemsize,
        block_bytes // dtype.itemsize,
    )
    if used < 0 or used + 12 > len(chunk):
        raise ValueError(f"corrupt bitshuffle/LZ4 chunk (error {used})")
    return out
