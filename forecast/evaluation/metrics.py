"""Forecast accuracy on arrays: `Totals` (MAE, MSE, RMSE, sMAPE, MASE overall, by lead, series
and target) and `QuantileTotals` (pinball loss, coverage and width of the outermost interval)
add up a block of windows at a time; `coverage` of any interval.

actual, forecast: (K, H, n_targets) in the same units; series: (K,) int positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _smape_terms(actual, forecast, absolute: np.ndarray) -> np.ndarray:
    """200 |error| / (|actual| + |forecast|), 0 where both are 0; absolute: |error| (float)."""
    denom = np.abs(actual) + np.abs(forecast)
    return 200.0 * np.divide(absolute, denom, out=np.zeros_like(absolute, dtype=float),
                             where=denom > 0)


def seasonal_scale(history: np.ndarray, season: int) -> np.ndarray:
    """In-sample MAE of the seasonal naive forecast on a (train) span: (N, T, n_targets) ->
    (N, n_targets), the denominator of MASE. NaNs are skipped."""
    diffs = np.abs(history[:, season:] - history[:, :-season])
    return np.nanmean(diffs, axis=1)


def _terms(actual, forecast, series, scale) -> dict:
    """The elementwise terms whose means are the scores, float64 (K, H, n_targets) each."""
    error = forecast.astype(np.float64) - actual
    absolute = np.abs(error)
    out = {"mae": absolute, "mse": error * error,
           "smape": _smape_terms(actual, forecast, absolute)}
    if scale is not None:
        out["mase"] = absolute / scale[series][:, None, :]
    return out


class Totals:
    """Running sums of one forecaster's error terms per (series, lead, target), so that test
    windows can be scored a block at a time: memory is (N, H, n_targets) per score, whatever the
    number of windows. `summary()` gives the same scores as scoring every window at once."""

    def __init__(self, n_series: int, horizon: int, n_targets: int,
                 scale: np.ndarray | None = None):
        names = ("mae", "mse", "smape") + (("mase",) if scale is not None else ())
        self.scale = scale
        self.sums = {k: np.zeros((n_series, horizon, n_targets)) for k in names}
        self.windows = np.zeros(n_series, dtype=np.int64)

    def add(self, actual: np.ndarray, forecast: np.ndarray, series: np.ndarray) -> Totals:
        """Add a block: actual, forecast (k, H, n_targets), series (k,) positions."""
        terms = _terms(actual, forecast, series, self.scale)
        present = np.unique(series)
        self.windows += np.bincount(series, minlength=len(self.windows))
        for name, values in terms.items():
            if len(present) == 1:  # the usual block: one series, no per-row mask
                self.sums[name][present[0]] += values.sum(axis=0)
            else:
                for i in present:
                    self.sums[name][i] += values[series == i].sum(axis=0)
        return self

    def mse(self) -> float:
        """Overall MSE, the ratio that skill scores compare."""
        return float(self.sums["mse"].sum() / self._count(self.windows.sum()))

    def _count(self, windows) -> float:
        _, horizon, n_targets = self.sums["mae"].shape
        return float(windows) * horizon * n_targets

    @staticmethod
    def _means(sums: dict, count) -> dict:
        out = {k: v / count for k, v in sums.items()}
        out["rmse"] = np.sqrt(out["mse"])
        return {k: out[k] for k in ("mae", "mse", "rmse", "smape", "mase") if k in out}

    def summary(self, ids: Sequence[str], targets: Sequence[str]) -> dict:
        """Overall scores, plus `by_lead` (lists of H values), `by_series` and `by_target`."""
        _, horizon, n_targets = self.sums["mae"].shape
        total = self.windows.sum()
        result = {k: float(v) for k, v in
                  self._means({k: s.sum() for k, s in self.sums.items()},
                              self._count(total)).items()}
        by_lead = self._means({k: s.sum(axis=(0, 2)) for k, s in self.sums.items()},
                              float(total) * n_targets)
        result["by_lead"] = {k: [float(x) for x in v] for k, v in by_lead.items()}
        result["by_series"] = {
            str(name): {k: float(v) for k, v in self._means(
                {k: s[i].sum() for k, s in self.sums.items()},
                self._count(self.windows[i])).items()}
            for i, name in enumerate(ids) if self.windows[i]}
        result["by_target"] = {
            name: {k: float(v) for k, v in self._means(
                {k: s[..., j].sum() for k, s in self.sums.items()},
                float(total) * horizon).items()}
            for j, name in enumerate(targets)}
        return result


def pinball(actual: np.ndarray, forecast: np.ndarray, quantiles: Sequence[float]) -> float:
    """Mean quantile loss; actual (K, H, n_targets), forecast (K, H, n_targets, Q)."""
    q = np.asarray(quantiles, dtype=float)
    error = actual[..., None] - forecast
    return float(np.mean(np.maximum(q * error, (q - 1) * error)))


def coverage(actual: np.ndarray, low: np.ndarray, high: np.ndarray, axis=None):
    """The share of observed `actual` values inside [low, high], bounds included: a float, or
    with `axis` an array over the axes left. NaN actuals are left out (a scored window has
    every target observed, so there it is the plain share)."""
    inside = ((actual >= low) & (actual <= high)).astype(np.float64)
    inside[np.isnan(actual)] = np.nan
    return np.nanmean(inside, axis=axis) if axis is not None else float(np.nanmean(inside))


class QuantileTotals:
    """Running sums for the quantile scores (pinball loss, coverage and width of the outermost
    interval, lowest to highest quantile), so that windows can be added a block at a time."""

    def __init__(self, quantiles: Sequence[float]):
        self.quantiles = np.asarray(quantiles, dtype=float)
        order = np.argsort(self.quantiles)
        self.lo, self.hi = order[0], order[-1]
        self.pinball = self.inside = self.width = 0.0
        self.count = 0

    def add(self, actual: np.ndarray, forecast: np.ndarray) -> QuantileTotals:
        """actual (k, H, n_targets), forecast (k, H, n_targets, Q)."""
        low, high = forecast[..., self.lo], forecast[..., self.hi]
        self.pinball += pinball(actual, forecast, self.quantiles) * actual.size
        self.inside += coverage(actual, low, high) * actual.size
        self.width += float((high - low).astype(np.float64).sum())
        self.count += actual.size
        return self

    def scores(self) -> dict:
        q = self.quantiles
        return {"pinball": self.pinball / self.count,
                "interval": [float(q[self.lo]), float(q[self.hi])],
                "coverage": self.inside / self.count,
                "nominal_coverage": float(q[self.hi] - q[self.lo]),
                "width": self.width / self.count}
