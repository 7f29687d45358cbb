"""What the Python API (forecast.api) hands a run: files for its DataFrames (`as_path`), and
`fit`'s known= and static= arguments checked against the data and turned into the data.*
options a run reads (data.known, data.static, data.static_path): the columns known over the
horizon at the origin, and the per-series constants as columns of the data, a table of one row
per series, or the path of one (forecast.data.covariates)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.data.sources import SERIES

STATIC = "static.parquet"  # a static= DataFrame, as the run reads it (in the run folder)


def known_columns(known: Any, data: Any, targets: Any) -> list[str]:
    """known= -> data.known: a column name or a list of them, each a column of a DataFrame
    `data` (a file's columns are checked when it is read) and not a target."""
    if known is None or (isinstance(known, list | tuple) and not known):
        return []
    names = _column_names("known", [known] if isinstance(known, str) else known, data,
                          "give a column name or a list of them (columns whose values over the "
                          "horizon are known at the origin)")
    both = names if targets == "all" else [k for k in names if k in _targets(targets)]
    if both:
        raise ValueError(f"known: {both} are also targets (targets={targets}); a target's "
                         "values over the horizon are what is forecast, not known at the origin "
                         "(its past is read anyway); name the targets, and the known columns "
                         "apart from them")
    return names


def static_option(static: Any, data: Any, known: Sequence[str], targets: Any,
                  series_col: str | None) -> tuple[list[str], pd.DataFrame | Path | None]:
    """static= -> (data.static, the table for data.static_path: a DataFrame to write or an
    existing path; None). A list names columns of the data (one value per series); a
    DataFrame has one row per series keyed by the series column; a str or path is a table's
    file."""
    if static is None or (isinstance(static, list | tuple) and not static):
        return [], None
    if isinstance(static, pd.DataFrame):
        return [], _static_table(static, series_col)
    if isinstance(static, str | os.PathLike):
        path = Path(static)
        if not path.is_file():
            hint = (f"; for the column '{static}' of the data give static=['{static}']"
                    if isinstance(data, pd.DataFrame) and static in data.columns else "")
            raise ValueError(f"static: no file '{static}' (a CSV/Parquet table with one row per "
                             f"series){hint}")
        return [], path
    names = _column_names("static", static, data, "give a list of column names of the data, a "
                          "DataFrame with one row per series, or the path of such a table")
    clash = [s for s in names if s in known or s in _targets(targets)]
    if clash:
        raise ValueError(f"static: {clash} are also known columns or targets; a static column "
                         "holds one value per series, name each column in one role")
    return names, None


def _column_names(argument: str, names: Any, data: Any, how: str) -> list[str]:
    """A non-empty list of column names, each a column of `data` when it is a DataFrame."""
    if isinstance(names, pd.DataFrame | str) or not isinstance(names, Sequence) or not names \
            or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{argument}={names!r}: {how}")
    if isinstance(data, pd.DataFrame):
        missing = [n for n in names if n not in data.columns]
        if missing:
            raise ValueError(f"{argument}: no column {missing} in the DataFrame (columns "
                             f"{list(data.columns)})")
    return list(dict.fromkeys(names))


def _targets(targets: Any) -> list[str]:
    """fit's targets as a list of names ([] for "all" or None)."""
    if targets in (None, "all"):
        return []
    return [targets] if isinstance(targets, str) else list(targets)


def write_static(table: pd.DataFrame, folder: Path) -> Path:
    """<run>/static.parquet, the table data.static_path points at."""
    path = folder / STATIC
    table.to_parquet(path, index=False)
    return path.resolve()


def _static_table(table: pd.DataFrame, series_col: str | None) -> pd.DataFrame:
    key = series_col or SERIES
    if key not in table.columns:
        raise ValueError(f"static: the DataFrame has no column '{key}' (data.series_col) to "
                         f"match its rows to the series; its columns are {list(table.columns)}")
    if len(table.columns) < 2:
        raise ValueError(f"static: the DataFrame holds only the series column '{key}'; add "
                         "columns of per-series facts (e.g. elevation, latitude)")
    ids = table[key].astype(str)
    repeated = ids[ids.duplicated()].unique().tolist()
    if repeated:
        raise ValueError(f"static: series {repeated[:5]} have more than one row in the "
                         "DataFrame; give one row per series")
    return table


def as_path(value: Any, path: Path, argument: str, frames: dict[str, str]) -> str | None:
    """A file the run's loader reads for `value`: a DataFrame written to `path` (noted in
    `frames`: path -> how messages name it), a path checked to exist, None as it is."""
    if value is None:
        return None
    if isinstance(value, pd.DataFrame):
        value.to_parquet(path, index=False)
        frames[str(path)] = f"{argument} (the DataFrame)"
        return str(path)
    if not isinstance(value, str | os.PathLike):
        raise ValueError(f"{argument}: a long DataFrame (pandas or polars) or a CSV/Parquet "
                         f"path, not {type(value).__name__}")
    return str(existing(value, argument))


def existing(path: str | os.PathLike, argument: str = "data") -> Path:
    """The path, refused by name when it is missing (a glob is left to the loader)."""
    path = Path(path)
    if not path.exists() and not any(c in str(path) for c in "*?["):
        raise FileNotFoundError(f"{argument}: no file '{path}'")
    return path
