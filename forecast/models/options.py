"""The network's and the optimiser's options as typed records: checked here, once per build,
with the option names and the fix; turned into a checkpoint's plain hyper-parameters and back.

The records themselves (forecast.config NetOptions, TrainingOptions) hold the defaults.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from forecast.config import NetOptions, TrainingOptions
from forecast.models.layers import WINDOW_NORMS

if TYPE_CHECKING:  # forecast-predict builds nets without importing Lightning (data.windows)
    from forecast.data.prepared import Prepared

log = logging.getLogger(__name__)

CELL_NAMES = ("lstm", "gru", "rnn", "manual_lstm")
HEADS = ("last", "mean", "max", "attention")
DECODERS = ("direct", "autoregressive", "parallel")
LOSS_NAMES = ("mse", "mae", "huber")
SCHEDULES = ("plateau", "cosine", "constant")
# the network's inputs besides its options: the data's shapes
SHAPES = ("n_features", "horizon", "n_targets", "lookback", "n_series", "target_positions",
          "norm_features")


def check_model(model, lookback: int) -> None:
    """Refuse impossible `model.*` options (a ModelConfig) before any data is read."""
    check_training(model.training())
    check_net(model.net(), lookback, warn=False)


def check_training(o: TrainingOptions) -> None:
    if o.loss not in LOSS_NAMES:
        raise ValueError(f"model.loss='{o.loss}' is unknown; choose one of {list(LOSS_NAMES)}")
    if o.schedule not in SCHEDULES:
        raise ValueError(f"model.schedule='{o.schedule}' is unknown; choose one of {SCHEDULES}")
    if o.warmup_steps < 0:
        raise ValueError(f"model.warmup_steps={o.warmup_steps} must be >= 0")
    if o.warmup_steps and o.schedule == "plateau":
        raise ValueError("model.warmup_steps needs model.schedule=cosine or constant (the "
                         "plateau schedule lowers the rate from validation, not by step)")


def check_net(o: NetOptions, lookback: int | None = None, n_series: int | None = None,
              warn: bool = True) -> None:
    """Refuse combinations that cannot work, with the option names and the fix; `n_series`
    None: not known yet (checked again when the net is built)."""
    _check_names(o)
    _check_long_horizon(o, lookback)
    if o.decoder == "autoregressive":
        if o.bidirectional:
            raise ValueError(
                "model.decoder=autoregressive with model.bidirectional=true is refused: the "
                "backward direction would read the steps it predicts. Use model.bidirectional="
                "false, or model.decoder=direct for a Bi-LSTM"
            )
        if o.quantiles or o.linear_skip:
            raise ValueError("model.decoder=autoregressive supports neither model.quantiles nor "
                             "model.linear_skip; use model.decoder=direct for them")
    if o.head_norm and o.decoder != "direct":
        raise ValueError(f"model.head_norm normalises the summary that the direct head reads; "
                         f"model.decoder={o.decoder} has none: use model.decoder=direct")
    if o.quantiles and (0.5 not in o.quantiles or not all(0 < q < 1 for q in o.quantiles)):
        raise ValueError(f"model.quantiles={list(o.quantiles)} must lie in (0, 1) and include "
                         "0.5 (the median is the point forecast)")
    if o.linear_skip and not lookback:
        raise ValueError("model.linear_skip needs the lookback (the width of the linear map)")
    if o.window_norm in ("standard", "revin") and lookback is not None and lookback < 2:
        raise ValueError(f"model.window_norm={o.window_norm} (or model.instance_norm) needs "
                         f"lookback >= 2 (a window's spread); got lookback={lookback}")
    if o.embedding_dim and n_series is not None and n_series < 1:
        raise ValueError("model.embedding_dim > 0 needs the number of series")
    if warn and o.dropout and o.num_layers == 1:
        log.warning("model.dropout=%s has no effect with model.num_layers=1: dropout acts "
                    "between stacked recurrent layers", o.dropout)


def _check_names(o: NetOptions) -> None:
    for option, value, known in (("cell", o.cell, CELL_NAMES), ("head", o.head, HEADS),
                                 ("decoder", o.decoder, DECODERS),
                                 ("window_norm", o.window_norm, WINDOW_NORMS)):
        if value not in known:
            raise ValueError(f"model.{option}='{value}' is unknown; choose one of {list(known)}")


def _check_long_horizon(o: NetOptions, lookback: int | None) -> None:
    """The options of forecast.models.layers: segment, parallel decoding, channels."""
    if o.segment < 0 or (o.segment and lookback is not None and lookback % o.segment):
        raise ValueError(f"model.segment={o.segment} must be 0 (step-wise input) or divide "
                         f"lookback={lookback}; e.g. model.segment=24 with lookback=96")
    if o.segment and o.decoder == "autoregressive":
        raise ValueError("model.segment > 0 reads whole segments, which the autoregressive "
                         "decoder cannot feed back step by step; use model.decoder=parallel "
                         "or direct")
    if o.decoder == "parallel":
        if not o.segment:
            raise ValueError("model.decoder=parallel forecasts one segment per recurrent step: "
                             "set model.segment (e.g. 24)")
        if o.head != "last":
            raise ValueError(f"model.decoder=parallel starts from the final state; "
                             f"model.head={o.head} is for model.decoder=direct")
        if o.linear_skip:
            raise ValueError("model.linear_skip is for model.decoder=direct")
    if o.channel_embedding < 0 or (o.channel_embedding and not o.channel_independent):
        raise ValueError(f"model.channel_embedding={o.channel_embedding} names each target "
                         "column's series: it needs model.channel_independent=true")
    if o.decoder == "parallel" and o.channel_embedding >= o.hidden_size + o.embedding_dim:
        raise ValueError(f"model.channel_embedding={o.channel_embedding} must be smaller than "
                         f"model.hidden_size={o.hidden_size} + model.embedding_dim="
                         f"{o.embedding_dim}: the parallel decoder's input is the position "
                         "embedding and the channel embedding together")


def shapes(prep: Prepared) -> dict:
    """The network's data shapes for a prepared panel (RegLSTM's keyword arguments)."""
    return {"n_features": prep.model_inputs.shape[-1], "horizon": prep.horizon,
            "lookback": prep.lookback, "n_targets": len(prep.targets),
            "n_series": prep.panel.n_series, "target_positions": list(prep.target_cols),
            "norm_features": len(prep.panel.features)}


def to_hparams(o: NetOptions | TrainingOptions) -> dict:
    """A record as plain values (lists, not tuples), as a checkpoint stores them."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(o).items()}


