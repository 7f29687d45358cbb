"""Quantile forecasts -> point forecasts, with numpy only.

Kept apart from forecast.data.prepared so that forecast-predict can use it without importing
PyTorch Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def point(forecast: np.ndarray, quantiles: Sequence[float] | None) -> np.ndarray:
    """The point forecast (K, H, n_targets) of forecast (K, H, n_targets[, Q]): the median when
    there are quantiles, else forecast itself."""
    return forecast[..., list(quantiles).index(0.5)] if quantiles else forecast
