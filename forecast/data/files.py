"""A user's files -> one raw table: paths, globs and folders, CSV / Parquet reading, time columns.

Files are only read, never written. Errors name the file (and the line or row) and the fix;
`row_origin` says where a row came from for every message of the loaders.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from forecast.data.repair_log import note, record

log = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")


TABLE_SUFFIXES = (".csv", ".csv.gz", ".txt", *PARQUET_SUFFIXES)  # what a folder is searched for


# data.time_parts: a part's role comes from its column name (lower-cased).
TIME_UNITS = {
    "year": ("year", "yr", "yyyy"), "month": ("month", "mo", "mon", "mm"),
    "day": ("day", "dy", "dd"), "hour": ("hour", "hr", "hh"),
    "minute": ("minute", "min", "mi"), "second": ("second", "sec", "ss"),
}


TIMEDELTA_UNIT = {"hour": "h", "minute": "min", "second": "s"}


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


def read_table(path: str | Path, thousands: str | None = None, sep: str | None = None,
               decimal: str = ".") -> pd.DataFrame:
    """Read one CSV or Parquet file (R rows, C columns), with a clear error for an empty or
    unreadable file. Header names are stripped of surrounding spaces. `sep` and `decimal` are
    the CSV's field separator (None: a comma) and decimal mark."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ValueError(f"data.path: file '{path}' is empty; give a file with a header and rows")
    if path.name.lower().endswith(PARQUET_SUFFIXES):
        df = _read_parquet(path)
    else:
        df = _read_csv(path, thousands, sep, decimal)
    if df.empty:
        raise ValueError(f"data.path: file '{path}' has a header but no rows")
    df.columns = [str(c).strip() for c in df.columns]  # 'temp ' in a hand-edited header
    return df


def _read_csv(path: Path, thousands: str | None, sep: str | None = None,
              decimal: str = ".") -> pd.DataFrame:
    try:
        # skipinitialspace: "A, 2022-01-01, 1.5" is common in hand-written files
        return pd.read_csv(path, skipinitialspace=True, low_memory=False, thousands=thousands,
                           sep=sep or ",", decimal=decimal)
    except pd.errors.EmptyDataError:
        raise ValueError(f"data.path: file '{path}' is empty; give a file with a header and rows")\
            from None
    except UnicodeDecodeError:
        raise ValueError(f"data.path: file '{path}' is not UTF-8 text; save it as a UTF-8 CSV "
                         "or as Parquet") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"data.path: file '{path}' is not a readable CSV ({err}); check the "
                         f"separator (data.sep={sep or ','!r}) and quoting") from None


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
                thousands: str | None = None, sep: str | None = None,
                decimal: str = ".") -> pd.DataFrame:
    """Read and stack several files; rows keep their origin as the index (file, row).

    `needed` columns must be in every file (named with the file when absent). With
    series_col=None each file is one series named after the file (its stem).
    """
    frames = []
    for path in files:
        df = read_table(path, thousands, sep, decimal)
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
    joined = [s for s in (";", "\t", "|") if len(columns) == 1 and s in columns[0]]
    if joined:  # the whole header in one column: the fields are split by another character
        return (f"{path}: the header is one column {columns[0]!r}: the fields are separated by "
                f"{joined[0]!r}, not commas; set data.sep={joined[0]!r}"
                + (" (and data.decimal=',' for decimal commas)" if joined[0] == ";" else ""))
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
            note(log, logging.WARNING, "missing_columns", len(lacking), "%s lacks column(s) %s "
                 "that other files have: missing there", path, lacking, source=path)


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
            f"time, e.g. {example_rows(rows)}; fix those rows"
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


EPOCH_UNITS = {"s": 1e9, "ms": 1e12, "us": 1e15, "ns": 1e18}  # today, in each unit since 1970


