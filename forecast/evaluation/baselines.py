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


class BlockRidge:
    """Ridge regression with an unpenalised intercept, the penalty chosen among `alphas` by the
    exact leave-one-out squared error summed over all outputs (what scikit-learn's RidgeCV
    does), fitted from row blocks: memory (p, p) + (p, m) + one block, never (n, p)."""

    def __init__(self, alphas: Sequence[float]):
        self.alphas = tuple(float(a) for a in alphas)

    def fit(self, blocks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]) -> BlockRidge:
        """blocks(): a fresh iterator of (x (b, p), y (b, m)) row blocks; it is read twice."""
        n, sx, sy, xtx, xty = 0, 0.0, 0.0, 0.0, 0.0
        for x, y in blocks():
            x, y = x.astype(np.float64), y.astype(np.float64)
            n, sx, sy = n + len(x), sx + x.sum(0), sy + y.sum(0)
            xtx, xty = xtx + x.T @ x, xty + x.T @ y
        mx, my = sx / n, sy / n
        values, vectors = np.linalg.eigh(xtx - n * np.outer(mx, mx))
        values = np.clip(values, 0.0, None)
        projected = vectors.T @ (xty - n * np.outer(mx, my))  # (p, m)
        errors = np.zeros(len(self.alphas))
        for x, y in blocks():
            xv = (x.astype(np.float64) - mx) @ vectors
            centred = y.astype(np.float64) - my
            for a, alpha in enumerate(self.alphas):
                inverse = 1.0 / (values + alpha)
                hat = 1.0 / n + np.einsum("ij,ij,j->i", xv, xv, inverse)
                loo = (centred - (xv * inverse) @ projected) / (1.0 - hat)[:, None]
                errors[a] += np.einsum("ij,ij->", loo, loo)
        self.alpha_ = self.alphas[int(np.argmin(errors))]
        self.coef_ = (vectors @ (projected / (values + self.alpha_)[:, None])).T  # (m, p)
        self.intercept_ = my - self.coef_ @ mx
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64) @ self.coef_.T + self.intercept_


class RidgeBaseline:
    """Ridge on the flattened lookback window of all inputs (scaled space).

    The penalty is chosen by efficient leave-one-out on the train windows only; the windows are
    read in blocks, so the (windows x L*F_in) design matrix is never held whole.
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0), max_windows: int = 30000):
        self.alphas = alphas
        self.max_windows = max_windows
        self.model = None

    def fit(self, inputs, targets, index, lookback: int, horizon: int, seed: int = 0):
        """inputs (N, T, F_in), targets (N, T, n_targets), train index (K, 2)."""
        if len(index) > self.max_windows:
            pick = np.random.default_rng(seed).choice(len(index), self.max_windows, replace=False)
            index = index[np.sort(pick)]
        rows = _block_rows(lookback * inputs.shape[-1], horizon * targets.shape[-1])

        def blocks():
            for start in range(0, len(index), rows):
                part = index[start:start + rows]
                yield (gather(inputs, part, 0, lookback).reshape(len(part), -1),
                       gather(targets, part, lookback, horizon).reshape(len(part), -1))

        self.model = BlockRidge(self.alphas).fit(blocks)
        self.shape = (horizon, targets.shape[-1])
        return self

    def predict(self, inputs, index, lookback: int) -> np.ndarray:
        """-> scaled forecasts (K, H, n_targets)."""
        x = gather(inputs, index, 0, lookback).reshape(len(index), -1)
        return self.model.predict(x).reshape(len(index), *self.shape).astype(np.float32)


def _block_rows(*widths: int, elements: int = 1 << 22) -> int:
    """Rows per block so that a float64 block of the widest width stays near 32 MB."""
    return max(64, elements // max(widths))


def in_blocks(x: np.ndarray, y: np.ndarray) -> Callable[[], Iterator[tuple]]:
    """In-memory rows x (n, p), y (n, m) as BlockRidge reads them."""
    rows = _block_rows(x.shape[1], y.shape[1])
    return lambda: ((x[i:i + rows], y[i:i + rows]) for i in range(0, len(x), rows))


def normalise_windows(x: np.ndarray, kind: str):
    """x (rows, L) lookbacks -> (normalised x, loc (rows, 1), scale (rows, 1)); kind: "last"
    (minus the last value), "mean" (minus the mean) or "revin" (mean and spread)."""
    if kind == "last":
        loc, scale = x[:, -1:], np.ones((len(x), 1), x.dtype)
    else:
        loc = x.mean(axis=1, keepdims=True)
        scale = x.std(axis=1, keepdims=True) + 1e-2 if kind == "revin" else np.ones_like(loc)
    return (x - loc) / scale, loc, scale


class LinearBaseline:
    """RLinear / NLinear: one linear map from a column's normalised lookback to its horizon,
    shared by every target column (each column its own series, as in the long-horizon tables).

    The window normalisation (last value, mean, or mean and spread) is chosen by the validation
    windows; the map is ridge least squares on the train windows, its penalty by leave-one-out.
    Arrays are scaled targets (N, T, n_targets), causally filled.
    """

    KINDS = ("last", "mean", "revin")

    def __init__(self, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0), max_rows: int = 100_000):
        self.alphas, self.max_rows = alphas, max_rows
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
        total = len(train_index) * targets.shape[-1]
        if total > self.max_rows:
            pick = np.sort(np.random.default_rng(seed).choice(total, self.max_rows, False))
            x, y = self._picked_rows(targets, train_index, pick, lookback, horizon)
        else:
            x, y = self._rows(targets, train_index, lookback, horizon)
        x_val, y_val = self._rows(targets, val_index, lookback, horizon)
        best = np.inf
        for kind in self.KINDS:
            xn, loc, scale = normalise_windows(x, kind)
            model = BlockRidge(self.alphas).fit(in_blocks(xn, (y - loc) / scale))
            self.kind, self.model = kind, model
            error = np.mean((self._map(x_val) - y_val) ** 2) if len(x_val) else 0.0
            if error < best:
                best, chosen = error, (kind, model)
        self.kind, self.model = chosen
        self.shape = (horizon, targets.shape[-1])
        return self

    def _map(self, x: np.ndarray) -> np.ndarray:
        xn, loc, scale = normalise_windows(x, self.kind)
        return self.model.predict(xn) * scale + loc

    def predict(self, targets, index, lookback: int) -> np.ndarray:
        """-> scaled forecasts (K, H, n_targets)."""
        horizon, n_targets = self.shape
        y = self._map(self._rows(targets, index, lookback))  # (K*nt, H)
        return y.reshape(len(index), n_targets, horizon).transpose(0, 2, 1).astype(np.float32)
