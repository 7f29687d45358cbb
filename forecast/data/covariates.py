"""Covariates: what is known at a forecast origin besides the past.

- known columns (`data.known`): values known for the horizon at the origin (numerical weather
  forecasts, schedules); they stay features of the panel (so their past is a lookback input too)
  and their values at origin+1 .. origin+H are read as the known inputs of each lead, with the
  calendar of those steps. A target may not be known.
- static columns (`data.static`, `data.static_path`): one value per series (elevation,
  latitude, coast or inland); they leave the panel's time axis for `Panel.static` (N, S),
  standardised across the series, text one-hot encoded by the loader.

`Covariates` is what the windows read: the positions of the known inputs among the F_in input
columns and the scaled static values.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from forecast.data.columns import category_names
from forecast.data.files import read_table
from forecast.data.sources import SERIES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Covariates:
    """The covariates a window reads besides its lookback x (B, L, F_in):
    known (B, H, F_known): the input columns at `known` (known features, then the calendar)
    over the horizon; static (B, S): `static[series]`."""

    known: list[int]  # (F_known,) positions among the F_in input columns
    known_names: list[str]
    static: np.ndarray  # (N, S) float32, standardised across series
    static_names: list[str]

    @property
    def n_known(self) -> int:
        return len(self.known)

    @property
    def n_static(self) -> int:
        return self.static.shape[1]


def expand_names(names: Sequence[str], features: Sequence[str], option: str,
                 targets: Sequence[str] = ()) -> list[str]:
    """Option names -> panel columns: a name itself, the one-hot columns made from a text
    column (`terrain` -> `terrain_coast`, `terrain_inland`), or the columns but the targets
    that a pattern matches (`*`: every other column; `*forecast*`); unknown names refused."""
    out: list[str] = []
    for name in names:
        made = [f for f in features if f.startswith(f"{name}_")]
        if is_pattern(name):
            made = [f for f in features if fnmatch.fnmatchcase(f, name) and f not in targets]
        found = [name] if name in features else made
        if not found:
            raise ValueError(f"{option}: column '{name}' is not among the data's columns "
                             f"{list(features)}; name columns of the table (or remove it)")
        out += [f for f in found if f not in out]
    return out


def is_pattern(name: str) -> bool:
    """A name with the wildcards of fnmatch (`*`, `?`, `[`) matches columns; others name one."""
    return any(c in name for c in "*?[")


def static_values(panel) -> np.ndarray:
    """The panel's static values (N, S), raw units; (N, 0) for a panel without them."""
    return panel.static if panel.static is not None else np.zeros((panel.n_series, 0))


def check_known(known: Sequence[str], targets: Sequence[str]) -> None:
    """A target's future is what is forecast: it cannot also be a known input."""
    both = [k for k in known if k in targets]
    if both:
        raise ValueError(f"data.known {both} are also targets: a target's values over the "
                         "horizon are what is forecast, not known at the origin; remove them "
                         "from data.known (their past is read as a lookback input anyway)")


def read_static_table(path: str, series_col: str | None) -> pd.DataFrame:
    """data.static_path: a CSV / Parquet table with one row per series, keyed by the series
    column -> frame indexed by series id (str), numeric columns (text one-hot encoded)."""
    key = series_col or SERIES
    table = read_table(path)
    if key not in table.columns:
        raise ValueError(f"data.static_path '{path}' has no column '{key}' (data.series_col) "
                         f"to match its rows to the series; its columns are "
                         f"{list(table.columns)}")
    ids = table[key].astype(str)
    repeated = ids[ids.duplicated()].unique().tolist()
    if repeated:
        raise ValueError(f"data.static_path '{path}': series {repeated[:5]} have more than one "
                         "row; give one row per series")
    columns = {}
    for name in (c for c in table.columns if c != key):
        values = table[name]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            columns[name] = values.astype(float)
            continue
        categories = sorted(values.dropna().astype(str).unique())
        for category, made in zip(categories, category_names(name, categories), strict=True):
            columns[made] = (values.astype(str) == category).astype(float)
    if not columns:
        raise ValueError(f"data.static_path '{path}' holds only the series column '{key}'; add "
                         "columns of per-series facts (e.g. elevation, latitude)")
    return pd.DataFrame(columns).set_axis(ids.to_numpy())


