"""Window index -> WindowDataset -> PanelDataModule.

A window is a row (series, start) of an int64 index: inputs are steps [start, start+L), targets
[start+L, start+L+H). Windows are indexes into one array, never copies, so memory does not grow
with the lookback. A window belongs to the split that holds its target span.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from forecast.data.covariates import Covariates
from forecast.data.inputs import FeatureColumns, ModelInputs, window_steps
from forecast.data.mapped import BLOCK_BYTES, series_blocks

log = logging.getLogger(__name__)
# blocks of series over (N, T) bool arrays whose int64 temporaries take 8 bytes per element
GAP_BLOCK_BYTES = BLOCK_BYTES // 8


def window_index(
    target_observed: np.ndarray,
    lookback: int,
    horizon: int,
    start: int,
    end: int,
    stride: int = 1,
    first_steps: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Windows whose target span [s+L, s+L+H) lies inside [start, end) of the time axis.

    target_observed: (N, T) or (N, T, n_targets) bool. first_steps: (T,) bool, the steps at
    which a target span may begin (e.g. midnight only); None: any. Returns (index (K, 2) int64
    rows (series, start), number of windows dropped because a target step was missing).
    """
    if lookback < 1 or horizon < 1:
        raise ValueError(f"lookback={lookback} and horizon={horizon} must both be >= 1")
    if target_observed.ndim == 3:
        target_observed = target_observed.all(axis=2)
    n_series, n_steps = target_observed.shape
    first = max(0, start - lookback)
    last = min(end, n_steps) - lookback - horizon  # inclusive
    if last < first:
        return np.zeros((0, 2), dtype=np.int64), 0
    starts = np.arange(first, last + 1, dtype=np.int64)
    if first_steps is not None:
        starts = starts[first_steps[starts + lookback]]
    starts = starts[::stride]
    keep = np.empty((n_series, len(starts)), bool)
    for rows in series_blocks(target_observed, block_bytes=GAP_BLOCK_BYTES):
        # missing targets in [s+L, s+L+H) via a cumulative count of gaps
        gaps = np.concatenate(
            [np.zeros((rows.stop - rows.start, 1), np.int64),
             np.cumsum(~target_observed[rows], axis=1)], axis=1
        )
        keep[rows] = gaps[:, starts + lookback + horizon] == gaps[:, starts + lookback]
    return _rows(keep, starts), int(keep.size - np.count_nonzero(keep))


