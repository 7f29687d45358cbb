"""The network's options as the run hands them to the net."""

from __future__ import annotations

from collections.abc import Mapping

from forecast.config import TRAINING_OPTIONS
from forecast.data.prepared import Prepared


def net_kwargs(prep: Prepared, model: Mapping) -> dict:
    """RegLSTM arguments: the data's shapes plus every network option of `model` (a ModelConfig
    as a dict; the training options lr, weight_decay, loss are the Forecaster's)."""
    return {"n_features": prep.model_inputs.shape[-1], "horizon": prep.horizon,
            "lookback": prep.lookback, "n_targets": len(prep.targets),
            "n_series": prep.panel.n_series, "target_positions": prep.target_cols,
            "norm_features": len(prep.panel.features),
            **{k: v for k, v in model.items() if k not in TRAINING_OPTIONS}}
