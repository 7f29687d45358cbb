"""Repairs of one column of a user's table: missing-value codes, numbers stored as text, trace
precipitation, wind directions (degrees or compass points) -> sin/cos, text categories -> one-hot.

Every repair is logged with its count (`repair_log.note`); `Cleaning` carries the options that
steer them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.data.repair_log import note, record

log = logging.getLogger(__name__)
FLOAT32_MAX = float(np.finfo(np.float32).max)

# Cells read as missing in any file (compared stripped and lower-cased); pandas already reads
# most of them as NaN in a CSV, but not in Parquet and not with surrounding spaces.
NA_STRINGS = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a", "-", "--", "?"})


TRACE_CODE = "T"  # "trace amount" of precipitation: measurable as zero


COMPASS = {point: 22.5 * i for i, point in enumerate(
    "N NNE NE ENE E ESE SE SSE S SSW SW WSW W WNW NW NNW".split())}


DIRECTION_HINTS = ("wind_dir", "direction")  # such columns hold angles -> sin/cos


@dataclass(frozen=True)
class Cleaning:
    """How a file is read and how `tidy` repairs its columns; the data.* options of the same
    names."""

    na_values: tuple = ()  # sentinels read as missing, e.g. (-9999,)
    trace_cols: tuple[str, ...] = ()  # columns where 'T' means a trace amount -> 0.0
    direction_cols: tuple[str, ...] = ()  # angle columns besides those named *wind_dir*/*direction*
    max_categories: int = 10  # text columns with at most this many values are one-hot encoded
    thousands: str | None = None  # thousands separator inside numbers stored as text
    # how a CSV file is read, and numeric times: data.sep, data.decimal, data.time_unit
    sep: str | None = None  # None: a comma
    decimal: str = "."
    time_unit: str | None = None  # numeric times count this unit since 1970 (s, ms, us, ns)


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
    _log_counts(source, "missing_cells", "empty or 'NA' cells read as missing", empty)
    _log_counts(source, "sentinels", f"sentinel values {list(na_values)} read as missing",
                sentinel)
    return pd.DataFrame(out, index=frame.index)


def _missing_masks(values: pd.Series, numbers: list[float],
                   texts: set[str]) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_numeric_dtype(values):
        no = pd.Series(False, index=values.index)
        return no, values.isin(numbers) if numbers else no
    text = as_text(values)
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
        return finite_or_missing(values.astype("float64"), name, source).to_frame(name)
    if pd.api.types.is_datetime64_any_dtype(values):
        return _unusable(name, "holds times", role, source)
    numbers = text_to_numbers(values, cleaning.thousands)
    present, parsed = int(values.notna().sum()), int(numbers.notna().sum())
    if present == 0 or 2 * parsed > present:  # mostly numbers: the rest is noise
        _log_text_numbers(values, numbers, name, source)
        return finite_or_missing(numbers, name, source).to_frame(name)
    return encode_text(values, name, cleaning.max_categories, role, source)


def finite_or_missing(values: pd.Series, name: str, source: str) -> pd.Series:
    """inf, -inf and numbers beyond float32's range (the panel would hold them as inf) -> NaN,
    (R,) -> (R,); the count is logged with the column, as every other repair."""
    bad = values.notna() & ~(values.abs() <= FLOAT32_MAX)
    if bad.any():
        note(log, logging.WARNING, "infinite", bad.sum(), "%s: column '%s': %d infinite or "
             "out-of-range value(s) (beyond +-%.1e) read as missing", source, name,
             int(bad.sum()), FLOAT32_MAX, source=source, column=name)
    return values.mask(bad)


def is_number(value: object) -> bool:
    """Whether float(value) works: the data.na_values entries that are numeric sentinels."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def as_text(values: pd.Series) -> pd.Series:
    """Cells as stripped text (R,), missing cells stay missing (pandas 2 and 3 alike)."""
    return values.astype(str).str.strip().where(values.notna())


def trace_to_zero(values: pd.Series, name: str, source: str) -> pd.Series:
    """'T' (a trace amount, too small to measure) -> 0; other cells unchanged."""
    if pd.api.types.is_numeric_dtype(values):
        return values
    is_trace = as_text(values).str.upper().eq(TRACE_CODE).fillna(False).astype(bool)
    if is_trace.any():
        note(log, logging.INFO, "trace_codes", is_trace.sum(), "%s: column '%s': %d trace "
             "code(s) '%s' read as 0.0", source, name, int(is_trace.sum()), TRACE_CODE,
             source=source, column=name)
    return values.mask(is_trace, "0")


def text_to_numbers(values: pd.Series, thousands: str | None = None) -> pd.Series:
    """Numbers stored as text (R,) -> float (R,); text that is not a number -> NaN."""
    text = as_text(values)
    if thousands:
        text = text.str.replace(thousands, "", regex=False)
    return pd.to_numeric(text, errors="coerce").astype("float64")


