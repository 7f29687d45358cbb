"""What a run's metrics.json holds, as one record (`Scores`), and why a score in it is undefined.

A forecaster's scores M are a nested dict: {"mae", "mse", "rmse", "smape", "mase", "skill"[,
quantile and interval scores], "by_lead": {score: [H values]}, "by_series": {id: {score: v}},
"by_target": {name: {score: v}}}, in data units unless the run scores in scaled space.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields, replace

import numpy as np

# why a score comes out undefined, by its name
UNDEFINED_BECAUSE = {
    "mase": "the train span's seasonal-naive MAE is 0 (a series constant there)",
    "skill": "persistence's MSE is 0",
    "smape": "actual and forecast are both 0",
}


@dataclass(frozen=True, kw_only=True)
class Scores:
    """A run's scores on its test windows and what they were made of, metrics.json's content
    (`to_json`). A single run sets every field but the backtest ones; a backtest fold adds
    `ends` (train_end, val_end, test_end) and `test_start`; a backtest's summary has means
    over its folds (`folds.aggregate_folds`), each fold's overall scores in `folds`, per-fold
    lists in `windows`, and no epochs, lookback, horizon or targets."""

    model: dict  # M of the model
    baselines: dict[str, dict]  # name -> M; switched-off baselines are absent
    space: str  # "original" (data units) or "scaled"
    windows: dict  # train, val, test, dropped (counts), dropped_by_split
    val_loss: float  # the best validation loss (scaled), the sweep objective
    epochs: int | None = None
    seconds: dict[str, float]  # per stage: prepare, fit, evaluate, plots
    lookback: int | None = None
    horizon: int | None = None
    targets: list[str] | None = None
    units: dict[str, str | None]  # target -> unit (data.units), None where unknown
    step_seconds: float | None  # the length of one time step
    ends: list[int] | None = None
    test_start: str | None = None
    folds: list[dict] | None = None

    def timed(self, **seconds: float) -> Scores:
        """These scores with more stages' seconds after those they hold."""
        return replace(self, seconds={**self.seconds, **seconds})

    def to_json(self) -> dict:
        """metrics.json's content: the fields that are set, in the order above, then
        "undefined" ({dotted path: reason}) when a score is NaN or infinite (written as
        null). A copy: the record itself never changes."""
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)
               if getattr(self, f.name) is not None}
        gaps = undefined({"model": self.model, "baselines": self.baselines})
        if gaps:
            out["undefined"] = gaps
        return out


def scalars(scores: dict) -> dict:
    """The overall scores of one forecaster, without its breakdowns (by_lead, by_series, ...)."""
    return {k: v for k, v in scores.items() if isinstance(v, float | int)}


def undefined(obj, path: str = "") -> dict[str, str]:
    """{dotted path: reason} of every NaN or infinite number in obj (a scores dict), so that a
    null in metrics.json comes with why."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list | tuple):
        items = enumerate(obj)
    else:
        value = obj.item() if isinstance(obj, np.generic) else obj
        if isinstance(value, float) and not math.isfinite(value):
            names = [p for p in path.split(".") if p in UNDEFINED_BECAUSE]
            because = UNDEFINED_BECAUSE[names[-1]] if names else "not a finite number"
            return {path: f"{value} ({because})"}
        return {}
    out = {}
    for key, value in items:
        out |= undefined(value, f"{path}.{key}" if path else str(key))
    return out
