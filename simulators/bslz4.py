"""Bitshuffle/LZ4 chunks, made by the simulated detector itself, with the GIL released.

The HDF5 filter of a dataset made with ``hdf5plugin.Bitshuffle(cname="lz4")`` (filter id
32008, what EIGER detectors write) stores each chunk as: the uncompressed size (uint64,
big-endian), the block size in bytes (uint32, big-endian), then for every block of
``BLOCK_ELEMENTS`` elements (the last one shorter, a multiple of 8; the final n % 8
elements copied as they are) its compressed size (uint32, big-endian) and an LZ4 block of
its bit-shuffled bytes: bit plane j of the block (bit j of every element, eight elements per
byte, the first in the lowest bit) after plane j - 1.

:func:`compress` writes that format with a compiled encoder made for detector frames
(numba, GIL released): it transposes only the bytes of the elements that hold set bits (8 x
8 bit-matrix transposes) and codes runs of zero bytes as LZ4 matches and everything else as
literals, which is what LZ4 achieves on such data anyway (the planes that are not empty are
noise). It costs about half of hdf5plugin's bitshuffle + LZ4 on a 512 x 512 frame. Any LZ4
decoder, hence any reader with the bitshuffle filter, reads the chunks (the tests read
them back through h5py); the writer hands them to HDF5 with ``write_direct_chunk`` on its
own thread while the next frame is rendered.
"""

from __future__ import annotations

import numba
import numpy as np

BLOCK_ELEMENTS = 2048
"""Elements per bitshuffle block: bitshuffle's default for 4-byte elements (8 kB)."""
_ROW = BLOCK_ELEMENTS // 8
"""Bytes per bit plane of a full block."""
_MIN_RUN_WORDS = 2
"""Zero runs shorter than this many 8-byte words stay literals."""
_LAST_LITERALS = 5
_MATCH_LIMIT = 12
"""LZ4 block rules: the last 5 bytes are literals, and the last match starts 12 bytes or
more before the end."""


def compress(frame: np.ndarray) -> np.ndarray:
    """The Bitshuffle/LZ4 HDF5 chunk (uint8 array) of a uint32 frame (whole buffer, C order)."""
    data = np.ascontiguousarray(frame, dtype=np.uint32).reshape(-1)
    out = np.empty(bound(data.size), dtype=np.uint8)
    n = _compress(data, out)
    return out[:n]


def bound(n_elements: int) -> int:
    """Largest chunk :func:`compress` can make for ``n_elements`` uint32 elements."""
    n_blocks = n_elements // BLOCK_ELEMENTS + 1
    n_bytes = 4 * n_elements
    return 12 + n_bytes + n_blocks * (4 + 16) + n_bytes // 255 + 64


@numba.njit(cache=True, inline="always")
def _put_be(out: np.ndarray, pos: int, value: int, n: int) -> None:
    for i in range(n):
        out[pos + i] = (value >> (8 * (n - 1 - i))) & 0xFF


@numba.njit(cache=True, inline="always")
def _put_length(out: np.ndarray, pos: int, length: int) -> int:
    """LZ4's extra length bytes (after a nibble of 15): 255s, then the rest."""
    length -= 15
    while length >= 255:
        out[pos] = 255
        pos += 1
        length -= 255
    out[pos] = length
    return pos + 1


@numba.njit(cache=True)
def _sequence(
    out: np.ndarray,
    pos: int,
    plane: np.ndarray,
    literal_start: int,
    literal_end: int,
    match_length: int,
) -> int:
    """One LZ4 sequence: literals plane[literal_start:literal_end], then (match_length > 0)
    a match of that length at offset 1 (repeats the last literal). Returns the new end."""
    n_literals = literal_end - literal_start
    token_pos = pos
    pos += 1
    token = 15 << 4 if n_literals >= 15 else n_literals << 4
    if n_literals >= 15:
        pos = _put_length(out, pos, n_literals)
    out[pos : pos + n_literals] = plane[literal_start:literal_end]
    pos += n_literals
    if match_length > 0:
        out[pos] = 1  # offset 1, little-endian
        out[pos + 1] = 0
        pos += 2
        extra = match_length - 4
        if extra >= 15:
            token |= 15
            pos = _put_length(out, pos, extra)
        else:
            token |= extra
    out[token_pos] = token
    return pos


