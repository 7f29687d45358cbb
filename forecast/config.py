"""Typed schema of the configuration, registered in Hydra's ConfigStore.

YAML files set values only; this schema says which keys exist and their types, so a typo or a
wrong type fails at start-up with Hydra's message naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SplitConfig:
    train: float = 0.7
    val: float = 0.1
    test: float = 0.2


@dataclass
class DataConfig:
    name: str = "nyc_weather"  # nyc_weather | city_weather | csv | synthetic
    path: str | None = MISSING  # data=csv: a CSV/Parquet file, a folder of them, or a glob
    series_col: str | None = "series"
    time_col: str = "time"
    features: list[str] | None = None  # None: every numeric column
    freq: str | None = None  # pandas offset alias; inferred when null
    tz: str | None = "UTC"
    na_values: list[Any] = field(default_factory=list)
    # Messy files (see README, "Your own data"); every repair is logged with its count.
    duplicates: str = "mean"  # rows sharing (series, time): mean | first | last | error
    time_parts: list[str] | None = None  # e.g. [year, month, day, hour] -> the time column
    direction_cols: list[str] = field(default_factory=list)  # angles -> sin/cos (besides the
    # columns named *wind_dir* / *direction*, which are found by name)
    trace_cols: list[str] | None = None  # 'T' (trace) -> 0.0; null: the source's default
    max_categories: int = 10  # text columns with at most this many values -> one-hot
    thousands: str | None = None  # thousands separator in numbers stored as text, e.g. ","
    sep: str | None = None  # a CSV's field separator, e.g. ";" (null: a comma)
    decimal: str = "."  # a CSV's decimal mark, e.g. ","
    time_unit: str | None = None  # numeric times: s | ms | us | ns since 1970 (Unix time)
    # data=csv, one long Parquet file: folder for its memory-mapped panel (read in batches)
    memmap: str | None = None
    # Values outside [low, high] are physically implausible: treated as missing and reported.
    valid_range: dict[str, list[float]] = field(default_factory=dict)
    # {column: unit}, e.g. {temp: degF}: shown on score tables, plot axes and the report page
    units: dict[str, str] = field(default_factory=dict)
    calendar: list[str] = field(default_factory=lambda: ["hour", "day_of_year"])  # sin/cos inputs
    # columns whose values over the horizon are known at the origin (forecasts, schedules): read
    # for each lead besides the lookback; with any of them the calendar is read for the leads too
    known: list[str] = field(default_factory=list)
    # per-series constants: columns of the table (one value per series), or every column of
    # static_path, a table with one row per series keyed by the series column
    static: list[str] = field(default_factory=list)
    static_path: str | None = None
    mask_features: bool = False  # observed-mask of each feature as an extra input
    split: SplitConfig = field(default_factory=SplitConfig)
    # only the first `steps` time steps are split and used (null: all); ETT's protocol uses 14,400
    steps: int | None = None
    batch_size: int = 256
    # at most this many train windows per epoch, a new random draw each epoch (null: all)
    windows_per_epoch: int | None = None
    num_workers: int = 0
    # synthetic data only
    n_series: int = 3
    n_steps: int = 2000


# the values a model.* option may take (forecast.models builds the classes behind the names)
CELL_NAMES = ("lstm", "gru", "rnn", "manual_lstm")
HEADS = ("last", "mean", "max", "attention")
DECODERS = ("direct", "autoregressive", "parallel", "seq2seq")
WINDOW_NORMS = ("none", "last", "standard", "revin")
LOSS_NAMES = ("mse", "mae", "huber")
SCHEDULES = ("plateau", "cosine", "constant")
BACKBONES = ("none", "ridge", "rlinear", "auto")
BACKBONE_MODES = ("start", "blend")


@dataclass(frozen=True)
class NetOptions:
    """The network's options (`model.*` but the training ones): the one place they are declared
    with their defaults. ModelConfig, the schema's `model` node, is built from this record and
    TrainingOptions. A record is checked when it is made (an impossible combination raises a
    ValueError naming the options and the fix); what needs the data's shapes (lookback, series)
    is checked by forecast.models.options.check_shapes."""

    cell: str = "lstm"  # lstm | gru | rnn | manual_lstm
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    bidirectional: bool = False
    head: str = "last"  # last | mean | max | attention
    # direct | autoregressive | parallel (one step per output segment) | seq2seq (a recurrent
    # decoder over the H leads, fed the known inputs of each lead)
    decoder: str = "direct"
    embedding_dim: int = 0  # > 0: learned embedding of the series identity on every step
    # none | last (minus the last value) | standard (mean, spread) | revin (with learned affine)
    window_norm: str = "none"
    channel_independent: bool = False  # each target column its own series, shared weights
    channel_embedding: int = 0  # > 0: learned embedding of the column (channel_independent)
    segment: int = 0  # > 0: the lookback in segments of this many steps, each embedded linearly
    quantiles: tuple[float, ...] | None = None  # e.g. [0.1, 0.5, 0.9]: pinball loss, intervals
    linear_skip: bool = False
    head_dropout: float = 0.0  # dropout on the summary that the direct head reads (training only)
    head_norm: bool = False  # layer normalisation of that summary (with learned scale and shift)
    residual: bool = True  # forecast changes from the last observed target value
    # none | ridge | rlinear | auto (the better of the two on validation): a linear map of the
    # window (and its known inputs) fitted in closed form on the train windows before training
    backbone: str = "auto"
    # blend: the network trains on its own, then each lead's forecast is blended with the
    # backbone's by a weight in [0, 1] chosen on the validation windows (0: the network's, 1: the
    # backbone's); start: the network starts from the backbone's forecast and learns what it
    # misses
    backbone_mode: str = "blend"
    # how far each blend weight chosen on validation moves toward 0.5, the plain average of the
    # two (0: the chosen weight; 1: the average, unless that loses on validation to either part
    # alone); weights estimated on a short span are noisy, and the average is hard to beat later
    blend_shrink: float = 0.5
    # > 1: an ensemble of that many networks of these options, from their own starting weights,
    # each trained on its own loss; the forecast is their mean (and the backbone is shared)
    members: int = 1

    def __post_init__(self) -> None:
        if self.quantiles is not None:  # YAML and the command line give a list
            object.__setattr__(self, "quantiles", tuple(self.quantiles))
        _check_names(self)
        if not 0.0 <= self.blend_shrink <= 1.0:
            raise ValueError(f"model.blend_shrink={self.blend_shrink} must lie in [0, 1] (0: the "
                             "weights chosen on validation, 1: the plain average)")
        if self.members < 1:
            raise ValueError(f"model.members={self.members} must be >= 1 (1: a single network)")
        _check_decoders(self)
        _check_long_horizon(self)


@dataclass(frozen=True)
class TrainingOptions:
    """The optimiser's and the loss's options (`model.*`), read by the Forecaster, not the net;
    checked when made."""

    loss: str = "mae"  # mse | mae | huber (ignored with quantiles: pinball)
    lr: float = 3e-3
    weight_decay: float = 0.0
    schedule: str = "plateau"  # plateau (halve after 2 checks without gain) | cosine | constant
    warmup_steps: int = 0  # linear warm-up of the learning rate over this many optimiser steps

    def __post_init__(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"model.loss='{self.loss}' is unknown; choose one of "
                             f"{list(LOSS_NAMES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"model.schedule='{self.schedule}' is unknown; choose one of "
                             f"{SCHEDULES}")
        if self.warmup_steps < 0:
            raise ValueError(f"model.warmup_steps={self.warmup_steps} must be >= 0")
        if self.warmup_steps and self.schedule == "plateau":
            raise ValueError("model.warmup_steps needs model.schedule=cosine or constant (the "
                             "plateau schedule lowers the rate from validation, not by step)")


def _check_names(o: NetOptions) -> None:
    for option, value, known in (("cell", o.cell, CELL_NAMES), ("head", o.head, HEADS),
                                 ("decoder", o.decoder, DECODERS),
                                 ("window_norm", o.window_norm, WINDOW_NORMS),
                                 ("backbone", o.backbone, BACKBONES),
                                 ("backbone_mode", o.backbone_mode, BACKBONE_MODES)):
        if value not in known:
            raise ValueError(f"model.{option}='{value}' is unknown; choose one of {list(known)}")


def _check_decoders(o: NetOptions) -> None:
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


def _check_long_horizon(o: NetOptions) -> None:
    """Segments, parallel decoding, channels."""
    if o.segment < 0:
        raise ValueError(f"model.segment={o.segment} must be 0 (step-wise input) or a positive "
                         "divisor of the lookback, e.g. model.segment=24 with lookback=96")
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
    if o.decoder == "seq2seq" and o.head != "last":
        raise ValueError(f"model.decoder=seq2seq starts its decoder from the encoder's final "
                         f"state; model.head={o.head} is for model.decoder=direct")
    if o.channel_embedding < 0 or (o.channel_embedding and not o.channel_independent):
        raise ValueError(f"model.channel_embedding={o.channel_embedding} names each target "
                         "column's series: it needs model.channel_independent=true")
    if o.decoder == "parallel" and o.channel_embedding >= o.hidden_size + o.embedding_dim:
        raise ValueError(f"model.channel_embedding={o.channel_embedding} must be smaller than "
                         f"model.hidden_size={o.hidden_size} + model.embedding_dim="
                         f"{o.embedding_dim}: the parallel decoder's input is the position "
                         "embedding and the channel embedding together")


def _schema_fields(record: type) -> list[tuple[str, Any, Any]]:
    """(name, type, field) of a frozen record, as the fields of a mutable schema node: tuples
    become lists, which is what YAML and the command line give."""
    hints = get_type_hints(record)
    out = []
    for f in fields(record):
        kind = hints[f.name]
        if kind == (tuple[float, ...] | None):
            kind = list[float] | None
        out.append((f.name, kind, field(default=f.default)))
    return out


def _net(self) -> NetOptions:
    """The network's record; the alias model.instance_norm=true is window_norm=standard."""
    values = {f.name: getattr(self, f.name) for f in fields(NetOptions)}
    if self.instance_norm:
        if values["window_norm"] not in ("none", "standard"):
            raise ValueError(f"model.instance_norm=true and model.window_norm="
                             f"{values['window_norm']} both normalise each window; keep one "
                             "(model.instance_norm=true is model.window_norm=standard)")
        values["window_norm"] = "standard"
    return NetOptions(**values)