def parse_times(values: pd.Series, tz: str | None, source: str, col: str,
                unit: str | None = None) -> pd.Series:
    """A column of times (R,) -> datetime (R,), NaT where the cell is empty.

    Naive times are local times in `tz` (UTC unless data.tz says otherwise); times with a UTC
    offset are converted to `tz`; tz=None leaves them as they are. With `unit` (data.time_unit),
    numbers are that many units since 1970-01-01 UTC.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        if unit is not None:
            return _epoch_times(values, unit, tz, source, col)
        raise ValueError(f"{source}: column '{col}' holds numbers, not times (e.g. "
                         f"{values.head(3).tolist()}); {_numeric_time_fix(values)}")
    times = _to_datetime(values)
    bad = values.notna() & times.isna()
    if bad.any():
        examples = values[bad].head(3).tolist()
        raise ValueError(f"{source}: column '{col}' has values that are not times: {examples} "
                         f"({row_origins(values.index[bad])}); fix them or set data.time_col")
    return _apply_tz(times, tz, source, col)


def _numeric_time_fix(values: pd.Series) -> str:
    """What to set for numeric times: the unit since 1970 they look like, or time parts."""
    typical = float(values.abs().median()) if values.notna().any() else 0.0
    for unit, today in EPOCH_UNITS.items():
        if today / 3 < typical < today * 3:  # 1990 to 2100
            return (f"they look like {unit} since 1970 (Unix time): set data.time_unit={unit}")
    return ("when the time is split over columns list them in data.time_parts, e.g. [year, "
            "month, day, hour]; for Unix times set data.time_unit (s, ms, us or ns)")


def _epoch_times(values: pd.Series, unit: str, tz: str | None, source: str,
                 col: str) -> pd.Series:
    if unit not in EPOCH_UNITS:
        raise ValueError(f"data.time_unit='{unit}' is unknown; choose one of "
                         f"{list(EPOCH_UNITS)}")
    try:
        times = pd.to_datetime(values, unit=unit, utc=True)
    except (ValueError, OverflowError) as err:
        raise ValueError(f"{source}: column '{col}' cannot be read as {unit} since 1970 "
                         f"({err}); check data.time_unit") from None
    return times if tz is None else _apply_tz(times, tz, source, col)


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
    if tz == "UTC":
        warn_naive(source, col)
    try:
        return times.dt.tz_localize(tz)
    except (ValueError, TypeError) as err:  # a DST gap or an ambiguous fall-back hour
        raise ValueError(
            f"{source}: column '{col}' holds local times that do not exist or are ambiguous in "
            f"data.tz='{tz}' ({err}); write the times with a UTC offset, or set data.tz=UTC if "
            "they are UTC"
        ) from None


# (source, column) pairs already warned about: a file read in record batches warns once
_WARNED_NAIVE: set[tuple[str, str]] = set()


def warn_naive(source: str, col: str) -> None:
    """Say once per file and column that its times, written without a zone, are read as UTC:
    local times read so would shift every step by the zone's offset without a word."""
    if (source, col) in _WARNED_NAIVE:  # said already, but a run collecting its repairs lists it
        record("naive_time", 1, source=source, column=col, once=True)
        return
    _WARNED_NAIVE.add((source, col))
    note(log, logging.WARNING, "naive_time", 1, "%s: column '%s' has times without a time zone, "
         "read as UTC; if they are local times set data.tz to their zone (e.g. "
         "data.tz=America/New_York)", source, col, source=source, column=col)


def row_origin(label) -> str:
    """Where a row came from: 'obs.csv line 5' (header = line 1), 'obs.parquet row 3', 'row 3'."""
    if isinstance(label, tuple):
        file, row = label
        if str(file).lower().endswith(PARQUET_SUFFIXES):
            return f"{Path(file).name} row {row}"
        return f"{Path(file).name} line {row + 2}"
    return f"row {label}"


def row_origins(labels, n: int = 3) -> str:
    labels = list(labels)
    more = f" and {len(labels) - n} more" if len(labels) > n else ""
    return ", ".join(row_origin(label) for label in labels[:n]) + more


def example_rows(rows: pd.DataFrame) -> str:
    return "; ".join(f"{row_origin(i)}: {row.to_dict()}" for i, row in rows.iterrows())
