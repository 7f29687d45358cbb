"""Simple forecasters scored on the same windows as the model.

Everything fitted (climatology means, ridge weights) uses the train span / train windows only.
Arrays follow the panel: history (N, T, n_targets); forecasts (K, H, n_targets).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from forecast.data.inputs import window_steps
from forecast.data.windows import gather
from forecast.models.backbone import NORMS, BlockRidge, normalise_windows


def persistence(history: np.ndarray, index: np.ndarray, lookback: int, horizon: int) -> np.ndarray:
    """Repeat the last value of the lookback. history: causally filled (N, T, n_targets)."""
    last = gather(history, index, lookback - 1, 1)  # (K, 1, n_targets)
    return np.repeat(last, horizon, axis=1)


def seasonal_naive(
    history: np.ndarray, index: np.ndarray, lookback: int, horizon: int, season: int
) -> np.ndarray:
    """Lead h repeats the value one (or more) whole seasons before it, always from the past."""
    lead = np.arange(horizon)
    back = season * (lead // season + 1)  # smallest multiple of season > lead
    steps = window_steps(index, lookback, horizon) - back  # (K, H)
    return history[index[:, 0:1], np.clip(steps, 0, None)]


def climatology_means(values: np.ndarray, phase: np.ndarray, train_end: int) -> np.ndarray:
    """Train-span mean per series and phase (hour of day, or day of year): (N, n_phases,
    n_targets). values: (N, T, n_targets) with NaN where missing; phase: (T,) int. A phase never
    observed in training gets the series' train mean."""
    n_series, _, n_targets = values.shape
    n_phases = int(phase.max()) + 1
    means = np.full((n_series, n_phases, n_targets), np.nan)
    train = values[:, :train_end]
    with warnings.catch_warnings():  # a phase never observed in training is a NaN, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        for p in range(n_phases):
            at_p = train[:, phase[:train_end] == p]  # (N, n_p, n_targets)
            if at_p.shape[1]:
                means[:, p] = np.nanmean(at_p, axis=1)
        fallback = np.nanmean(train, axis=1)  # (N, n_targets) for phases unseen in training
    return np.where(np.isnan(means), fallback[:, None], means)


def climatology(
    means: np.ndarray, phase: np.ndarray, index: np.ndarray, lookback: int, horizon: int
) -> np.ndarray:
    """Each lead's train-span mean at its phase; means from climatology_means."""
    steps = window_steps(index, lookback, horizon)  # (K, H)
    return means[index[:, 0:1], phase[steps]].astype(np.float32)


def known_rows(inputs, index, lookback: int, horizon: int,
               known: Sequence[int]) -> np.ndarray:
    """The known input columns `known` of each window's leads, flattened: (K, H * F_known)."""
    return gather(inputs, index, lookback, horizon)[:, :, list(known)].reshape(len(index), -1)


