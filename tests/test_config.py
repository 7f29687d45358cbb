"""Compose test over every config option: each file of each group in conf/ composes against the
schema in forecast/config.py; every model file builds a working Forecaster; typos and wrong types
fail at compose time naming the key."""

from __future__ import annotations

import dataclasses
import importlib.resources
import inspect
import re

import pytest
import pytorch_lightning as pl
import torch
import yaml
from conftest import load_data
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue
from pytorch_lightning.profilers import SimpleProfiler

from forecast import config
from forecast.config import DECODERS, HEADS
from forecast.data.prepared import datamodule, prepare
from forecast.models import options
from forecast.models.forecaster import Forecaster
from forecast.models.network import CELLS, RegLSTM
from forecast.runs import train

GROUPS = ("data", "model", "trainer", "logger")
OPTIONAL_GROUPS = ("experiment", "hparams_search")  # `+group=option`, # @package _global_

pytestmark = pytest.mark.usefixtures("one_thread")


def _options(group: str) -> list[str]:
    folder = importlib.resources.files("forecast.conf") / group
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


GROUP_OPTIONS = [(g, o) for g in GROUPS for o in _options(g)]


@pytest.fixture(scope="module")
def hydra_ctx():
    config.register()
    with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
        yield


def _compose(*overrides: str) -> DictConfig:
    return compose("train", overrides=list(overrides))


def test_the_trainer_profiles_nothing_unless_a_profiler_is_chosen(hydra_ctx, tmp_path):
    trainer = train.build_trainer(_compose(), tmp_path, logger=False)
    assert isinstance(trainer.profiler, train.NoProfiler)
    with trainer.profiler.profile("[LightningModule]Forecaster.training_step") as action:
        assert action == "[LightningModule]Forecaster.training_step"  # as Lightning's yields
    chosen = train.build_trainer(_compose("+trainer.profiler=simple"), tmp_path, logger=False)
    assert isinstance(chosen.profiler, SimpleProfiler)


def test_every_group_has_options():
    for group in GROUPS:
        assert _options(group), f"conf/{group}/ holds no yaml file"
    assert {"lstm", "bilstm", "gru", "rnn", "manual_lstm"} <= set(_options("model"))


def _check_model(model: DictConfig) -> None:
    assert model.cell in CELLS and model.head in HEADS and model.decoder in DECODERS
    assert isinstance(model.hidden_size, int) and model.hidden_size > 0
    assert isinstance(model.num_layers, int) and model.num_layers > 0
    assert isinstance(model.bidirectional, bool) and isinstance(model.instance_norm, bool)
    assert isinstance(model.lr, float) and model.lr > 0
    options.check_model(OmegaConf.to_object(model), lookback=24)


def _known_sources() -> str:
    """forecast.data.loader.load's message for an unknown data.name, which lists the known ones."""
    with pytest.raises(ValueError, match="data.name") as info:
        load_data(name="no_such_source")
    return str(info.value)


def _check_data(data: DictConfig) -> None:
    assert data.name in _known_sources()
    assert abs(data.split.train + data.split.val + data.split.test - 1.0) < 1e-9
    assert isinstance(data.batch_size, int) and data.batch_size > 0
    assert data.freq is None or isinstance(data.freq, str)


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS,
                         ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_each_option_composes_against_the_schema(hydra_ctx, group, option):
    overrides = [f"{group}={option}"]
    if (group, option) == ("data", "csv"):
        overrides.append("data.path=weather.csv")  # mandatory; see the test below
    cfg = _compose(*overrides)
    # the whole tree converts to the typed schema: every key known, every value of its type
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, config.TrainConfig)
    _check_model(cfg.model)
    _check_data(cfg.data)
    if group == "model":
        assert cfg.model.name == option
    if group == "data":
        assert cfg.data.name == option
    # the trainer options are keyword arguments of lightning's Trainer
    trainer_args = set(inspect.signature(pl.Trainer.__init__).parameters)
    assert set(cfg.trainer) <= trainer_args, set(cfg.trainer) - trainer_args
    if group == "trainer":
        pl.Trainer(**{**OmegaConf.to_container(cfg.trainer), "accelerator": "cpu",
                      "logger": False, "enable_checkpointing": False})
    # the logger's target is a lightning logger taking save_dir (train.build_trainer passes it)
    logger_cls = get_class(cfg.logger._target_)
    assert issubclass(logger_cls, pl.loggers.Logger)
    params = inspect.signature(logger_cls.__init__).parameters
    assert "save_dir" in params
    assert set(cfg.logger) - {"_target_"} <= set(params)


