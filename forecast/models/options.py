"""The network's and the optimiser's options (forecast.config NetOptions, TrainingOptions: the
records, their defaults, and the checks a record passes when it is made) against the data:
the checks that need the lookback or the series count, and a checkpoint's plain
hyper-parameters to and from the records."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from forecast.config import NetOptions, TrainingOptions

if TYPE_CHECKING:  # forecast-predict builds nets without importing Lightning (data.windows)
    from forecast.data.prepared import Prepared

log = logging.getLogger(__name__)

# the network's inputs besides its options: the data's shapes
SHAPES = ("n_features", "horizon", "n_targets", "lookback", "n_series", "target_positions",
          "norm_features", "known_positions", "n_static")


# network options added since 0.1.0's first checkpoints, with the value that builds the net
# those checkpoints trained (read so, not refused)
ADDED_LATER = {"backbone": "none", "backbone_mode": "start", "members": 1,
               "blend_shrink": 0.0}


def check_model(model, lookback: int) -> tuple[NetOptions, TrainingOptions]:
    """The records of the `model.*` options (a ModelConfig), refused before any data is read
    when impossible (making the records checks them; the lookback is checked here)."""
    net, training = model.net(), model.training()
    check_shapes(net, lookback, warn=False)
    return net, training


def check_shapes(o: NetOptions, lookback: int | None = None, n_series: int | None = None,
                 warn: bool = True) -> None:
    """What the options need of the data, with the option names and the fix; `n_series`
    None: not known yet (checked when the net is built)."""
    if o.segment and lookback is not None and lookback % o.segment:
        raise ValueError(f"model.segment={o.segment} must be 0 (step-wise input) or divide "
                         f"lookback={lookback}; e.g. model.segment=24 with lookback=96")
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


def check_covariates(o: NetOptions, n_known: int) -> None:
    """Known inputs the decoder cannot read are refused, naming the options."""
    if n_known and o.decoder == "autoregressive" and o.channel_independent:
        raise ValueError("data.known with model.decoder=autoregressive and "
                         "model.channel_independent=true: each channel's rollout predicts its "
                         "one column, so no known column can be fed to it; use "
                         "model.decoder=direct, parallel or seq2seq")


def shapes(prep: Prepared) -> dict:
    """The network's data shapes for a prepared panel (RegLSTM's keyword arguments)."""
    cov = prep.covariates
    return {"n_features": prep.model_inputs.shape[-1], "horizon": prep.horizon,
            "lookback": prep.lookback, "n_targets": len(prep.targets),
            "n_series": prep.panel.n_series, "target_positions": list(prep.target_cols),
            "norm_features": len(prep.panel.features),
            "known_positions": list(cov.known) if cov else [],
            "n_static": cov.n_static if cov else 0}


def to_hparams(o: NetOptions | TrainingOptions) -> dict:
    """A record as plain values (lists, not tuples), as a checkpoint stores them."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(o).items()}


def net_from_hparams(net: Mapping, source: str = "the checkpoint") -> tuple[dict, NetOptions]:
    """A checkpoint's "net" hyper-parameters -> (shapes, NetOptions). One written before an
    option existed, or with one this version does not know, is refused by name: it cannot be
    rebuilt as it was trained."""
    net = dict(net)
    for name, default in ADDED_LATER.items():  # their defaults are what came before them
        net.setdefault(name, default)
    if net.pop("instance_norm", False):  # the alias, as checkpoints of 0.1.0 stored it
        net["window_norm"] = "standard"
    known = {f.name for f in dataclasses.fields(NetOptions)}
    _refuse_other_version(source, "network", known - set(net), set(net) - known - set(SHAPES))
    options = {k: net.pop(k) for k in known}
    net.setdefault("known_positions", [])  # checkpoints from before covariates have none
    net.setdefault("n_static", 0)
    return net, NetOptions(**options)


def training_from_hparams(hparams: Mapping, source: str = "the checkpoint") -> TrainingOptions:
    """A checkpoint's training hyper-parameters -> TrainingOptions, refused by name like
    net_from_hparams."""
    names = {f.name for f in dataclasses.fields(TrainingOptions)}
    _refuse_other_version(source, "training", names - set(hparams), set())
    return TrainingOptions(**{n: hparams[n] for n in names})


def _refuse_other_version(source: str, kind: str, missing: set, unknown: set) -> None:
    if not missing and not unknown:
        return
    said = [f"missing: {sorted(missing)}"] if missing else []
    said += [f"unknown: {sorted(unknown)}"] if unknown else []
    raise ValueError(f"{source} was written by another version of forecast ({kind} options "
                     f"{'; '.join(said)}); it cannot be rebuilt as it was trained: train the run "
                     "again with forecast-train")