def _log_text_numbers(values: pd.Series, numbers: pd.Series, name: str, source: str) -> None:
    bad = values.notna() & numbers.isna()
    if numbers.notna().any():
        n = int(numbers.notna().sum())
        note(log, logging.INFO, "text_numbers", n, "%s: column '%s': %d number(s) stored as text "
             "read as numbers", source, name, n, source=source, column=name)
    if bad.any():
        note(log, logging.WARNING, "not_numbers", bad.sum(), "%s: column '%s': %d cell(s) that "
             "are not numbers read as missing, e.g. %s", source, name, int(bad.sum()),
             _distinct(values[bad]), source=source, column=name)


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
        text = as_text(values).str.upper()
        compass = text.map(COMPASS).astype("float64")
        degrees = compass.fillna(pd.to_numeric(text, errors="coerce"))
    bad = values.notna() & ~degrees.between(0, 360)
    degrees = degrees.mask(bad)
    n_compass = int(compass.notna().sum())
    # counted: the compass points read as degrees (degrees encoded as sin/cos are no repair)
    note(log, logging.INFO, "compass_points", n_compass, "%s: column '%s': %d compass point(s) "
         "and %d degree value(s) encoded as %s_sin, %s_cos", source, name, n_compass,
         int(degrees.notna().sum()) - n_compass, name, name, source=source, column=name)
    if bad.any():
        note(log, logging.WARNING, "bad_directions", bad.sum(), "%s: column '%s': %d value(s) "
             "neither degrees 0-360 nor compass points read as missing, e.g. %s", source, name,
             int(bad.sum()), _distinct(values[bad]), source=source, column=name)
    radians = np.deg2rad(degrees)
    return pd.DataFrame({f"{name}_sin": np.sin(radians), f"{name}_cos": np.cos(radians)},
                        index=values.index)


DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+$")


def text_hint(values: pd.Series, name: str) -> str:
    """The option that reads a text column as what it most likely is, or ''."""
    text = as_text(values).dropna()
    if text.empty:
        return ""
    if text.str.upper().isin([*COMPASS, "VRB", "C", "CALM"]).mean() > 0.9:
        return (f"; it looks like compass directions: set data.direction_cols=[{name}] to "
                "encode them as sin/cos")
    if text.str.match(DECIMAL_COMMA).mean() > 0.5:
        return ("; it looks like numbers with a decimal comma: set data.decimal=',' (and "
                "data.sep=';' if the fields are separated by semicolons)")
    return ""


def encode_text(values: pd.Series, name: str, max_categories: int, role: str,
                source: str) -> pd.DataFrame:
    """Text categories (R,) -> one-hot `<name>_<category>` (R, K) when K <= max_categories and
    some value repeats; otherwise the column is dropped (R, 0), or refused when asked for."""
    text = as_text(values).str.lower()  # 'Rain' and 'rain' are one category
    categories = sorted(text.dropna().unique())
    hint = text_hint(values, name)
    if role == "target":
        raise ValueError(
            f"{source}: target '{name}' is text, not numbers (e.g. {categories[:3]}); "
            f"choose a numeric column in targets=[...]{hint}"
        )
    if hint:  # read as categories or dropped, but most likely meant as numbers or angles
        log.warning("%s: column '%s' is text, not numbers%s", source, name, hint)
    if len(categories) > max_categories:
        return _unusable(name, f"is text with {len(categories)} distinct values (more than "
                               f"data.max_categories={max_categories})", role, source, hint)
    if len(categories) == int(text.notna().sum()):  # no value repeats: notes, not classes
        return _unusable(name, f"is free text ({len(categories)} distinct values in "
                               f"{len(categories)} cells)", role, source, hint)
    names = category_names(name, categories)
    out = pd.DataFrame({col: text.eq(cat).astype("float64").where(text.notna())
                        for col, cat in zip(names, categories, strict=True)}, index=values.index)
    out.attrs["one_hot"] = True  # lets a later file lack a category (-> 0) without an error
    note(log, logging.INFO, "one_hot", len(categories), "%s: column '%s': text with %d "
         "categories one-hot encoded as %s", source, name, len(categories), names,
         source=source, column=name)
    return out


def category_names(name: str, categories: Sequence[str]) -> list[str]:
    slugs = [re.sub(r"[^0-9a-z]+", "_", str(c).lower()).strip("_") or "blank"
             for c in categories]
    if len(set(slugs)) < len(slugs):  # 'a b' and 'a-b': keep them apart by position
        slugs = [f"{s}_{i}" for i, s in enumerate(slugs)]
    return [f"{name}_{s}" for s in slugs]


def _unusable(name: str, why: str, role: str, source: str, hint: str = "") -> pd.DataFrame:
    if role != "auto":
        raise ValueError(f"{source}: column '{name}' {why}, so it cannot be a {role}; "
                         f"remove it from data.features / targets{hint}")
    if hint:  # the hint's warning said it; dropped all the same
        record("dropped_column", 1, source=source, column=name)
    else:
        note(log, logging.WARNING, "dropped_column", 1, "%s: column '%s' %s: dropped (list the "
             "columns to use in data.features)", source, name, why, source=source, column=name)
    return pd.DataFrame()


def _distinct(values: pd.Series, n: int = 5) -> list:
    return list(pd.unique(values.astype(str)))[:n]


def _log_counts(source: str, kind: str, what: str, counts: dict[str, int]) -> None:
    counts = {c: n for c, n in counts.items() if n}
    if counts:
        note(log, logging.INFO, kind, counts, "%s: %s: %s", source, what, counts, source=source)
