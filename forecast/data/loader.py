"""Data sources -> one tidy long DataFrame with columns [series, time, *features].

`time` is a datetime column (timezone-aware when a tz is given, naive with tz=None), `series` a
string, features are float. Sources are read only, never written.

A user's files (`data=csv`) and the city weather table go through `tidy`, which repairs what is
common in real files and logs each repair with its count: empty / 'NA' cells and sentinel values
-> missing; numbers stored as text -> numbers; trace codes 'T' -> 0; wind directions (degrees or
compass points) -> sin/cos; text categories -> one-hot columns (or dropped when there are many).
`load` then sorts the rows and resolves duplicate (series, time) rows (`data.duplicates`).
Anything that cannot be repaired stops with an error naming the file, the column or the option,
and the fix.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pandas as pd

from forecast.config import DataConfig
from forecast.data.columns import Cleaning
from forecast.data.files import assemble_time, read_tables, resolve_paths
from forecast.data.sources import (
    CITY_SOURCE,
    CITY_TRACE_COLS,
    NYC_VALID_RANGE,
    SERIES,
    TIME,
    load_city_weather,
    load_nyc_weather,
    load_synthetic,
    mask_unrecorded_precip,
)
from forecast.data.tidy import (
    DUPLICATES,
    check_lengths,
    mask_implausible,
    report_unsorted,
    resolve_duplicates,
    tidy,
)

log = logging.getLogger(__name__)


def as_dict(data: DataConfig | Mapping) -> dict:
    """data.* options as a dict, from a DataConfig (OmegaConf.to_object) or a mapping."""
    return dataclasses.asdict(data) if dataclasses.is_dataclass(data) else dict(data)


def option(data: DataConfig | Mapping, name: str):
    """One data.* option of a DataConfig or a mapping (None when absent)."""
    return getattr(data, name, None) if dataclasses.is_dataclass(data) else data.get(name)


def load_options(data: DataConfig | Mapping, **given) -> pd.DataFrame:
    """`load` from the data.* options (a DataConfig, or a mapping of them): every option `load`
    knows is passed on by name, so a file option added here reaches training and
    forecast-predict alike; `given` (seed, targets, features, ...) wins over `data`."""
    accepted = inspect.signature(load).parameters
    options = as_dict(data)
    return load(**{**{k: v for k, v in options.items() if k in accepted}, **given})


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
    duplicates: str = "mean",
    time_parts: Sequence[str] | None = None,
    direction_cols: Sequence[str] = (),
    trace_cols: Sequence[str] | None = None,
    max_categories: int = 10,
    thousands: str | None = None,
    targets: str | Sequence[str] | None = None,
    min_steps: int = 0,
    sep: str | None = None,
    decimal: str = ".",
    time_unit: str | None = None,
) -> pd.DataFrame:
    """Load a source by name -> long DataFrame [series, time, *features] sorted by series, time.

    `trace_cols=None` takes the source's default ([precip] for city_weather, none otherwise);
    `targets` (when given) are checked to be numeric, non-empty columns; `min_steps` (lookback +
    horizon) is the fewest time steps a series may have.
    """
    if duplicates not in DUPLICATES:
        raise ValueError(f"data.duplicates='{duplicates}' is unknown; choose one of "
                         f"{list(DUPLICATES)}")
    cleaning = Cleaning(tuple(na_values or ()), tuple(trace_cols or ()),
                        tuple(direction_cols or ()), max_categories, thousands, sep, decimal,
                        time_unit)
    features = None if features is None else list(features)
    if name == "nyc_weather":
        source, df = "nycflights13::weather", load_nyc_weather()
        valid_range = {**NYC_VALID_RANGE, **(valid_range or {})}
        if features:
            df = df[[SERIES, TIME, *features]]
    elif name == "synthetic":
        source, df = "synthetic", load_synthetic(n_series, n_steps, seed)
    elif name == "city_weather":
        if trace_cols is None:
            cleaning = replace(cleaning, trace_cols=CITY_TRACE_COLS)
        source = CITY_SOURCE
        df = tidy(load_city_weather(), "date", "city", features, tz, source, cleaning, targets)
        df = mask_unrecorded_precip(df)
    elif name == "csv":
        source, df = load_files(path, series_col, time_col, time_parts, features, tz, cleaning,
                                targets)
    else:
        raise ValueError(f"data.name='{name}' is unknown; use nyc_weather, city_weather, csv or "
                         "synthetic")
    return _finish(df, source, valid_range, duplicates, min_steps)


def load_files(path: str | None, series_col: str | None, time_col: str,
               time_parts: Sequence[str] | None, features: Sequence[str] | None, tz: str | None,
               cleaning: Cleaning, targets) -> tuple[str, pd.DataFrame]:
    """data=csv: a file, folder or glob of CSV/Parquet -> (source name, tidy frame)."""
    if not path:
        raise ValueError("data=csv needs data.path=<file.csv|file.parquet|folder|glob>")
    files = resolve_paths(path)
    source = str(files[0]) if len(files) == 1 else f"{path} ({len(files)} files)"
    parts = list(time_parts or [])
    needed = ([series_col] if series_col else []) + (parts or [time_col])
    raw = read_tables(files, needed, series_col, cleaning.thousands, cleaning.sep,
                      cleaning.decimal)
    if parts:
        raw = assemble_time(raw, parts, time_col, source)
    return source, tidy(raw, time_col, series_col, features, tz, source, cleaning, targets,
                        skip=parts)


def _finish(df: pd.DataFrame, source: str, valid_range: dict | None, duplicates: str,
            min_steps: int) -> pd.DataFrame:
    """Plausibility bounds, duplicates and order: the steps every source shares."""
    if valid_range:
        df = mask_implausible(df, valid_range, source)
    report_unsorted(df, source)
    df = resolve_duplicates(df, duplicates, source)
    df = df.sort_values([SERIES, TIME], kind="stable").reset_index(drop=True)
    check_lengths(df, min_steps, source)
    return df
