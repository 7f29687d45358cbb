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
