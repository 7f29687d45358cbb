"""Long DataFrame -> Panel: a regular (N, T, F) array (NaN where missing), ids and times.

Also the chronological split, the Scaler fitted on the train span only, causal filling and the
model's inputs. pandas ends here: everything downstream sees numpy arrays.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecast.data.inputs import ModelInputs
from forecast.data.mapped import is_mapped, scratch, series_blocks
from forecast.data.repair_log import note
from forecast.data.sources import SERIES, TIME
from forecast.data.tidy import resolve_duplicates, target_list

log = logging.getLogger(__name__)


@dataclass
class Panel:
    values: np.ndarray  # (N, T, F) float32, NaN where not observed; may be an np.memmap
    ids: np.ndarray  # (N,) series names
    times: pd.DatetimeIndex  # (T,) regular grid
    features: list[str]  # (F,)
    freq: str
    scratch: str | None = None  # folder for arrays derived from a mapped panel; None: memory
    # per-series constants off the time axis (data.static): (N, S) float32, raw units
    static: np.ndarray | None = None
    static_names: list[str] = field(default_factory=list)

    @property
    def n_series(self) -> int:
        return self.values.shape[0]

    @property
    def n_steps(self) -> int:
        return self.values.shape[1]

    @property
    def observed(self) -> np.ndarray:
        """(N, T, F) bool, computed on each call from the NaNs of `values` (not stored: a
        quarter of the raw panel). Loops over large panels use `observed_steps`."""
        return ~np.isnan(self.values)


def observed_steps(values: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """(N, T) bool: every one of `columns` observed at that step; a block of series at a time."""
    out = np.empty(values.shape[:2], dtype=bool)
    for block in series_blocks(values):
        out[block] = ~np.isnan(values[block][:, :, list(columns)]).any(axis=2)
    return out


def fingerprint(panel: Panel) -> str:
    """sha256 of the panel's values, ids, times and feature names: equal fingerprints mean the
    run saw the same data."""
    h = hashlib.sha256()
    for block in series_blocks(panel.values):  # the same digest as hashing all bytes at once
        h.update(np.ascontiguousarray(panel.values[block]))
    for part in (panel.ids, panel.features, panel.times.astype(str), [panel.freq]):
        h.update("\x1f".join(map(str, part)).encode())
    return h.hexdigest()


def infer_freq(df: pd.DataFrame) -> pd.Timedelta:
    """The most common step between consecutive times within a series."""
    ordered = df.sort_values([SERIES, TIME], kind="stable")  # rows may come in any order
    steps = ordered.groupby(SERIES, sort=False)[TIME].diff()
    keep = steps > pd.Timedelta(0)
    steps, owner = steps[keep], ordered.loc[keep, SERIES]
    if steps.empty:
        raise ValueError(NO_STEP)
    check_one_step(steps.groupby(owner).agg(lambda s: s.mode().iloc[0]))
    return steps.mode().iloc[0]


NO_STEP = "cannot infer data.freq: every series has a single time step"


def check_one_step(by_series: pd.Series) -> None:
    """Series whose most common steps differ (hourly beside half-hourly) are refused: the
    coarser ones would silently become half missing on the finer grid."""
    if by_series.nunique() <= 1:
        return
    examples = {str(s): pd.tseries.frequencies.to_offset(step).freqstr
                for s, step in by_series.drop_duplicates().head(4).items()}
    raise ValueError(
        f"mixed frequencies: the series step at different rates, e.g. {examples}; resample the "
        "file to one frequency, or set data.freq to lay every series on that grid"
    )


def _to_offset(freq: str | None, df: pd.DataFrame) -> tuple[pd.Timedelta, str]:
    if freq is None:
        return inferred_offset(infer_freq(df))
    return offset(freq)


def inferred_offset(step: pd.Timedelta) -> tuple[pd.Timedelta, str]:
    """An inferred step -> (the step, its alias), logged as data.freq would be written."""
    alias = pd.tseries.frequencies.to_offset(step).freqstr
    log.info("data.freq inferred as '%s'", alias)
    return step, alias


def offset(freq: str) -> tuple[pd.Timedelta, str]:
    """data.freq -> (its fixed step, its alias); a calendar alias ('MS', 'W') is refused."""
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
        return pd.Timedelta(offset), offset.freqstr
    except (ValueError, TypeError):
        raise ValueError(
            f"data.freq='{freq}' is not a fixed pandas offset alias; use e.g. 'h', '30min', 'D'"
        ) from None


def off_grid_message(count: int, alias: str, start: pd.Timestamp, examples: list) -> str:
    """The error for `count` rows between the steps of the grid, with a few `examples`."""
    return (f"{count} row(s) are not on the '{alias}' grid starting {start} (mixed "
            f"frequencies?), e.g. {examples}. Resample the file or set data.freq.")


def to_panel(df: pd.DataFrame, freq: str | None = None) -> Panel:
    """Long [series, time, *features] -> Panel on the regular grid from the first to last time.

    Missing steps become NaN with observed=False; every series shares the grid.
    """
    df = resolve_duplicates(df, "mean", "to_panel")  # frames from loader.load have none left
    features = [c for c in df.columns if c not in (SERIES, TIME)]
    step, alias = _to_offset(freq, df)
    start, end = df[TIME].min(), df[TIME].max()
    offsets = (df[TIME] - start) / step
    off_grid = offsets != np.round(offsets)
    if off_grid.any():
        example = df.loc[off_grid, [SERIES, TIME]].head(3).to_dict("records")
        raise ValueError(off_grid_message(int(off_grid.sum()), alias, start, example))
    times = pd.date_range(start, end, freq=step)
    ids, series_pos = np.unique(df[SERIES].to_numpy(), return_inverse=True)
    time_pos = np.round(offsets.to_numpy()).astype(np.int64)
    values = np.full((len(ids), len(times), len(features)), np.nan, dtype=np.float32)
    values[series_pos, time_pos] = df[features].to_numpy(dtype=np.float32)
    log_gaps(ids, (~np.isnan(values)).sum(axis=1), len(times), features)
    return Panel(values, ids, times, features, alias)


def log_gaps(ids: np.ndarray, counts: np.ndarray, n_steps: int, features: Sequence[str]) -> None:
    """Log each series' missing steps per feature; counts (N, F): observed steps."""
    for i, name in enumerate(ids):
        missing = n_steps - counts[i]
        if missing.any():
            gaps = {f: int(m) for f, m in zip(features, missing, strict=True) if m}
            detail = ", ".join(f"{f}: {m}" for f, m in gaps.items())
            note(log, logging.INFO, "gaps", gaps, "series '%s' (%d steps) has gaps: %s", name,
                 n_steps, detail, source=name)