@numba.njit(cache=True)
def _lz4_block(plane: np.ndarray, n: int, out: np.ndarray, pos: int) -> int:
    """LZ4 block of plane[:n] (n a multiple of 8): zero runs of _MIN_RUN_WORDS 8-byte words
    or more become matches, the rest literals. Returns the new end of ``out``."""
    words = plane[:n].view(np.uint64)
    n_words = n // 8
    anchor = 0
    w = 0
    while w < n_words:
        if words[w] != 0:
            w += 1
            continue
        run_end = w
        while run_end < n_words and words[run_end] == 0:
            run_end += 1
        if run_end - w >= _MIN_RUN_WORDS:
            start = 8 * w  # the run's first zero is a literal, the rest a match
            stop = min(8 * run_end, n - _LAST_LITERALS)
            if start + 1 <= n - _MATCH_LIMIT and stop - (start + 1) >= 4:
                pos = _sequence(out, pos, plane, anchor, start + 1, stop - (start + 1))
                anchor = stop
        w = run_end
    return _sequence(out, pos, plane, anchor, n, 0)


@numba.njit(cache=True, inline="always")
def _transpose(x: np.uint64) -> np.uint64:
    """Transpose of an 8 x 8 bit matrix held in a word (row k = byte k, column = bit)."""
    t = (x ^ (x >> np.uint64(7))) & np.uint64(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << np.uint64(7))
    t = (x ^ (x >> np.uint64(14))) & np.uint64(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << np.uint64(14))
    t = (x ^ (x >> np.uint64(28))) & np.uint64(0x00000000F0F0F0F0)
    return x ^ t ^ (t << np.uint64(28))


@numba.njit(cache=True, inline="always")
def _planes(data: np.ndarray, start: int, row: int, b: int, plane: np.ndarray) -> None:
    """Bit planes 8b..8b+7 of the ``8 row`` elements from ``start``: byte b of eight
    elements at a time, transposed, goes to byte g of each of the eight planes."""
    shift = np.uint32(8 * b)
    first = 8 * b * row
    for g in range(row):
        base = start + 8 * g
        x = np.uint64(0)
        for k in range(8):
            x |= np.uint64((data[base + k] >> shift) & np.uint32(0xFF)) << np.uint64(8 * k)
        x = _transpose(x)
        for j in range(8):
            plane[first + j * row + g] = np.uint8((x >> np.uint64(8 * j)) & np.uint64(0xFF))


@numba.njit(cache=True)
def _partial_block(
    data: np.ndarray, start: int, size: int, plane: np.ndarray, out: np.ndarray, pos: int
) -> int:
    """Compress the last block when it is shorter than BLOCK_ELEMENTS."""
    row = size // 8
    top = np.uint32(0)
    for i in range(start, start + size):
        top |= data[i]
    n_bytes = 0
    while n_bytes < 4 and (top >> np.uint32(8 * n_bytes)) != 0:
        n_bytes += 1
    plane[8 * n_bytes * row : 32 * row] = 0
    for b in range(n_bytes):
        _planes(data, start, row, b, plane)
    pos = _lz4_block(plane, 4 * size, out, pos + 4)
    return pos


@numba.njit(cache=True, nogil=True)
def _compress(data: np.ndarray, out: np.ndarray) -> int:
    n = data.size
    _put_be(out, 0, 4 * n, 8)
    _put_be(out, 8, 4 * BLOCK_ELEMENTS, 4)
    pos = 12
    plane = np.empty(4 * BLOCK_ELEMENTS, dtype=np.uint8)
    shuffled = n - n % 8
    full_blocks = shuffled // BLOCK_ELEMENTS
    for block in range(full_blocks):
        start = block * BLOCK_ELEMENTS
        top = np.uint32(0)
        for i in range(start, start + BLOCK_ELEMENTS):
            top |= data[i]
        n_bytes = 0  # bytes of the elements that hold a set bit
        while n_bytes < 4 and (top >> np.uint32(8 * n_bytes)) != 0:
            n_bytes += 1
        plane[8 * n_bytes * _ROW :] = 0
        # written out byte by byte: row length and shifts are constants the compiler uses
        if n_bytes > 0:
            _planes(data, start, _ROW, 0, plane)
        if n_bytes > 1:
            _planes(data, start, _ROW, 1, plane)
        if n_bytes > 2:
            _planes(data, start, _ROW, 2, plane)
        if n_bytes > 3:
            _planes(data, start, _ROW, 3, plane)
        size_pos = pos
        pos = _lz4_block(plane, 4 * BLOCK_ELEMENTS, out, pos + 4)
        _put_be(out, size_pos, pos - size_pos - 4, 4)
    start = full_blocks * BLOCK_ELEMENTS
    if start < shuffled:
        size_pos = pos
        pos = _partial_block(data, start, shuffled - start, plane, out, pos)
        _put_be(out, size_pos, pos - size_pos - 4, 4)
    for i in range(shuffled, n):  # the last n % 8 elements, as they are
        v = data[i]
        for j in range(4):
            out[pos + j] = (v >> np.uint32(8 * j)) & np.uint32(0xFF)
        pos += 4
    return pos