def split_static(panel, names: Sequence[str], table: pd.DataFrame | None = None,
                 source: str = "the data"):
    """The panel with the static columns `names` moved off its time axis into `panel.static`
    (N, S), raw units, and `table`'s columns (read_static_table) added for its series. A
    column that varies within a series, or a series without a value, is refused by name."""
    names = expand_names(names, panel.features, "data.static") if names else []
    values, columns = [], []
    for name in names:
        col = panel.values[:, :, panel.features.index(name)]  # (N, T)
        with np.errstate(all="ignore"):
            low, high = np.nanmin(col, axis=1), np.nanmax(col, axis=1)
        varying = np.flatnonzero(high > low)
        if len(varying):
            i = varying[0]
            raise ValueError(
                f"data.static column '{name}' varies within series '{panel.ids[i]}' "
                f"({low[i]:g} .. {high[i]:g}) in {source}: a static column holds one value per "
                "series; list it in data.features (or data.known) instead")
        _refuse_missing(low, panel.ids, f"data.static column '{name}'", source)
        values.append(low)
        columns.append(name)
    if table is not None:
        ids = [str(i) for i in panel.ids]
        absent = [i for i in ids if i not in table.index]
        if absent:
            raise ValueError(f"data.static_path has no row for series {absent[:5]}"
                             f"{' ...' if len(absent) > 5 else ''}; add a row for each series")
        rows = table.loc[ids]
        for name in rows.columns:
            _refuse_missing(rows[name].to_numpy(float), panel.ids,
                            f"data.static_path column '{name}'", source)
            values.append(rows[name].to_numpy(np.float32))
            columns.append(name)
    keep = [i for i, f in enumerate(panel.features) if f not in names]
    static = (np.stack(values, axis=1).astype(np.float32) if values
              else np.zeros((panel.n_series, 0), np.float32))
    return replace(panel, values=np.ascontiguousarray(panel.values[:, :, keep]),
                   features=[panel.features[i] for i in keep], static=static,
                   static_names=columns)


def attach(panel, data) -> object:
    """A loaded Panel with the static covariates of `data` (a DataConfig: data.static,
    data.static_path) moved off its time axis; as it is without them."""
    if not data.static and not data.static_path:
        return panel
    if data.memmap:
        raise ValueError("data.static and data.static_path are not read with data.memmap; "
                         "give the per-series constants as columns of a panel that fits in "
                         "memory, or drop data.memmap")
    table = read_static_table(data.static_path, data.series_col) if data.static_path else None
    source = data.path if data.name == "csv" else data.name
    return split_static(panel, list(data.static), table, str(source))


def feature_names(data) -> list[str] | None:
    """data.features with the known and static columns added (they are columns of the table
    too; a pattern matches among the features); None (every column) as it is."""
    if data.features is None:
        return None
    named = [n for n in [*data.known, *data.static] if not is_pattern(n)]
    return list(dict.fromkeys([*data.features, *named]))


def _refuse_missing(values: np.ndarray, ids, what: str, source: str) -> None:
    missing = np.flatnonzero(np.isnan(values))
    if len(missing):
        raise ValueError(f"{what} has no value for series {[str(ids[i]) for i in missing[:5]]} "
                         f"in {source}; give every series its value")


def scale_static(static: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, S) -> (standardised (N, S) float32, mean (S,), scale (S,)); a column equal for every
    series gets scale 1 (it is 0 after centring)."""
    mean = static.mean(axis=0) if len(static) else np.zeros(static.shape[1])
    spread = static.std(axis=0) if len(static) else np.ones(static.shape[1])
    scale = np.where(spread > 0, spread, 1.0)
    return ((static - mean) / scale).astype(np.float32), mean, scale


def known_positions(input_names: Sequence[str], known: Sequence[str],
                    calendar_names: Sequence[str]) -> list[int]:
    """Positions among the F_in input columns of the known inputs: the known features, then the
    calendar (known for every lead whenever any column is); none without known columns."""
    if not known:
        return []
    names = list(input_names)
    return [names.index(k) for k in known] + [names.index(c) for c in calendar_names]
