"""Simple forecasters scored on the same windows as the model.

Everything fitted (climatology means, ridge weights) uses the train span / train windows only.
Arrays follow the panel: history (N, T, n_targets); forecasts (K, H, n_targets).
"""

from __future__ import annotations

import warnings

import numpy as np

from forecast.inputs import window_steps
from forecast.windows import gather


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


def climatology(
    values: np.ndarray,
    phase: np.ndarray,
    train_end: int,
    index: np.ndarray,
    lookback: int,
    horizon: int,
) -> np.ndarray:
    """Train-span mean per series and phase (hour of day, or day of year).

    values: (N, T, n_targets) with NaN where missing; phase: (T,) int.
    """
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
    means = np.where(np.isnan(means), fallback[:, None], means)
    steps = window_steps(index, lookback, horizon)  # (K, H)
    return means[index[:, 0:1], phase[steps]].astype(np.float32)


class RidgeBaseline:
    """scikit-learn ridge on the flattened lookback window of all inputs (scaled space).

    The penalty is chosen by efficient leave-one-out on the train windows only.
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0), max_windows: int = 30000):
        self.alphas = alphas
        self.max_windows = max_windows
        self.model = None

    def fit(self, inputs, targets, index, lookback: int, horizon: int, seed: int = 0):
        """inputs (N, T, F_in), targets (N, T, n_targets), train index (K, 2)."""
        from sklearn.linear_model import RidgeCV

        if len(index) > self.max_windows:
            pick = np.random.default_rng(seed).choice(len(index), self.max_windows, replace=False)
            index = index[np.sort(pick)]
        x = gather(inputs, index, 0, lookback).reshape(len(index), -1)
        y = gather(targets, index, lookback, horizon).reshape(len(index), -1)
        self.model = RidgeCV(alphas=self.alphas).fit(x, y)
        self.shape = (horizon, targets.shape[-1])
        return self

    def predict(self, inputs, index, lookback: int) -> np.ndarray:
        """-> scaled forecasts (K, H, n_targets)."""
        x = gather(inputs, index, 0, lookback).reshape(len(index), -1)
        return self.model.predict(x).reshape(len(index), *self.shape).astype(np.float32)


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

    def fit(self, targets, train_index, val_index, lookback: int, horizon: int, seed: int = 0):
        from sklearn.linear_model import RidgeCV

        x, y = self._rows(targets, train_index, lookback, horizon)
        if len(x) > self.max_rows:
            pick = np.sort(np.random.default_rng(seed).choice(len(x), self.max_rows, False))
            x, y = x[pick], y[pick]
        x_val, y_val = self._rows(targets, val_index, lookback, horizon)
        best = np.inf
        for kind in self.KINDS:
            xn, loc, scale = normalise_windows(x, kind)
            model = RidgeCV(alphas=self.alphas).fit(xn, (y - loc) / scale)
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