def split_points(n_steps: int, fractions: Sequence[float]) -> tuple[int, int]:
    """(train_end, val_end) time indices for train/val/test fractions of the time axis."""
    if len(fractions) != 3:
        raise ValueError(f"data.split={list(fractions)} needs three fractions: train, val, test")
    train, val, test = fractions
    if min(fractions) < 0 or abs(train + val + test - 1.0) > 1e-6 or train <= 0:
        raise ValueError(
            f"data.split={list(fractions)} must be three non-negative fractions "
            "(train, val, test) summing to 1, with train > 0"
        )
    train_end = int(round(n_steps * train))
    val_end = int(round(n_steps * (train + val)))
    return train_end, val_end


class Scaler:
    """Per-feature standardisation; NaNs are ignored when fitting and kept when transforming."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, features: Sequence[str]):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.features = list(features)

    @classmethod
    def fit(cls, values: np.ndarray, features: Sequence[str]) -> Scaler:
        """Fit on values (N, T_train, F): callers pass the train span only. A memory-mapped
        panel is read a block of series at a time (`fit_blocks`)."""
        from sklearn.preprocessing import StandardScaler

        if is_mapped(values):
            return cls.fit_blocks(values, features)
        flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
        _check_observed((~np.isnan(flat)).sum(axis=0), features)
        sk = StandardScaler().fit(flat)
        return cls(sk.mean_, sk.scale_, features)

    @classmethod
    def fit_blocks(cls, values: np.ndarray, features: Sequence[str]) -> Scaler:
        """StandardScaler's two-pass mean and variance, summed row by row in panel order over
        blocks of series. numpy sums the rows of a (R, F >= 2) array in that same order, so the
        result equals `fit` bit for bit; with one feature numpy sums pairwise, and the two agree
        to rounding."""
        count = sum((~np.isnan(values[b])).sum(axis=(0, 1)) for b in series_blocks(values))
        _check_observed(count, features)
        mean = _row_sum(values, lambda rows: rows) / count
        deviation = _row_sum(values, lambda rows: rows - mean)
        squares = _row_sum(values, lambda rows: (rows - mean) ** 2)
        var = (squares - deviation**2 / count) / count
        # sklearn's rule for constant features: scale 1 rather than a division by ~0
        eps = np.finfo(np.float64).eps
        constant = var <= count * eps * var + (count * mean * eps) ** 2
        return cls(mean, np.where(constant, 1.0, np.sqrt(var)), features)

    def transform(self, values: np.ndarray, columns: Sequence[int] | None = None) -> np.ndarray:
        idx = slice(None) if columns is None else list(columns)
        return ((values - self.mean[idx]) / self.scale[idx]).astype(np.float32)

    def inverse(self, values: np.ndarray, columns: Sequence[int] | None = None) -> np.ndarray:
        idx = slice(None) if columns is None else list(columns)
        return (values * self.scale[idx] + self.mean[idx]).astype(np.float32)

    def inverse_forecast(self, values: np.ndarray, columns: Sequence[int]) -> np.ndarray:
        """Scaled forecasts (K, H, n_targets), or (K, H, n_targets, Q) with quantiles last ->
        data units; each quantile is scaled like the point forecast."""
        if values.ndim == 4:
            moved = np.moveaxis(values, -1, 0)  # (Q, K, H, n_targets)
            return np.moveaxis(self.inverse(moved, columns), 0, -1)
        return self.inverse(values, columns)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "features": self.features}

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        return cls(d["mean"], d["scale"], d["features"])


def _check_observed(count: np.ndarray, features: Sequence[str]) -> None:
    empty = [f for f, n in zip(features, count, strict=True) if not n]
    if empty:
        raise ValueError(
            f"feature(s) {empty} have no observed value in the train span; drop them with "
            "data.features or move the split"
        )


def _row_sum(values: np.ndarray, term) -> np.ndarray:
    """Sum over the (series, step) rows of term(rows) (R, F) float64, NaN counted as 0, in the
    order of a single np.sum over all rows; a block of series at a time."""
    total = np.zeros(values.shape[-1])
    for block in series_blocks(values):
        rows = term(values[block].reshape(-1, values.shape[-1]).astype(np.float64))
        total = np.sum(np.vstack([total[None], np.nan_to_num(rows, nan=0.0)]), axis=0)
    return total


def fill_causal(values: np.ndarray, before_first: float = 0.0) -> np.ndarray:
    """Forward-fill NaNs along time (axis 1) of (N, T, F); never uses a later value.

    Steps before a series' first observation get `before_first` (0 = the train mean once scaled).
    """
    t = values.shape[1]
    # int32 positions and in-place updates keep the peak near 2x the input, not 5x
    last = np.where(np.isnan(values), np.int32(-1), np.arange(t, dtype=np.int32)[None, :, None])
    np.maximum.accumulate(last, axis=1, out=last)
    filled = np.take_along_axis(values, np.maximum(last, 0, out=np.empty_like(last)), axis=1)
    filled[last < 0] = before_first
    return filled.astype(values.dtype, copy=False)


CALENDAR = ("hour", "day_of_year", "day_of_week")


def calendar(times: pd.DatetimeIndex, parts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """(T, C) sin/cos columns of the hour of day and/or the day of year, and/or seven 0/1
    columns of the day of the week (Monday first: weekdays and weekends differ in steps, not
    along a circle); known for any time.

    The day of year only helps when training has seen the test period's season (several years).
    """
    unknown = [p for p in parts if p not in CALENDAR]
    if unknown:
        raise ValueError(f"data.calendar: {unknown} unknown; choose from {list(CALENDAR)}")
    cols, names = [], []
    if "hour" in parts:
        hour = times.hour + times.minute / 60
        cols += [np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)]
        names += ["hour_sin", "hour_cos"]
    if "day_of_year" in parts:
        doy = times.day_of_year - 1
        cols += [np.sin(2 * np.pi * doy / 365.25), np.cos(2 * np.pi * doy / 365.25)]
        names += ["doy_sin", "doy_cos"]
    if "day_of_week" in parts:
        cols += [(times.day_of_week == d).astype(float) for d in range(7)]
        names += [f"dow_{d}" for d in range(7)]
    if not cols:
        return np.zeros((len(times), 0), np.float32), []
    return np.stack(cols, axis=1).astype(np.float32), names


def build_inputs(
    panel: Panel, scaler: Scaler, calendar_parts: Sequence[str] = (), with_mask: bool = False
) -> ModelInputs:
    """The network's inputs (N, T, F_in) as their parts: scaled, causally filled features
    [+ calendar] [+ observed mask]. For a memory-mapped panel the features are mapped too."""
    cal, cal_names = calendar(panel.times, calendar_parts)
    names = list(panel.features) + cal_names
    if with_mask:
        names += [f"{f}_observed" for f in panel.features]
    features = scaled_filled(panel.values, scaler, panel.scratch)
    return ModelInputs(features, cal, names, panel.values if with_mask else None)


def scaled_filled(values: np.ndarray, scaler: Scaler, folder: str | None = None) -> np.ndarray:
    """fill_causal(scaler.transform(values)) (N, T, F) float32, a block of series at a time so
    that the float64 and index temporaries stay small; in a scratch file of `folder` if given."""
    out = (np.empty(values.shape, np.float32) if folder is None
           else scratch(folder, values.shape, np.float32))
    for block in series_blocks(values, out):
        out[block] = fill_causal(scaler.transform(values[block]))
    return out


def resolve_targets(targets: str | Sequence[str], features: Sequence[str]) -> list[str]:
    """`all` or a list of column names (repair.target_list reads the option) -> validated list
    of target names."""
    all_columns = isinstance(targets, str) and targets == "all"
    targets = list(features) if all_columns else target_list(targets)
    unknown = [t for t in targets if t not in features]
    if not targets or unknown:
        raise ValueError(
            f"targets={targets}: {unknown or 'empty'} not among the data's features "
            f"{list(features)}"
        )
    return targets


def season_length(times: pd.DatetimeIndex) -> int:
    """Steps per natural season: a day for sub-daily data, a week for daily data, else 1."""
    step = times[1] - times[0] if len(times) > 1 else pd.Timedelta(days=1)
    day = pd.Timedelta(days=1)
    if step < day:
        return int(day // step)
    return 7 if step == day else 1


def season_phase(times: pd.DatetimeIndex) -> np.ndarray:
    """(T,) int: step within the day (sub-daily data), day of year (daily), or month (coarser)."""
    step = times[1] - times[0] if len(times) > 1 else pd.Timedelta(days=1)
    if step < pd.Timedelta(days=1):
        return np.asarray((times - times.normalize()) // step, dtype=np.int64)
    if step == pd.Timedelta(days=1):
        return np.asarray(times.day_of_year - 1, dtype=np.int64)
    return np.asarray(times.month - 1, dtype=np.int64)
