"""What forecast-predict gives a run trained with covariates besides the lookback window: the
known inputs of the H steps after the last observed target (data.known, with their calendar)
and the static values of each series (data.static, data.static_path), built as training
built them (forecast.data.covariates).

The known values come from the rows past the last observed target in the data itself and from
the `future` table (`future=<file>`): the same series and time columns and the run's known
columns, read with the run's data options. Where both hold a value, `future`'s is used (a
table given for those steps is the newer word on them; a warning counts the values it changes).
Any value still missing over the horizon is refused in one message naming each column, time
and series.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.config import DataConfig
from forecast.data import loader
from forecast.data.panel import Panel, Scaler, calendar
from forecast.data.sources import SERIES, TIME
from forecast.runs.predict_data import (
    data_settings,
    future_times,
    last_observed,
    refuse_future_rows,
)

log = logging.getLogger(__name__)

SHOWN_MISSING = 8  # times listed per column in the missing-values message


@dataclass(frozen=True)
class Ahead:
    """The history to forecast from and what the net reads besides its lookback; None where
    the run has no such input (the net is then called without it)."""

    history: Panel  # the panel up to and including the last observed target
    known: np.ndarray | None  # (N, H, F_known) float32, scaled as training scaled them
    static: np.ndarray | None  # (N, S) float32, standardised with the run's mean and scale


def ahead_inputs(panel: Panel, description: dict, data: DataConfig, future: str | None,
                 source: str, seed: int = 0) -> Ahead:
    """The history of `panel` and the covariates of its horizon (see the module's docstring).
    A run without known inputs refuses rows past the last observed target, and `future`."""
    targets = description["targets"]
    static = static_inputs(description, [str(i) for i in panel.ids])
    if not description.get("known"):
        if future is not None:
            raise ValueError(
                f"future '{future}': this run reads no known inputs (it was trained without "
                "data.known), so values of the future are not used; leave future out, or train "
                "with data.known=[<columns known ahead>]")
        refuse_future_rows(panel, targets, source)
        return Ahead(panel, None, static)
    last = last_observed(panel, targets, source)
    history = dataclasses.replace(panel, values=panel.values[:, :last + 1],
                                  times=panel.times[:last + 1])
    lookback = description["lookback"]
    if history.n_steps < lookback:
        raise ValueError(f"{source}: {history.n_steps} time steps up to the last observed "
                         f"target, fewer than the run's lookback={lookback}; give at least "
                         f"{lookback} steps of history")
    times = future_times(panel.times[last], panel.freq, description["horizon"])
    names = known_features(description)
    values = _from_rows(panel, last, names, times)
    if future is not None:
        table = read_future(future, data, names, seed)
        values = _with_future(values, table, panel.ids, times, names, future)
    _refuse_missing(values, panel.ids, times, names, data, future)
    return Ahead(history, known_inputs(values, times, description, data.calendar), static)


def known_features(description: dict) -> list[str]:
    """The known columns among the run's features, in data.json's "known" order (the calendar
    names follow them there)."""
    return [k for k in description.get("known", []) if k in description["features"]]


def known_inputs(values: np.ndarray, times: pd.DatetimeIndex, description: dict,
                 calendar_parts: Sequence[str]) -> np.ndarray:
    """Raw known values (N, H, F_kf) at `times` (H,) -> the net's known inputs (N, H, F_known):
    scaled with the run's scaler, then the calendar of those times, in data.json's order."""
    names = known_features(description)
    cal, cal_names = calendar(times, list(calendar_parts or ()))
    if [*names, *cal_names] != description["known"]:
        raise ValueError(f"known inputs {[*names, *cal_names]} differ from the run's "
                         f"{description['known']}; keep the run's data.calendar")
    scaler = Scaler.from_dict(description["scaler"])
    scaled = scaler.transform(values, [description["features"].index(k) for k in names])
    cal = np.broadcast_to(cal.astype(np.float32), (len(values), *cal.shape))  # (N, H, C)
    return np.ascontiguousarray(np.concatenate([scaled, cal], axis=2), dtype=np.float32)


def static_inputs(description: dict, ids: Sequence[str]) -> np.ndarray | None:
    """(N, S) float32: data.json's raw static values of each series, standardised with the
    run's mean and scale; None for a run without static covariates."""
    static = description.get("static")
    if not static or not static.get("names"):
        return None
    values = static["values"]
    unknown = [i for i in ids if i not in values]
    if unknown:
        raise ValueError(f"series {unknown} have no static values in the run's data.json (the "
                         f"run has {sorted(values)}); forecast the run's series")
    raw = np.array([values[i] for i in ids], dtype=np.float64)  # (N, S)
    scaled = (raw - np.asarray(static["mean"])) / np.asarray(static["scale"])
    return scaled.astype(np.float32)


def _from_rows(panel: Panel, last: int, names: list[str],
               times: pd.DatetimeIndex) -> np.ndarray:
    """(N, H, F_kf) raw: the known columns of the panel's rows after `last`, NaN past them."""
    out = np.full((panel.n_series, len(times), len(names)), np.nan, np.float32)
    after = panel.values[:, last + 1:last + 1 + len(times)]  # (N, <=H, F)
    out[:, :after.shape[1]] = after[:, :, [panel.features.index(k) for k in names]]
    beyond = panel.n_steps - (last + 1 + len(times))
    if beyond > 0:
        log.info("%d time step(s) after the horizon (from %s) are not read", beyond,
                 panel.times[last + 1 + len(times)])
    return out


def read_future(future: str, data: DataConfig, names: list[str], seed: int = 0) -> pd.DataFrame:
    """The `future` table read by the run's loader with `data`, the options the data was read
    with: long [series, time, *names]."""
    options = dataclasses.replace(data_settings(data, {"path": str(future)}),
                                  features=list(names), known=[], static=[], static_path=None)
    try:
        table = loader.load(options, seed=seed)
    except ValueError as err:
        raise ValueError(f"future '{future}': {err} (it holds the columns "
                         f"{_columns(data, names)})") from None
    missing = [k for k in names if k not in table.columns]
    if missing:
        raise ValueError(f"future '{future}' lacks the known column(s) {missing}; it holds the "
                         f"columns {_columns(data, names)}")
    return table[[SERIES, TIME, *names]]


def _with_future(values: np.ndarray, table: pd.DataFrame, ids, times: pd.DatetimeIndex,
                 names: list[str], future: str) -> np.ndarray:
    """values (N, H, F_kf) with the `future` table's values at the horizon's times put in."""
    ids = [str(i) for i in ids]
    given = table[SERIES].astype(str)
    unknown = sorted(set(given) - set(ids))
    if unknown:
        raise ValueError(f"future '{future}': series {unknown[:5]} are not the run's {ids}; "
                         "give rows for the forecast's series")
    inside = table[TIME].isin(times)
    if not inside.all():
        log.info("future '%s': %d row(s) outside the forecast's %d steps (%s to %s) are not "
                 "read", future, int((~inside).sum()), len(times), times[0], times[-1])
    rows = table[inside].assign(**{SERIES: given[inside]}).set_index([SERIES, TIME])
    grid = pd.MultiIndex.from_product([ids, times], names=[SERIES, TIME])
    found = rows[names].reindex(grid).to_numpy(np.float32).reshape(values.shape)
    replaced = ~np.isnan(found) & ~np.isnan(values) & (found != values)
    if replaced.any():
        log.warning("future '%s' replaces %d known value(s) of the data's rows past the last "
                    "observed target", future, int(replaced.sum()))
    return np.where(np.isnan(found), values, found)


def _refuse_missing(values: np.ndarray, ids, times: pd.DatetimeIndex, names: list[str],
                    data: DataConfig, future: str | None) -> None:
    """One ValueError naming every known column with missing values, its times and series."""
    missing = np.isnan(values)  # (N, H, F_kf)
    if not missing.any():
        return
    parts = []
    for j, name in enumerate(names):
        at = np.flatnonzero(missing[:, :, j].any(axis=0))
        if not len(at):
            continue
        listed = [f"{times[t]} ({_names(ids, missing[:, t, j])})"
                  for t in at[:SHOWN_MISSING]]
        more = f" and {len(at) - SHOWN_MISSING} more" if len(at) > SHOWN_MISSING else ""
        parts.append(f"{name} at {'; '.join(listed)}{more}")
    given = f" (future '{future}' was read)" if future is not None else ""
    raise ValueError(
        f"the run reads known inputs over the {len(times)} steps after the last observed "
        f"target ({times[0]} to {times[-1]}), and some are missing{given}: "
        f"{'; '.join(parts)}. Give them as rows of future=<file> (columns "
        f"{_columns(data, names)}) or as rows past the last target in the data")


def _columns(data: DataConfig, names: list[str]) -> list[str]:
    """The columns a future table holds, as the user names them."""
    keys = [data.series_col] if data.series_col else []
    return [*keys, data.time_col, *names]


def _names(ids, rows: np.ndarray) -> str:
    """The series `rows` (N,) marks, as a message lists them."""
    if rows.all() and len(rows) > 1:
        return "every series"
    return "series " + ", ".join(str(ids[i]) for i in np.flatnonzero(rows))