def net_from_hparams(net: Mapping, source: str = "the checkpoint") -> tuple[dict, NetOptions]:
    """A checkpoint's "net" hyper-parameters -> (shapes, NetOptions). One written before an
    option existed is refused by name: it cannot be rebuilt as it was trained."""
    net = dict(net)
    if net.pop("instance_norm", False):  # the alias, as checkpoints of 0.1.0 stored it
        net["window_norm"] = "standard"
    known = {f.name for f in dataclasses.fields(NetOptions)}
    missing = sorted(known - set(net))
    unknown = sorted(set(net) - known - set(SHAPES))
    if missing or unknown:
        raise ValueError(
            f"{source} was written by another version of forecast (options "
            f"{'missing: ' + str(missing) if missing else 'unknown: ' + str(unknown)}); "
            "it cannot be rebuilt as it was trained: train the run again")
    options = {k: net.pop(k) for k in known}
    if options["quantiles"] is not None:
        options["quantiles"] = tuple(options["quantiles"])
    return net, NetOptions(**options)


def training_from_hparams(hparams: Mapping, source: str = "the checkpoint") -> TrainingOptions:
    names = [f.name for f in dataclasses.fields(TrainingOptions)]
    missing = [n for n in names if n not in hparams]
    if missing:
        raise ValueError(f"{source} was written by another version of forecast (training "
                         f"options missing: {missing}); train the run again")
    return TrainingOptions(**{n: hparams[n] for n in names})
