"""A raw table -> the tidy long frame [series, time, *features]: keys, feature choice, targets,
duplicate (series, time) rows, order, plausibility bounds, series lengths.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecast.data.columns import Cleaning, as_text, clean_column, missing_to_nan
from forecast.data.files import missing_key_message, parse_times, row_origins, stem
from forecast.data.repair_log import note
from forecast.data.sources import SERIES, TIME

log = logging.getLogger(__name__)

DUPLICATES = ("mean", "first", "last", "error")


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
    sources = _feature_sources(raw, features, keys, source, wanted)
    columns = missing_to_nan(raw[sources], cleaning.na_values, source)
    encoded = {
        col: clean_column(columns[col], col, cleaning, _role(col, features, wanted), source)
        for col in sources
    }
    keyed = pd.DataFrame({SERIES: series(raw, series_col),
                          TIME: parse_times(raw[time_col], tz, source, time_col,
                                            cleaning.time_unit)}, index=raw.index)
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
                     source: str, targets: Sequence[str] = ()) -> list[str]:
    """The table's columns that the features come from, in table order (features=None) or in the
    order of `features`. With features=None, saved row indexes and row counters are left out."""
    if features is None:
        columns = [c for c in raw.columns if c not in keys]
        index_like = [c for c in columns
                      if c not in targets and (str(c).startswith("Unnamed:")
                                               or is_row_counter(raw[c]))]
        if index_like:
            note(log, logging.WARNING, "row_counter", len(index_like), "%s: column(s) %s count "
                 "the rows (integers rising by one, or a saved row index) and are not used as "
                 "inputs; list them in data.features to use them", source, index_like,
                 source=source)
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


# fewer rows than this: a few whole numbers rising by one may be real values (a small example)
COUNTER_MIN_ROWS = 24


def is_row_counter(column: pd.Series) -> bool:
    """A numeric column of integers that rise by exactly one from row to row (`No`, `index`):
    it numbers the rows and says nothing about the weather."""
    if (len(column) < COUNTER_MIN_ROWS or not pd.api.types.is_numeric_dtype(column)
            or column.isna().any()):
        return False
    values = column.to_numpy(dtype=float)
    return bool((np.diff(values) == 1).all() and (values % 1 == 0).all())


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
            note(log, logging.INFO, "absent_category", 1, "%s: category column '%s' absent "
                 "from this data: all 0", source, name, source=source, column=name)
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
        return as_text(values)
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
        note(log, logging.WARNING, "empty_keys", keyless.sum(), "%s: %d row(s) with an empty "
             "series or time cell dropped (%s)", source, int(keyless.sum()),
             row_origins(df.index[keyless]), source=source)
    return df[~keyless]


def report_unsorted(df: pd.DataFrame, source: str) -> None:
    """Log how many rows come before an earlier time of their series (load sorts them)."""
    back = df.groupby(SERIES, sort=False)[TIME].diff() < pd.Timedelta(0)
    if back.any():
        note(log, logging.INFO, "out_of_order", back.sum(), "%s: %d row(s) out of time order "
             "within their series; rows sorted by series and time", source, int(back.sum()),
             source=source)


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
    note(log, logging.WARNING, "duplicates", extra.sum(), "%s: %d duplicate (series, time) "
         "row(s) resolved by data.duplicates=%s, e.g. %s", source, int(extra.sum()), how,
         examples, source=source)
    if how == "mean":
        return df.groupby([SERIES, TIME], sort=False, as_index=False).mean(numeric_only=True)
    return df.drop_duplicates([SERIES, TIME], keep=how)


def _duplicate_examples(df: pd.DataFrame, n: int = 3) -> str:
    repeated = df[df.duplicated([SERIES, TIME], keep=False)]
    lines = []
    for (name, time), rows in list(repeated.groupby([SERIES, TIME], sort=False))[:n]:
        lines.append(f"'{name}' at {time} ({row_origins(rows.index)})")
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


def mask_implausible(df: pd.DataFrame, valid_range: dict,
                     source: str | None = None) -> pd.DataFrame:
    """Values outside each column's [low, high] become NaN; every replacement is logged."""
    df = df.copy()
    for col, (low, high) in valid_range.items():
        if col not in df.columns:
            continue
        bad = (df[col] < low) | (df[col] > high)
        if bad.any():
            examples = df.loc[bad, [SERIES, TIME, col]].head(3).to_dict("records")
            note(log, logging.WARNING, "out_of_range", bad.sum(), "%d value(s) of '%s' outside "
                 "the plausible range [%g, %g] treated as missing, e.g. %s", int(bad.sum()), col,
                 low, high, examples, source=source, column=col)
            df.loc[bad, col] = np.nan
    return df
