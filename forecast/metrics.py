"""Forecast accuracy: pure functions on arrays.

actual, forecast: (K, H, n_targets) in the same units; series: (K,) int positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mae(actual: np.ndarray, forecast: np.ndarray, axis=None) -> np.ndarray:
    return np.mean(np.abs(forecast - actual), axis=axis)


def rmse(actual: np.ndarray, forecast: np.ndarray, axis=None) -> np.ndarray:
    return np.sqrt(np.mean((forecast - actual) ** 2, axis=axis))


def mse(actual: np.ndarray, forecast: np.ndarray, axis=None) -> np.ndarray:
    return np.mean((forecast - actual) ** 2, axis=axis)


def smape(actual: np.ndarray, forecast: np.ndarray, axis=None) -> np.ndarray:
    """Symmetric MAPE in percent, 0..200; terms where both are 0 count as 0."""
    denom = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(2 * np.abs(forecast - actual), denom, out=np.zeros_like(denom, dtype=float),
                      where=denom > 0)
    return 100 * np.mean(ratio, axis=axis)


def seasonal_scale(history: np.ndarray, season: int) -> np.ndarray:
    """In-sample MAE of the seasonal naive forecast on a (train) span: (N, T, n_targets) ->
    (N, n_targets), the denominator of MASE. NaNs are skipped."""
    diffs = np.abs(history[:, season:] - history[:, :-season])
    return np.nanmean(diffs, axis=1)


def mase(actual, forecast, series: np.ndarray, scale: np.ndarray, axis=None) -> np.ndarray:
    """Mean absolute error divided by each window's series/target `scale` (N, n_targets)."""
    return np.mean(np.abs(forecast - actual) / scale[series][:, None, :], axis=axis)


def skill(actual, forecast, reference) -> float:
    """1 - MSE(forecast) / MSE(reference): > 0 beats the reference, 1 is perfect."""
    return float(1.0 - mse(actual, forecast) / mse(actual, reference))


def _scores(actual, forecast, series, scale, axis=None) -> dict:
    out = {
        "mae": mae(actual, forecast, axis),
        "mse": mse(actual, forecast, axis),
        "rmse": rmse(actual, forecast, axis),
        "smape": smape(actual, forecast, axis),
    }
    if scale is not None:
        out["mase"] = mase(actual, forecast, series, scale, axis)
    return out


def summary(
    actual: np.ndarray,
    forecast: np.ndarray,
    series: np.ndarray,
    ids: Sequence[str],
    targets: Sequence[str],
    scale: np.ndarray | None = None,
) -> dict:
    """Overall scores, plus `by_lead` (lists of H values), `by_series` and `by_target`."""
    result = {k: float(v) for k, v in _scores(actual, forecast, series, scale).items()}
    by_lead = _scores(actual, forecast, series, scale, axis=(0, 2))
    result["by_lead"] = {k: [float(x) for x in v] for k, v in by_lead.items()}
    result["by_series"] = {}
    for i, name in enumerate(ids):
        rows = series == i
        if rows.any():
            sub = _scores(actual[rows], forecast[rows], series[rows], scale)
            result["by_series"][str(name)] = {k: float(v) for k, v in sub.items()}
    result["by_target"] = {}
    for j, name in enumerate(targets):
        sub_scale = None if scale is None else scale[:, j : j + 1]
        sub = _scores(actual[..., j : j + 1], forecast[..., j : j + 1], series, sub_scale)
        result["by_target"][name] = {k: float(v) for k, v in sub.items()}
    return result


def pinball(actual: np.ndarray, forecast: np.ndarray, quantiles: Sequence[float]) -> float:
    """Mean quantile loss; actual (K, H, n_targets), forecast (K, H, n_targets, Q)."""
    q = np.asarray(quantiles, dtype=float)
    error = actual[..., None] - forecast
    return float(np.mean(np.maximum(q * error, (q - 1) * error)))


def coverage(actual: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Share of actual values inside [low, high]."""
    return float(np.mean((actual >= low) & (actual <= high)))


def interval_scores(actual: np.ndarray, forecast: np.ndarray, quantiles: Sequence[float]) -> dict:
    """Pinball loss, and coverage and mean width of the outermost interval (lowest to highest
    quantile), with the coverage it should have."""
    order = np.argsort(quantiles)
    lo, hi = order[0], order[-1]
    low, high = forecast[..., lo], forecast[..., hi]
    return {
        "pinball": pinball(actual, forecast, quantiles),
        "interval": [float(quantiles[lo]), float(quantiles[hi])],
        "coverage": coverage(actual, low, high),
        "nominal_coverage": float(quantiles[hi] - quantiles[lo]),
        "width": float(np.mean(high - low)),
    }
