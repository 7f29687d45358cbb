"""A panel prepared for a run: split points, the scaler fitted on the train span, the model
inputs and the window index of each split (`prepare` -> `Prepared`), and what is read back
from it: loaders, actuals, forecasts in data units."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from forecast.data import covariates as cv
from forecast.data.inputs import FeatureColumns, ModelInputs
from forecast.data.mapped import series_blocks
from forecast.data.panel import (
    Panel,
    Scaler,
    build_inputs,
    fill_causal,
    observed_steps,
    resolve_targets,
    split_points,
)
from forecast.data.windows import PanelDataModule, window_index

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """What a run keeps: per (series, step) only the panel's values and the scaled features."""

    panel: Panel
    scaler: Scaler
    model_inputs: ModelInputs  # (N, T, F_in) as parts, joined window by window
    targets: list[str]
    target_cols: list[int]  # positions of the targets among panel.features
    bounds: dict[str, tuple[int, int]]  # split -> [start, end) of the time axis
    indices: dict[str, np.ndarray]  # split -> (K, 2) windows
    dropped: dict[str, int]
    lookback: int
    horizon: int
    covariates: cv.Covariates | None = None  # known inputs over the horizon, static (N, S)

    @property
    def input_names(self) -> list[str]:
        return self.model_inputs.names


def target_history(panel: Panel, columns: list[int], end: int | None = None) -> np.ndarray:
    """(N, end, n_targets): the target columns of steps [0, end) in data units, causally filled
    (NaN before a series' first value); a block of series at a time."""
    values = panel.values[:, :end]
    out = np.empty((*values.shape[:2], len(columns)), np.float32)
    for block in series_blocks(values):
        out[block] = fill_causal(values[block][:, :, columns], before_first=np.nan)
    return out


def prepare(
    panel: Panel,
    lookback: int,
    horizon: int,
    targets: str | Sequence[str],
    split: Sequence[float] = (0.7, 0.1, 0.2),
    calendar: Sequence[str] = ("hour", "day_of_year"),
    mask_features: bool = False,
    stride: int = 1,
    ends: tuple[int, int, int] | None = None,
    known: Sequence[str] = (),
    origin_hour: int | None = None,
) -> Prepared:
    """Split the panel in time, fit the scaler on the train span, and index the windows.

    `ends` = (train_end, val_end, test_end) time indices override the `split` fractions
    (a backtest fold); steps after test_end are not used at all. `stride` spaces the origins of
    the test windows only (train and validation windows always start every step), and
    `origin_hour` keeps the test windows whose first forecast step is at that hour of day.
    `known`: columns whose values over the horizon are inputs (covariates.py); a window whose
    known values are missing over its horizon is dropped like one with a missing target.
    """
    targets = resolve_targets(targets, panel.features)
    known = cv.expand_names(known, panel.features, "data.known", targets) if known else []
    cv.check_known(known, targets)
    target_cols = [panel.features.index(t) for t in targets]
    if ends is None:
        ends = (*split_points(panel.n_steps, split), panel.n_steps)
    train_end, val_end, test_end = ends
    bounds = {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, test_end)}
    scaler = Scaler.fit(panel.values[:, :train_end], panel.features)
    check_target_spans(panel, targets, target_cols, train_end)
    inputs = build_inputs(panel, scaler, calendar, mask_features)
    covariates = _covariates(panel, inputs, known, calendar)
    target_observed = observed_steps(panel.values, target_cols)
    if known:  # the known values of a window's leads are inputs: observed like its targets
        target_observed &= observed_steps(panel.values, [panel.features.index(k) for k in known])
    test_steps = first_steps_at(panel.times, origin_hour)
    indices, dropped = {}, {}
    for name, (start, end) in bounds.items():
        test = name == "test"
        indices[name], dropped[name] = window_index(
            target_observed, lookback, horizon, start, end, stride if test else 1,
            test_steps if test else None)
        if len(indices[name]) == 0:  # val: early stopping and checkpoints need its loss
            raise ValueError(
                f"the {name} split [{start}, {end}) of {panel.n_steps} steps holds no window of "
                f"lookback + horizon = {lookback + horizon} steps with observed targets; "
                "shorten lookback/horizon or change data.split"
            )
    log.info("windows: %s; dropped for missing targets: %s",
             {k: len(v) for k, v in indices.items()}, dropped)
    return Prepared(
        panel=panel, scaler=scaler, model_inputs=inputs, targets=targets,
        target_cols=target_cols, bounds=bounds, indices=indices, dropped=dropped,
        lookback=lookback, horizon=horizon, covariates=covariates,
    )