def _training(self) -> TrainingOptions:
    """The Forecaster's record."""
    return TrainingOptions(**{f.name: getattr(self, f.name) for f in fields(TrainingOptions)})


# The schema's `model` node: a label, every field of the two records (their defaults), and the
# alias instance_norm. Adding a model option is a field of NetOptions, read by the net.
ModelConfig = make_dataclass(
    "ModelConfig",
    [("name", str, field(default="lstm")), *_schema_fields(NetOptions),
     *_schema_fields(TrainingOptions),
     ("instance_norm", bool, field(default=False))],  # alias of window_norm=standard
    namespace={"net": _net, "training": _training, "__module__": __name__},
)


@dataclass
class EvaluateConfig:
    space: str = "original"  # original | scaled
    baselines: list[str] = field(
        default_factory=lambda: ["persistence", "seasonal_naive", "climatology", "ridge",
                                 "rlinear"]
    )
    season: int | None = None  # None: from the data's frequency (24 hourly, 7 daily)
    folds: int = 1  # > 1: rolling-origin backtest over the end of the data
    stride: int = 1  # steps between the origins of test windows (training always uses 1)
    plot_days: int = 14  # days per stretch of the forecast plots (three over the test span)
    intervals: list[float] | None = None  # e.g. [0.8, 0.95]: calibrated prediction intervals
    calibrate: bool = True  # conformal calibration of the intervals on the validation windows
    # adaptive: the level follows the misses of the forecasts resolved before each origin;
    # split: the validation offsets as they are
    calibration: str = "adaptive"
    adapt_rate: float = 0.005  # adaptive: step of the level per resolved origin (ACI's gamma)
    published: bool = False  # print the long-horizon tables' scores beside the run's (ETT files)
    # test windows whose first forecast step falls at this hour of day (e.g. 0: one forecast a
    # day, made at midnight for the day ahead); null: every origin (spaced by stride)
    origin_hour: int | None = None


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: dict[str, Any] = field(default_factory=dict)
    logger: Any = None
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    # the run's shape; a data group (conf/data/*.yaml) sets its own where they differ
    lookback: int = 48  # input steps
    horizon: int = 24  # steps forecast at once
    targets: Any = field(default_factory=lambda: ["temp"])  # list of columns, or "all"
    seed: int = 0
    early_stopping_patience: int = 3
    # continue an interrupted run: true (this run folder's checkpoints/last.ckpt; pass
    # hydra.run.dir=<its folder>) or the path of a checkpoint
    resume: Any = None
    threads: int | None = None  # torch intra-op threads; None: torch's default


def register() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
