"""The test windows scored a block at a time: the baselines fitted once, then the model and every
baseline forecast and scored block by block, so that memory stays near the size of the panel
whatever the number of test windows (only the model's own forecasts are held whole).

Forecasts and actuals are (K, H, n_targets) in data units unless `space='scaled'`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from forecast.data.inputs import FeatureColumns
from forecast.data.panel import season_phase
from forecast.data.prepared import Prepared, target_history, to_units
from forecast.evaluation import baselines as bl
from forecast.evaluation import metrics as mt
from forecast.models.quantiles import point

log = logging.getLogger(__name__)
BLOCK = 2048  # test windows per block: a few MB per forecaster at H=96 x 21 targets

Forecaster = Callable[[np.ndarray], np.ndarray]  # test window rows (k, 2) -> (k, H, n_targets)


@dataclass
class BaselineWindows:
    """What the baselines read of a run's test windows; the filled target history is built once,
    on first use, for those that need it."""

    prep: Prepared
    season: int
    seed: int = 0

    @cached_property
    def history(self) -> np.ndarray:
        """(N, T, n_targets) causally filled targets up to the end of the test span, data units."""
        prep = self.prep
        return target_history(prep.panel, prep.target_cols, prep.bounds["test"][1])


def _persistence(w: BaselineWindows) -> Forecaster:
    return lambda index: bl.persistence(w.history, index, w.prep.lookback, w.prep.horizon)


def _seasonal_naive(w: BaselineWindows) -> Forecaster:
    return lambda index: bl.seasonal_naive(w.history, index, w.prep.lookback, w.prep.horizon,
                                           w.season)


def _climatology(w: BaselineWindows) -> Forecaster:
    prep = w.prep
    phase = season_phase(prep.panel.times)
    means = bl.climatology_means(prep.panel.values[:, :, prep.target_cols], phase,
                                 prep.bounds["train"][1])
    return lambda index: bl.climatology(means, phase, index, prep.lookback, prep.horizon)


def _known(prep: Prepared) -> list[int]:
    """Positions of the known inputs among the input columns (none without data.known)."""
    return list(prep.covariates.known) if prep.covariates is not None else []


def _ridge(w: BaselineWindows) -> Forecaster:
    prep, inputs = w.prep, w.prep.model_inputs
    # train windows have every target observed: the scaled targets are those input columns
    ridge = bl.RidgeBaseline(known=_known(prep)).fit(inputs, inputs.columns(prep.target_cols),
                                   prep.indices["train"], prep.lookback, prep.horizon, w.seed)
    return lambda index: prep.scaler.inverse(ridge.predict(inputs, index, prep.lookback),
                                             prep.target_cols)


def _rlinear(w: BaselineWindows) -> Forecaster:
    prep = w.prep
    targets = prep.model_inputs.columns(prep.target_cols)  # (N, T, n_targets) scaled, filled
    known = _known(prep)
    rows = (lambda index: bl.known_rows(prep.model_inputs, index, prep.lookback,  # noqa: E731
                                        prep.horizon, known)) if known else None
    linear = bl.LinearBaseline(known=rows).fit(targets, prep.indices["train"], prep.indices["val"],
                                     prep.lookback, prep.horizon, w.seed)
    log.info("rlinear: windows normalised by their %s (chosen on validation)", linear.kind)
    return lambda index: prep.scaler.inverse(linear.predict(targets, index, prep.lookback),
                                             prep.target_cols)


# evaluate.baselines names -> fitted forecasters of test windows, data units
BASELINES = {"persistence": _persistence, "seasonal_naive": _seasonal_naive,
             "climatology": _climatology, "ridge": _ridge, "rlinear": _rlinear}


def baseline_forecasters(prep: Prepared, names: Sequence[str], season: int,
                         seed: int = 0) -> dict[str, Forecaster]:
    """Each named baseline, fitted: a function of test window rows (k, 2) -> (k, H, n_targets)."""
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"evaluate.baselines: {unknown} unknown; choose from {list(BASELINES)}")
    windows = BaselineWindows(prep, season, seed)
    return {name: BASELINES[name](windows) for name in BASELINES if name in names}


def blocks(n: int, size: int = BLOCK) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def evaluate(
    prep: Prepared,
    model_scaled: np.ndarray,
    baseline: Mapping[str, np.ndarray | Forecaster],
    season: int,
    space: str = "original",
    quantiles: Sequence[float] | None = None,
    block: int = BLOCK,
) -> dict:
    """metrics.json's "model" and "baselines" parts, scored on the test windows a block at a
    time. model_scaled: (K, H, n_targets[, Q]) scaled forecasts; baseline: name -> forecasts
    (K, H, n_targets) in data units, or a fitted forecaster (baseline_forecasters)."""
    if space not in ("original", "scaled"):
        raise ValueError(f"evaluate.space='{space}' must be 'original' or 'scaled'")
    index = prep.indices["test"]
    ids, horizon, n_targets = prep.panel.ids, prep.horizon, len(prep.targets)
    to_space = (lambda a: a) if space == "original" else (  # noqa: E731
        lambda a: prep.scaler.transform(a, prep.target_cols))
    train_history = target_history(prep.panel, prep.target_cols, prep.bounds["train"][1])
    scale = mt.seasonal_scale(to_space(train_history), season)
    totals = {name: mt.Totals(len(ids), horizon, n_targets, scale)
              for name in ("model", *baseline)}
    intervals = mt.QuantileTotals(quantiles) if quantiles else None
    actual_of = FeatureColumns(prep.panel.values, prep.target_cols)
    for rows in blocks(len(index), block):
        part, series = index[rows], index[rows, 0]
        actual = to_space(actual_of.gather(part, prep.lookback, horizon))
        units = to_units(prep, model_scaled[rows])
        totals["model"].add(actual, to_space(point(units, quantiles)), series)
        if intervals is not None:
            intervals.add(actual, units if space == "original" else model_scaled[rows])
        for name, forecast in baseline.items():
            values = forecast(part) if callable(forecast) else forecast[rows]
            totals[name].add(actual, to_space(values), series)
    scores = {name: t.summary(ids, prep.targets) for name, t in totals.items()}
    if "persistence" in totals:
        reference = np.float64(totals["persistence"].mse())
        with np.errstate(divide="ignore", invalid="ignore"):  # an exact persistence: undefined
            for name, t in totals.items():
                scores[name]["skill"] = float(1.0 - t.mse() / reference)
    if intervals is not None:
        scores["model"].update(intervals.scores())
    model = scores.pop("model")
    return {"model": model, "baselines": scores, "space": space}