class RidgeBaseline:
    """Ridge on the flattened lookback window of all inputs (scaled space), and on the known
    inputs of the leads when the data has them (`known`: their positions among the inputs),
    so that it sees what the model sees.

    The penalty is chosen by efficient leave-one-out on the train windows only; the windows are
    read in blocks, so the (windows x L*F_in) design matrix is never held whole.
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0), max_windows: int = 30000,
                 known: Sequence[int] = ()):
        self.alphas = alphas
        self.max_windows = max_windows
        self.known = list(known)
        self.model = None

    def _x(self, inputs, index, lookback: int, horizon: int) -> np.ndarray:
        """(K, L*F_in [+ H*F_known]) rows of windows `index`."""
        x = gather(inputs, index, 0, lookback).reshape(len(index), -1)
        if not self.known:
            return x
        return np.concatenate([x, known_rows(inputs, index, lookback, horizon, self.known)], 1)

    def fit(self, inputs, targets, index, lookback: int, horizon: int, seed: int = 0):
        """inputs (N, T, F_in), targets (N, T, n_targets), train index (K, 2)."""
        if len(index) > self.max_windows:
            pick = np.random.default_rng(seed).choice(len(index), self.max_windows, replace=False)
            index = index[np.sort(pick)]
        rows = _block_rows(lookback * inputs.shape[-1] + horizon * len(self.known),
                           horizon * targets.shape[-1])

        def blocks():
            for start in range(0, len(index), rows):
                part = index[start:start + rows]
                yield (self._x(inputs, part, lookback, horizon),
                       gather(targets, part, lookback, horizon).reshape(len(part), -1))

        self.model = BlockRidge(self.alphas).fit(blocks)
        self.shape = (horizon, targets.shape[-1])
        return self

    def predict(self, inputs, index, lookback: int) -> np.ndarray:
        """-> scaled forecasts (K, H, n_targets)."""
        x = self._x(inputs, index, lookback, self.shape[0])
        return self.model.predict(x).reshape(len(index), *self.shape).astype(np.float32)


def _block_rows(*widths: int, elements: int = 1 << 22) -> int:
    """Rows per block so that a float64 block of the widest width stays near 32 MB."""
    return max(64, elements // max(widths))


def in_blocks(x: np.ndarray, y: np.ndarray) -> Callable[[], Iterator[tuple]]:
    """In-memory rows x (n, p), y (n, m) as BlockRidge reads them."""
    rows = _block_rows(x.shape[1], y.shape[1])
    return lambda: ((x[i:i + rows], y[i:i + rows]) for i in range(0, len(x), rows))


class LinearBaseline:
    """RLinear / NLinear: one linear map from a column's normalised lookback to its horizon,
    shared by every target column (each column its own series, as in the long-horizon tables).

    The window normalisation (last value, mean, or mean and spread) is chosen by the validation
    windows; the map is ridge least squares on the train windows, its penalty by leave-one-out.
    Arrays are scaled targets (N, T, n_targets), causally filled. With `known` (a function of
    window rows (K, 2) -> (K, H*F_known), known_rows) each column's row also holds its window's
    known inputs of the leads, as they are, and the window's level (the normalisation is the
    column's own).
    """

    KINDS = NORMS

    def __init__(self, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0), max_rows: int = 100_000,
                 known: Callable[[np.ndarray], np.ndarray] | None = None):
        self.alphas, self.max_rows = alphas, max_rows
        self.known = known
        self.kind, self.model = None, None

    def _rows(self, targets, index, lookback: int, horizon: int | None = None):
        """-> lookbacks (K*n_targets, L) [and horizons (K*n_targets, H)], one row per column."""
        x = gather(targets, index, 0, lookback)  # (K, L, nt)
        x = x.transpose(0, 2, 1).reshape(-1, lookback)
        if horizon is None:
            return x
        y = gather(targets, index, lookback, horizon).transpose(0, 2, 1).reshape(-1, horizon)
        return x, y

    @staticmethod
    def _picked_rows(targets, index, pick, lookback: int, horizon: int, chunk: int = 4096):
        """Rows `pick` of _rows' output (row r: window r // n_targets, column r % n_targets),
        gathered a chunk at a time so that all K*n_targets rows are never built."""
        windows, columns = np.divmod(pick, targets.shape[-1])
        xs, ys = [], []
        for start in range(0, len(pick), chunk):
            part, cols = index[windows[start:start + chunk]], columns[start:start + chunk]
            rows = np.arange(len(part))
            xs.append(gather(targets, part, 0, lookback)[rows, :, cols])
            ys.append(gather(targets, part, lookback, horizon)[rows, :, cols])
        return np.concatenate(xs), np.concatenate(ys)

    def fit(self, targets, train_index, val_index, lookback: int, horizon: int, seed: int = 0):
        n_targets = targets.shape[-1]
        total = len(train_index) * n_targets
        if total > self.max_rows:
            pick = np.sort(np.random.default_rng(seed).choice(total, self.max_rows, False))
            x, y = self._picked_rows(targets, train_index, pick, lookback, horizon)
            k = self._known_of(train_index[pick // n_targets], 1)
        else:
            x, y = self._rows(targets, train_index, lookback, horizon)
            k = self._known_of(train_index, n_targets)
        x_val, y_val = self._rows(targets, val_index, lookback, horizon)
        k_val = self._known_of(val_index, n_targets)
        best = np.inf
        for kind in self.KINDS:
            xn, loc, scale = normalise_windows(x, kind)
            model = BlockRidge(self.alphas).fit(in_blocks(self._join(xn, k, loc),
                                                          (y - loc) / scale))
            self.kind, self.model = kind, model
            error = np.mean((self._map(x_val, k_val) - y_val) ** 2) if len(x_val) else 0.0
            if error < best:
                best, chosen = error, (kind, model)
        self.kind, self.model = chosen
        self.shape = (horizon, n_targets)
        return self

    def _known_of(self, index: np.ndarray, n_targets: int) -> np.ndarray | None:
        """The windows' known inputs, one row per (window, target column); None without."""
        if self.known is None:
            return None
        return np.repeat(self.known(index), n_targets, axis=0)

    @staticmethod
    def _join(xn: np.ndarray, known: np.ndarray | None, loc: np.ndarray) -> np.ndarray:
        """A row's regressors: the normalised lookback [, the known inputs and the window's
        level, so that a known forecast of the column itself can be followed exactly]."""
        return xn if known is None else np.concatenate([xn, known, loc], axis=1)

    def _map(self, x: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
        xn, loc, scale = normalise_windows(x, self.kind)
        return self.model.predict(self._join(xn, known, loc)) * scale + loc

    def predict(self, targets, index, lookback: int) -> np.ndarray:
        """-> scaled forecasts (K, H, n_targets)."""
        horizon, n_targets = self.shape
        y = self._map(self._rows(targets, index, lookback),
                      self._known_of(index, n_targets))  # (K*nt, H)
        return y.reshape(len(index), n_targets, horizon).transpose(0, 2, 1).astype(np.float32)