OPTIONAL = [(g, o) for g in OPTIONAL_GROUPS for o in _options(g)]


@pytest.mark.parametrize(("group", "option"), OPTIONAL, ids=[f"+{g}={o}" for g, o in OPTIONAL])
def test_each_recipe_composes_and_sweeps_only_known_keys(hydra_ctx, group, option):
    cfg = compose("train", overrides=[f"+{group}={option}"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False).get("params") or {}
    with open_dict(cfg):
        del cfg["hydra"]
    if cfg.data.name == "csv":
        cfg.data.path = "weather.csv"  # the user's file, given on the command line
    assert isinstance(OmegaConf.to_object(cfg), config.TrainConfig)
    _check_model(cfg.model)
    _check_data(cfg.data)
    for key, values in params.items():
        if key in GROUPS:  # a sweep over files of a group: each must exist
            assert set(str(values).replace(" ", "").split(",")) <= set(_options(key)), key
        else:  # a sweep over a value: the key must exist in the schema
            assert OmegaConf.select(cfg, key, default="<absent>") != "<absent>", key


def test_defaults(hydra_ctx):
    cfg = _compose()
    assert cfg.data.name == "nyc_weather" and cfg.model.name == "lstm"
    assert cfg.model.cell == "lstm" and cfg.model.bidirectional is False
    assert cfg.lookback == 48 and cfg.horizon == 24 and list(cfg.targets) == ["temp"]
    assert cfg.model.quantiles is None
    bilstm = _compose("model=bilstm").model
    assert bilstm.bidirectional is True and bilstm.decoder == "direct"


def test_csv_needs_a_path(hydra_ctx):
    cfg = _compose("data=csv")  # composing works without it
    assert cfg.data.name == "csv"
    assert OmegaConf.is_missing(cfg.data, "path")
    with pytest.raises(MissingMandatoryValue, match="path"):
        _ = cfg.data.path


def test_csv_path_given(hydra_ctx):
    cfg = _compose("data=csv", "data.path=weather.csv")
    assert cfg.data.path == "weather.csv"


# Values of the model options beyond the files: every cell, head and decoder, and each other
# option, a few per composition; each composes, validates and builds a working net.
_EXTRAS = [
    ("model.bidirectional=true", "model.num_layers=2", "model.dropout=0.2"),
    ("model.embedding_dim=2", "model.quantiles=[0.1,0.5,0.9]", "model.linear_skip=true"),
    ("model.instance_norm=true", "model.lr=0.01", "model.weight_decay=0.001"),
    ("model.bidirectional=false", "model.residual=true", "model.loss=huber",
     "model.head_dropout=0.3", "model.head_norm=true"),
]
_ROWS = max(len(CELLS), len(HEADS), len(_EXTRAS))
MODEL_OVERRIDES = [
    (f"model.cell={list(CELLS)[i % len(CELLS)]}", f"model.head={HEADS[i % len(HEADS)]}",
     "model.decoder=direct", *_EXTRAS[i % len(_EXTRAS)])
    for i in range(_ROWS)
] + [
    ("model.decoder=autoregressive", f"model.cell={cell}", "model.instance_norm=true",
     "model.embedding_dim=2", "model.num_layers=2")
    for cell in ("lstm", "gru")
] + [("model.decoder=autoregressive", "model.residual=true", "model.loss=mae")] + [
    ("model.decoder=parallel", "model.segment=4", f"model.cell={cell}",
     "model.channel_independent=true", "model.channel_embedding=2", "model.window_norm=last",
     "model.schedule=cosine", "model.warmup_steps=5")
    for cell in CELLS
] + [("model.segment=6", "model.window_norm=revin", "model.schedule=constant",
      "model.channel_independent=true", "model.decoder=direct")] + [
    ("model.decoder=seq2seq", f"model.cell={cell}", "model.backbone=ridge",
     "model.bidirectional=true", "model.num_layers=2")
    for cell in ("lstm", "gru")
] + [("model.decoder=direct", "model.backbone=ridge", "model.quantiles=[0.1,0.5,0.9]"),
      ("model.decoder=parallel", "model.segment=4", "model.channel_independent=true",
       "model.backbone=auto"),
      ("model.decoder=autoregressive", "model.backbone=rlinear"),
      ("model.decoder=direct", "model.backbone=auto", "model.backbone_mode=blend",
       "model.blend_shrink=0.25", "model.quantiles=[0.1,0.5,0.9]"),
      ("model.members=3", "model.backbone=auto", "model.backbone_mode=blend",
       "model.decoder=parallel", "model.segment=4", "model.channel_independent=true")]

L, H = 24, 4  # segment 24 (model=segrnn) divides the lookback


@pytest.fixture
def small_prep(panel):
    return prepare(panel, L, H, ["a"], calendar=("hour",))


def _forward(prep, model: DictConfig) -> tuple[Forecaster, torch.Tensor]:
    schema = OmegaConf.to_object(model)
    torch.manual_seed(0)
    module = Forecaster(RegLSTM(**options.shapes(prep), options=schema.net()),
                        schema.training()).eval()
    batch = datamodule(prep).dataset("test")[[0, 1, 2, 3, 4]]
    with torch.no_grad():
        return module, module.predict_step(batch, 0)


@pytest.mark.parametrize("option", _options("model"))
def test_every_model_file_builds_a_forecaster(hydra_ctx, small_prep, option):
    model = _compose(f"model={option}").model
    module, y = _forward(small_prep, model)
    # every model option reaches the net or the Forecaster: none is silently dropped
    schema = OmegaConf.to_object(model)
    assert module.net.options == schema.net()
    assert {k: module.hparams[k] for k in ("loss", "lr", "weight_decay", "schedule",
                                           "warmup_steps")} == dataclasses.asdict(schema.training())
    declared = {f.name for r in (config.NetOptions, config.TrainingOptions)
                for f in dataclasses.fields(r)}
    assert {f.name for f in dataclasses.fields(config.ModelConfig)} == \
        declared | {"name", "instance_norm"}
    net = module.net
    assert isinstance(net.rnn, CELLS[model.cell])
    assert net.rnn.hidden_size == model.hidden_size and net.rnn.num_layers == model.num_layers
    assert net.directions == (2 if model.bidirectional else 1)
    assert net.head == model.head and net.decoder == model.decoder
    assert module.hparams.lr == model.lr and module.hparams.loss == model.loss
    shape = (5, H, 1) + ((len(model.quantiles),) if model.quantiles else ())
    assert y.shape == shape and torch.isfinite(y).all()


@pytest.mark.parametrize("overrides", MODEL_OVERRIDES, ids=lambda o: " ".join(o)[:60])
def test_every_model_option_composes_and_builds(hydra_ctx, small_prep, overrides):
    model = _compose("model.hidden_size=4", *overrides).model
    for override in overrides:
        key, value = override.split("=", 1)
        composed = OmegaConf.select(model, key.removeprefix("model."))
        if isinstance(composed, bool | str):
            assert str(composed).lower() == value, override
        else:  # numbers and lists of numbers, typed by the schema
            assert composed == yaml.safe_load(value), override
    _check_model(model)
    _, y = _forward(small_prep, model)
    shape = (5, H, 1) + ((len(model.quantiles),) if model.quantiles else ())
    assert y.shape == shape and torch.isfinite(y).all()


def test_model_overrides_cover_every_value():
    flat = {o for row in MODEL_OVERRIDES for o in row}
    for key, values in (("cell", CELLS), ("head", HEADS), ("decoder", DECODERS)):
        assert {f"model.{key}={v}" for v in values} <= flat, key
    assert {f.name for f in dataclasses.fields(config.ModelConfig)} - {"name", "hidden_size"} \
        <= {o.split("=")[0].removeprefix("model.") for o in flat}


@pytest.mark.parametrize(("override", "key"), [
    ("model.hiden_size=3", "hiden_size"),
    ("model.hidden_size=abc", "hidden_size"),
    ("model.bidirectional=maybe", "bidirectional"),
    ("model.quantiles=[0.1,x]", "quantiles"),
    ("data.batch_size=1.5", "batch_size"),
    ("data.splt.train=0.5", "splt"),
    ("lookbak=24", "lookbak"),
    ("horizon=soon", "horizon"),
])
def test_typos_and_wrong_types_fail_at_compose_naming_the_key(hydra_ctx, override, key):
    with pytest.raises(ConfigCompositionException) as info:
        _compose(override)
    chain, error = [], info.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__
    assert key in "\n".join(chain), chain


@pytest.mark.parametrize(("override", "message"), [
    ("model.loss=l1", "model.loss='l1'"),
    ("model.cell=lstn", "model.cell='lstn'"),
    ("model.quantiles=[0.1,0.9]", "include 0.5"),
    ("evaluate.calibration=online", "evaluate.calibration='online'"),
    ("evaluate.adapt_rate=1.5", "evaluate.adapt_rate=1.5"),
])
def test_model_options_are_refused_before_any_data_is_read(hydra_ctx, tmp_path, override,
                                                           message):
    missing = tmp_path / "nowhere.csv"
    cfg = _compose("data=csv", f"data.path={missing}", override)
    with pytest.raises(ValueError, match=re.escape(message)):
        train.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    train.model_options(_compose().model, 48)  # the defaults pass


@pytest.mark.parametrize("command", ["forecast-train", "forecast-predict"])
def test_help_starts_with_what_the_tool_does_and_the_three_commands(command):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / command
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert out.startswith(f"{command} ")
    lines = [line.strip() for line in out.splitlines()]
    listed = lines[lines.index("The three commands:") + 1:][:3]
    for line, name in zip(listed, ("forecast-train [", "forecast-predict run=",
                                   "forecast-report <"), strict=True):
        assert line.startswith(name), listed


def test_help_describes_every_group_and_the_common_options(hydra_ctx):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "forecast-train"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    groups = out[out.index("== Groups (group=option) =="):out.index("== Common options ==")]
    described = {line.split()[0] for line in groups.splitlines()[1:]
                 if line.startswith("  ") and not line.startswith("   ")}
    assert described == set(GROUPS + OPTIONAL_GROUPS)
    common = out[out.index("== Common options =="):out.index("== Config ==")]
    shown = dict(re.findall(r"(?<![\w.])([a-z_]+(?:\.[a-z_]+)?)=(\S+)", common))
    cfg = _compose()
    for key in shown:
        assert OmegaConf.select(cfg, key, default="absent") != "absent", key
    defaults = {"lookback", "horizon", "targets", "model.hidden_size", "model.lr",
                "trainer.max_epochs", "evaluate.folds", "seed", "threads"}
    for key in defaults:  # the values shown are today's defaults
        assert yaml.safe_load(shown[key]) == _value(cfg, key), key


def _value(cfg, key: str):
    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