def _covariates(panel: Panel, inputs: ModelInputs, known: list[str], calendar: Sequence[str]):
    """The windows' covariates; None without known or static columns."""
    static = cv.static_values(panel)
    if not known and not static.shape[1]:
        return None
    calendar_names = inputs.names[len(panel.features):len(panel.features)
                                  + inputs.calendar.shape[-1]]
    positions = cv.known_positions(inputs.names, known, calendar_names)
    scaled, _, _ = cv.scale_static(static)
    names = [inputs.names[p] for p in positions]
    return cv.Covariates(positions, names, scaled, list(panel.static_names))


def first_steps_at(times, origin_hour: int | None) -> np.ndarray | None:
    """(T,) bool: the steps at `origin_hour` o'clock sharp, where a day-ahead forecast's first
    lead falls; None: any step."""
    if origin_hour is None:
        return None
    if not 0 <= origin_hour <= 23:
        raise ValueError(f"evaluate.origin_hour={origin_hour} must be an hour of the day, 0-23")
    at = (times.hour == origin_hour) & (times.minute == 0) & (times.second == 0)
    if not at.any():
        raise ValueError(f"evaluate.origin_hour={origin_hour}: no time step of the data falls "
                         f"at {origin_hour:02d}:00; set it to an hour on the data's grid or null")
    return np.asarray(at)


# squared errors of larger values overflow float32, and every score would be inf
LARGEST_TARGET = 1e18


def check_target_spans(panel: Panel, targets: list[str], target_cols: list[int],
                       train_end: int) -> None:
    """Refuse a target that is constant over the train span (nothing to learn; MASE and skill
    undefined) or whose values are too large to score, naming the column and the fix."""
    for name, col in zip(targets, target_cols, strict=True):
        train = panel.values[:, :train_end, col]
        low, high = np.nanmin(train), np.nanmax(train)
        if low == high:
            raise ValueError(
                f"target '{name}' is constant ({low:g}) over the train span [0, {train_end}): "
                "there is nothing to learn and its scores are undefined; drop it from targets "
                "or change data.split")
        if max(abs(low), abs(high)) > LARGEST_TARGET:
            raise ValueError(
                f"target '{name}' reaches {max(abs(low), abs(high)):.3g} in the train span: its "
                f"squared errors overflow float32 (above {LARGEST_TARGET:g}); rescale the "
                "column (e.g. in other units) before forecasting it")


def data_description(prep: Prepared) -> dict:
    """What forecast-predict needs besides the weights: the fitted scaler and the data's shape
    (saved as <run>/checkpoints/data.json; plain JSON, no pickle)."""
    panel = prep.panel
    return {
        "scaler": prep.scaler.to_dict(),
        "features": list(panel.features),
        "input_names": list(prep.input_names),
        "targets": list(prep.targets),
        "ids": [str(i) for i in panel.ids],
        "freq": panel.freq,
        "first_time": str(panel.times[0]),
        "last_time": str(panel.times[-1]),
        "lookback": prep.lookback,
        "horizon": prep.horizon,
        **_covariate_description(prep),
    }


def _covariate_description(prep: Prepared) -> dict:
    """data.json's covariates: the known input names, the static values per series (raw) and
    their scaling, so forecast-predict rebuilds both; nothing for a run without them."""
    cov = prep.covariates
    if cov is None:
        return {}
    panel = prep.panel
    static = cv.static_values(panel)
    _, mean, scale = cv.scale_static(static)  # as the windows' static values were scaled
    return {"known": list(cov.known_names),
            "static": {"names": list(cov.static_names), "mean": mean.tolist(),
                       "scale": scale.tolist(),
                       "values": {str(i): row.tolist() for i, row in zip(panel.ids, static,
                                                                          strict=True)}}}


def datamodule(
    prep: Prepared, batch_size: int = 256, num_workers: int = 0, seed: int = 0,
    windows_per_epoch: int | None = None, input_cols: list[int] | None = None,
) -> PanelDataModule:
    """Loaders over prep's windows; input_cols: the feature columns the net reads, when it
    reads only some (RegLSTM.input_columns; None: all F_in inputs)."""
    return PanelDataModule(prep.model_inputs, prep.target_cols, prep.indices, prep.lookback,
                           prep.horizon, batch_size, num_workers, seed, windows_per_epoch,
                           input_cols, prep.covariates)


def actuals(prep: Prepared) -> np.ndarray:
    """The test windows' target values (K, H, n_targets), data units."""
    values = FeatureColumns(prep.panel.values, prep.target_cols)
    return values.gather(prep.indices["test"], prep.lookback, prep.horizon)


def to_units(prep: Prepared, scaled: np.ndarray) -> np.ndarray:
    """Scaled forecasts (K, H, n_targets[, Q]) -> data units."""
    return prep.scaler.inverse_forecast(scaled, prep.target_cols)
