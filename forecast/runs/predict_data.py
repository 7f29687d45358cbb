"""The data forecast-predict reads: the run's data options with the user's overrides, the long
frame in the run's feature order (the loader and options training used), and the panel on the
run's time grid, checked against the run (frequency, series, length, rows past the last
observed target, which only a run with known inputs reads)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecast.config import DataConfig
from forecast.data import loader
from forecast.data.panel import Panel, infer_freq, to_panel
from forecast.data.sources import NYC_VALID_RANGE, SERIES, TIME


def data_settings(run_data: DataConfig, overrides: dict | None = None) -> DataConfig:
    """The run's data options with the user's overrides; a new file (path) is read as csv."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    known = sorted(f.name for f in dataclasses.fields(DataConfig))
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"data.{unknown[0]}: not a data setting of the run; choose from {known}")
    data = loader.as_config({**dataclasses.asdict(run_data), **overrides})
    if overrides.get("path"):
        data = dataclasses.replace(data, name="csv")
        if run_data.name == "nyc_weather":
            # a new file gets the same plausibility bounds the training data had
            data = dataclasses.replace(data, valid_range={**NYC_VALID_RANGE,
                                                          **(run_data.valid_range or {})})
    return data


def load_frame(data: DataConfig, features: Sequence[str], targets: Sequence[str] = (),
               seed: int = 0) -> pd.DataFrame:
    """Long DataFrame [series, time, *features] in the run's feature order, read by the very
    loader and options training used."""
    features = list(features)
    # the known columns are among the run's features; the static values come from data.json,
    # so a new file need not repeat them
    data = dataclasses.replace(data, features=features, known=[], static=[], static_path=None)
    try:
        df = loader.load(data, seed=seed,
                         targets=list(targets) or None)
    except ValueError as err:
        if data.name != "csv":
            raise
        raise ValueError(f"{err} (forecast-predict: the new data must hold the run's features "
                         f"{features})") from None
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise ValueError(f"data '{data.name}' lacks the run's feature(s) {missing}")
    # the scaler and the network read features by position: keep the training order
    return df[[SERIES, TIME, *features]]


def build_panel(df: pd.DataFrame, description: dict, source: str) -> Panel:
    """The panel on the run's time grid; refuses a different frequency or set of series."""
    freq = description["freq"]
    found = infer_freq(df)
    if found != freq_step(freq):
        alias = pd.tseries.frequencies.to_offset(found).freqstr
        raise ValueError(
            f"{source}: the data's time step is '{alias}' but the run was trained on '{freq}' "
            f"steps (frequency expected '{freq}', found '{alias}'); resample the file to '{freq}'"
        )
    panel = to_panel(df, freq)
    _check_series([str(i) for i in panel.ids], description["ids"], source)
    lookback = description["lookback"]
    if panel.n_steps < lookback:
        raise ValueError(f"{source}: {panel.n_steps} time steps, fewer than the run's "
                         f"lookback={lookback}; give at least {lookback} steps")
    return panel


def last_observed(panel: Panel, targets: Sequence[str], source: str) -> int:
    """The last step at which any target of any series is observed: the forecast origin."""
    columns = [panel.features.index(t) for t in targets]
    seen = panel.observed[:, :, columns].any(axis=(0, 2))  # (T,): any target of any series
    if not seen.any():
        raise ValueError(f"{source}: no observed value of {list(targets)}; nothing to forecast "
                         "from")
    return int(np.flatnonzero(seen)[-1])


def refuse_future_rows(panel: Panel, targets: Sequence[str], source: str) -> None:
    """Time steps after the last observed target of every series are rows of the future (e.g.
    the next day's covariates appended to the history). This run reads no inputs known ahead,
    so they would only move the forecast origin past them: refused, naming the rows, so that the
    forecast always starts at the step after the last observed target."""
    last = last_observed(panel, targets, source)
    if last == panel.n_steps - 1:
        return
    after = panel.times[last + 1:]
    raise ValueError(
        f"{source}: {len(after)} time step(s) after the last observed {list(targets)} "
        f"({panel.times[last]}): from {after[0]} to {after[-1]}. This run reads no inputs "
        "known ahead (it was trained without data.known), so rows past the last observed target "
        "cannot be used and would move the forecast past them; drop those rows: the forecast "
        f"then starts at {after[0]}, the step after the last observed target")


def _check_series(found: list[str], expected: list[str], source: str) -> None:
    unknown = [s for s in found if s not in expected]
    missing = [s for s in expected if s not in found]
    if unknown or missing:
        raise ValueError(
            f"{source}: the series differ from the run's {expected}: unknown series {unknown}, "
            f"missing series {missing}; forecast with a file holding the run's series"
        )


def freq_step(freq: str) -> pd.Timedelta:
    """The fixed step of a pandas offset alias, as to_panel lays out the grid."""
    return pd.Timedelta(pd.tseries.frequencies.to_offset(freq))


def future_times(last: pd.Timestamp, freq: str, horizon: int) -> pd.DatetimeIndex:
    """last + k * freq for k = 1..horizon, in last's timezone."""
    return pd.DatetimeIndex(last + freq_step(freq) * np.arange(1, horizon + 1))
