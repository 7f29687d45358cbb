"""Memory-mapped arrays: scratch files, chunks of series, and handing pages back to the OS.

A mapped file's pages count towards the resident set once touched, although the kernel may drop
them again; the loops over a large panel therefore work a block of series at a time and release
the pages of each block when it is done, so the peak stays near one block.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BLOCK_BYTES = 8 * 2**20  # per block of series: its float64 and index temporaries stay near 50 MB


def scratch(folder: str | Path, shape: tuple[int, ...], dtype=np.float32) -> np.memmap:
    """A writable array mapped from an unnamed file in `folder` (removed from the folder at once;
    the mapping keeps it alive until the process lets go of it)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".scratch-", delete=False) as handle:
        name = handle.name
    try:
        return np.memmap(name, dtype=dtype, mode="w+", shape=shape)
    finally:
        os.unlink(name)


def series_blocks(values: np.ndarray, *written: np.ndarray,
                  block_bytes: int | None = None) -> Iterator[slice]:
    """Slices of the series axis of values (N, T, ...) holding about `block_bytes` each
    (default BLOCK_BYTES). After each block the pages of values and of the `written` arrays are
    released (when they are mapped)."""
    n = values.shape[0]
    per_series = max(1, values[:1].nbytes)
    step = max(1, (block_bytes or BLOCK_BYTES) // per_series)
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))
        release(values, *written)


def release(*arrays: np.ndarray) -> None:
    """Drop the resident pages of memory-mapped arrays (a no-op for arrays in memory). Written
    pages stay in the file: a shared mapping's changes live in the page cache, not in the
    process."""
    for array in arrays:
        mapping = getattr(array, "_mmap", None)
        if isinstance(mapping, mmap.mmap) and hasattr(mapping, "madvise"):
            mapping.madvise(mmap.MADV_DONTNEED)


def is_mapped(array: np.ndarray) -> bool:
    return isinstance(getattr(array, "_mmap", None), mmap.mmap)
