"""The test forecasts as a long table (forecasts.parquet): one row per window, lead and target."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecast.data.inputs import window_steps
from forecast.data.prepared import Prepared, actuals, to_units
from forecast.models.quantiles import point


def forecast_table(
    prep: Prepared, model_scaled: np.ndarray, quantiles: Sequence[float] | None = None
) -> pd.DataFrame:
    """Long table: series, origin (time of the last input step), lead, time, target, actual,
    forecast [, q0.1, ...], one row per test window, lead and target."""
    index, lookback = prep.indices["test"], prep.lookback
    units = to_units(prep, model_scaled)
    forecast_units = point(units, quantiles)  # (K, H, nt)
    actual = actuals(prep)
    k, h, nt = forecast_units.shape
    times = prep.panel.times
    steps = window_steps(index, lookback, h).astype(np.int32)  # (K, H)
    per_row = h * nt  # rows of one window
    # categories, 32-bit integers and no consolidation copy (copy=False): the table has
    # K*H*n_targets rows, 20M at benchmark scale
    table = pd.DataFrame({
        "series": pd.Categorical.from_codes(np.repeat(index[:, 0].astype(np.int32), per_row),
                                            pd.Index(prep.panel.ids)),
        "origin": times[np.repeat((index[:, 1] + lookback - 1).astype(np.int32), per_row)],
        "lead": np.tile(np.repeat(np.arange(1, h + 1, dtype=np.int32), nt), k),
        "time": times[np.repeat(steps.reshape(-1), nt)],
        "target": pd.Categorical.from_codes(np.tile(np.arange(nt, dtype=np.int32), k * h),
                                            list(prep.targets)),
        "actual": actual.reshape(-1),
        "forecast": forecast_units.reshape(-1),
    }, copy=False)
    for j, q in enumerate(quantiles or []):
        table[f"q{q:g}"] = units[..., j].reshape(-1)
    return table
