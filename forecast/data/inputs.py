"""The network's input array (N, T, F_in), kept as its parts and joined window by window.

Columns, in order: the scaled, causally filled features (N, T, F); the calendar (T, C), the same
for every series; with data.mask_features the observed mask (N, T, F), read from the NaNs of the
panel's values. Only the features take memory per (series, step): copying the calendar into
every series and storing the mask would add C/F and 1x of the raw panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


def window_steps(index: np.ndarray, offset: int, length: int) -> np.ndarray:
    """Time steps [start+offset, start+offset+length) of each window (series, start) of index
    (K, 2): (K, length). offset=0 is the lookback, offset=lookback the horizon."""
    return np.asarray(index)[:, 1:2] + offset + np.arange(length)


def _torch_viewable(array: np.ndarray) -> bool:
    """An in-memory C-contiguous writeable array, which torch reads through a view (from_numpy
    warns on read-only arrays; a memmap or a strided array goes through numpy's indexing)."""
    return type(array) is np.ndarray and array.flags.c_contiguous and array.flags.writeable


def take_steps(array: np.ndarray, rows: np.ndarray, steps: np.ndarray,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """array[rows, steps] for array (N, T, C) or (T, C) (rows ignored), rows (K, 1) and steps
    (K, L): (K, L, C), written into `out` when given (a column slice of the batch being built,
    so that a batch's parts need no join afterwards; the join cost as much as the gathers).

    An in-memory array is read by row of its flattened (N*T, C) view with torch's
    index_select, faster than numpy's two-axis fancy indexing (benchmarks/README.md): batches
    are gathered between training steps, so their cost adds to every step."""
    width = array.shape[-1]
    if out is None:
        out = torch.from_numpy(np.empty((*steps.shape, width), array.dtype))
    if not width:
        return out
    if _torch_viewable(array):
        source = torch.from_numpy(array.reshape(-1, width))
        flat = steps if array.ndim == 2 else rows.astype(np.int64) * array.shape[1] + steps
        positions = torch.from_numpy(np.ascontiguousarray(flat, dtype=np.int64).reshape(-1))
        if source.dtype == out.dtype:
            torch.index_select(source, 0, positions, out=out.view(-1, width))
        else:  # e.g. float64 features into a float32 batch
            out.view(-1, width).copy_(source.index_select(0, positions))
    else:  # a memmap (read in place), a strided or a read-only array
        taken = array[steps] if array.ndim == 2 else array[rows, steps]
        out.copy_(torch.from_numpy(np.ascontiguousarray(taken)))
    return out


@dataclass
class ModelInputs:
    features: np.ndarray  # (N, T, F) float32 scaled, causally filled; may be an np.memmap
    calendar: np.ndarray  # (T, C) float32
    names: list[str]  # (F_in,) = features, calendar, [mask]
    mask_of: np.ndarray | None = None  # (N, T, F) values whose NaNs are the mask columns

    @property
    def shape(self) -> tuple[int, int, int]:
        n, t, f = self.features.shape
        mask = 0 if self.mask_of is None else self.mask_of.shape[-1]
        return n, t, f + self.calendar.shape[-1] + mask

    @property
    def nbytes_per_series(self) -> int:
        """Bytes held per series (the calendar is shared; the mask comes from the panel)."""
        return self.features[:1].nbytes

    def gather(self, index, offset: int, length: int) -> np.ndarray:
        """Steps [start+offset, start+offset+length) of each window (series, start) of index
        (K, 2): (K, length, F_in), each part written into its columns of one batch array."""
        index = np.asarray(index)
        rows = index[:, 0:1]
        steps = window_steps(index, offset, length)  # (K, length)
        n_features, n_calendar = self.features.shape[-1], self.calendar.shape[-1]
        batch = torch.empty((len(index), length, self.shape[-1]), dtype=torch.float32)
        take_steps(self.features, rows, steps, batch[..., :n_features])
        take_steps(self.calendar, rows, steps, batch[..., n_features:n_features + n_calendar])
        if self.mask_of is not None:
            observed = ~np.isnan(self.mask_of[rows, steps])  # (K, length, F)
            batch[..., n_features + n_calendar:] = torch.from_numpy(observed)
        return batch.numpy()

    def columns(self, columns: Sequence[int]) -> FeatureColumns:
        """Some feature columns alone (the targets, in scaled units)."""
        return FeatureColumns(self.features, list(columns))


@dataclass
class FeatureColumns:
    """Columns of the scaled, filled features (N, T, F) gathered by window, as ModelInputs."""

    features: np.ndarray  # (N, T, F)
    cols: list[int]

    def __post_init__(self) -> None:
        width = self.features.shape[-1]
        if any(not -width <= c < width for c in self.cols):
            raise IndexError(f"columns {self.cols} outside the {width} feature columns")
        self.positions = np.asarray(self.cols, dtype=np.int64) % max(width, 1)  # (n_cols,)

    @property
    def shape(self) -> tuple[int, int, int]:
        n, t, _ = self.features.shape
        return n, t, len(self.cols)

    def gather(self, index, offset: int, length: int) -> np.ndarray:
        """(K, length, len(cols)) of the windows of index (K, 2), which lie inside the features
        (as window_index makes them: the flat reads below do not check the series' ends)."""
        index = np.asarray(index, dtype=np.int64)  # flat positions pass 2**31 on large panels
        array = self.features
        if not _torch_viewable(array):
            steps = window_steps(index, offset, length)[..., None]  # (K, length, 1)
            return array[index[:, 0:1, None], steps, self.positions]  # a memmap: in place
        if not len(index):
            return np.empty((0, length, len(self.cols)), array.dtype)
        n_steps, width = array.shape[1:]
        source = torch.from_numpy(array.reshape(-1))
        first = index[:, 0] * n_steps + index[:, 1] + offset  # (K,) flat rows of (N*T, width)
        # a 256-window batch of 192 steps (us, 2 cores): one column 88-109 by its column view
        # against 125-147 a value at a time (up to 128 steps both take the same); three of 7
        # or 21 columns 183-202 against 809-819 a value at a time; 7 of 7 417 as rows against
        # 513 by column views
        if len(self.cols) == 1 and len(index) * length <= SINGLE_VALUES:
            taken = _single_values(source, width, first, length, self.positions)
        elif len(self.cols) <= COLUMN_BY_COLUMN or _span(self.positions) > 2 * len(self.cols):
            taken = _column_by_column(source, width, first, length, self.positions)
        else:  # many columns close together: rows of their span, at most twice what is kept
            taken = _rows_then_columns(source, width, first, length, self.positions)
        return taken.numpy()


COLUMN_BY_COLUMN = 3  # up to this many columns each is read on its own; more: whole rows
# one column of up to this many values is read value by value: torch's index_select runs on one
# thread up to 32,768 indices, and splitting it across threads costs more than it gains here
SINGLE_VALUES = 32_768


def _span(positions: np.ndarray) -> int:
    """Columns from the first to the last of positions."""
    return int(positions.max() - positions.min()) + 1


def _single_values(source: torch.Tensor, width: int, first: np.ndarray, length: int,
                   positions: np.ndarray) -> torch.Tensor:
    """(K, length, 1): one column of the flat (N*T, width) array `source`, one flat position a
    value (worked out in numpy, which is faster than torch's calls at this size)."""
    flat = (first * width + positions[0])[:, None] + np.arange(0, length * width, width)
    return source.index_select(0, torch.from_numpy(flat.reshape(-1))).view(len(first), length, 1)


def _column_by_column(source: torch.Tensor, width: int, first: np.ndarray, length: int,
                      positions: np.ndarray) -> torch.Tensor:
    """(K, length, C): column c of the flat (N*T, width) array `source` seen as (rows, length)
    windows of one column (row stride `width`), one index_select of the K first rows a column."""
    n_rows = source.numel() // width
    out = torch.empty((len(first), length, len(positions)), dtype=source.dtype)
    starts = torch.from_numpy(first)
    for j, column in enumerate(positions.tolist()):
        windows = source.as_strided((n_rows - length + 1, length), (width, width), column)
        torch.index_select(windows, 0, starts, out=out[..., j])
    return out


def _rows_then_columns(source: torch.Tensor, width: int, first: np.ndarray, length: int,
                       positions: np.ndarray) -> torch.Tensor:
    """(K, length, C): the span of columns [min, max] of every step read as rows, then the
    columns picked from it when they are not the span itself in order."""
    low, high = int(positions.min()), int(positions.max()) + 1
    span = source.as_strided((source.numel() // width, high - low), (width, 1), low)
    rows = (first[:, None] + np.arange(length)).reshape(-1)  # (K*length,)
    taken = span.index_select(0, torch.from_numpy(rows))  # (K*length, high - low)
    if not np.array_equal(positions, np.arange(low, high)):
        taken = taken.index_select(1, torch.from_numpy(positions - low))
    return taken.view(len(first), length, len(positions))