def _rows(keep: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """keep (N, S) -> index (K, 2) of (series, start), filled a block at a time so that no
    temporary as large as the index is needed."""
    index = np.empty((np.count_nonzero(keep), 2), np.int64)
    at = 0
    for rows in series_blocks(keep, block_bytes=GAP_BLOCK_BYTES):
        series, pos = np.nonzero(keep[rows])
        index[at:at + len(series), 0] = series + rows.start
        index[at:at + len(series), 1] = starts[pos]
        at += len(series)
    return index


def gather(array, index, offset: int, length: int):
    """Steps [start+offset, start+offset+length) of each window: (K, length, C) from (N, T, C)
    (an array, or ModelInputs / FeatureColumns, which join their parts)."""
    if isinstance(array, ModelInputs | FeatureColumns):
        return array.gather(index, offset, length)
    index = np.asarray(index)
    steps = window_steps(index, offset, length)
    return array[index[:, 0:1], steps]


def pins_memory() -> bool:
    """Whether the loaders pin their batches (for the copy to a GPU)."""
    return torch.cuda.is_available()


class WindowDataset(Dataset):
    """Windows of one split. Item k (or a list of ks, for whole batches at once):
    x (L, F_in), y (H, n_targets), series id (); with covariates also known (H, F_known), the
    known input columns over the horizon, and static (S,). The targets are the scaled target
    columns of the inputs: a window's targets are all observed, where filling changed nothing.

    input_cols: the feature columns x holds, for a net that reads only those
    (RegLSTM.input_columns): x (L, len(input_cols)); None: all F_in inputs."""

    def __init__(
        self,
        inputs: ModelInputs,
        target_cols: list[int],
        index: np.ndarray,
        lookback: int,
        horizon: int,
        input_cols: list[int] | None = None,
        covariates: Covariates | None = None,
    ):
        self.targets = inputs.columns(target_cols)  # (N, T, n_targets)
        self.covariates = covariates
        self.known = inputs if covariates is not None and covariates.n_known else None
        self.inputs = inputs if input_cols is None else inputs.columns(input_cols)  # (N, T, F_x)
        # x holds the targets alone: lookback and horizon are one read of L+H steps
        self.joined = input_cols is not None and list(input_cols) == list(target_cols)
        # batches the loader pins: views of that read would each pin the whole read
        self.contiguous = pins_memory()
        self.index = np.asarray(index, dtype=np.int64)  # (K, 2)
        self.lookback = lookback
        self.horizon = horizon

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k):
        single = isinstance(k, int | np.integer)
        rows = self.index[[k] if single else np.asarray(k, dtype=np.int64)]
        if self.joined:
            both = torch.from_numpy(self.targets.gather(rows, 0, self.lookback + self.horizon))
            x, y = both[:, :self.lookback].float(), both[:, self.lookback:]  # (B, L|H, nt)
            if self.contiguous:
                x, y = x.contiguous(), y.contiguous()
        else:  # ModelInputs batches are float32; feature columns have the features' dtype
            x = torch.from_numpy(self.inputs.gather(rows, 0, self.lookback)).float()  # (B, L, F_x)
            y = torch.from_numpy(self.targets.gather(rows, self.lookback, self.horizon))
        series = torch.from_numpy(np.ascontiguousarray(rows[:, 0]))
        batch = (x, y, series)
        if self.covariates is not None:
            batch += self._covariates(rows)
        return tuple(part[0] for part in batch) if single else batch

    def _covariates(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """known (B, H, F_known) and static (B, S) of the windows `rows` (B, 2)."""
        cov = self.covariates
        if self.known is not None:  # the leads' steps of the input columns, the known ones kept
            horizon = self.known.gather(rows, self.lookback, self.horizon)  # (B, H, F_in)
            known = torch.from_numpy(np.ascontiguousarray(horizon[:, :, cov.known]))
        else:
            known = torch.zeros((len(rows), self.horizon, 0))
        static = torch.from_numpy(np.ascontiguousarray(cov.static[rows[:, 0]]))  # (B, S)
        return known, static


class EpochBatchSampler(Sampler):
    """Batches of window positions, shuffled from a generator seeded by (seed, epoch): the order
    of epoch e is the same whether a run went straight through or was resumed from a checkpoint
    (Lightning calls set_epoch before every epoch).

    Under DDP each of `world` processes takes every world-th batch from `rank` on; the list wraps
    around so that all ranks step equally often (an uneven count would hang the all-reduce).
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0,
                 rank: int = 0, world: int = 1, limit: int | None = None):
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world = rank, world
        # an epoch of at most `limit` windows, a fresh random draw each epoch (when shuffled)
        self.used = min(n, limit) if limit else n
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n_batches = (self.used + self.batch_size - 1) // self.batch_size
        return (n_batches + self.world - 1) // self.world

    def __iter__(self) -> Iterator[np.ndarray]:
        """Batches of window positions, (batch,) int64 arrays: WindowDataset indexes with them
        as they are (a list of Python ints would be made and converted back every batch)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)[: self.used].numpy()
        else:
            order = np.arange(self.used, dtype=np.int64)
        n_batches = (self.used + self.batch_size - 1) // self.batch_size
        for k in range(len(self)):  # one batch at a time: a list of all would hold every window
            start = (k * self.world + self.rank) % n_batches * self.batch_size
            yield order[start : start + self.batch_size]


class PanelDataModule(pl.LightningDataModule):
    """Train/val/test/predict loaders over the model inputs; batches are gathered in one indexing
    operation per part rather than collated item by item (the loader is never the bottleneck)."""

    def __init__(
        self,
        inputs: ModelInputs,
        target_cols: list[int],
        indices: dict[str, np.ndarray],
        lookback: int,
        horizon: int,
        batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        windows_per_epoch: int | None = None,
        input_cols: list[int] | None = None,
        covariates: Covariates | None = None,
    ):
        super().__init__()
        self.covariates = covariates
        self.seed, self.windows_per_epoch = seed, windows_per_epoch
        self.inputs = inputs  # (N, T, F_in)
        self.target_cols = list(target_cols)  # targets among the input columns
        self.input_cols = None if input_cols is None else list(input_cols)  # what x holds
        self.indices = indices
        self.lookback, self.horizon = lookback, horizon
        self.batch_size, self.num_workers = batch_size, num_workers

    def dataset(self, split: str) -> WindowDataset:
        return WindowDataset(self.inputs, self.target_cols, self.indices[split], self.lookback,
                             self.horizon, self.input_cols, self.covariates)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.dataset(split)
        trainer = self.trainer  # None outside a Trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        limit = self.windows_per_epoch if split == "train" else None
        return DataLoader(
            ds,
            sampler=EpochBatchSampler(len(ds), self.batch_size, shuffle, self.seed, rank, world,
                                      limit),
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=pins_memory(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
