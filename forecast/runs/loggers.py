"""Experiment loggers (logger=csv | tensorboard | mlflow): the check that a logger's package is
installed, made before any data is read; building the logger (TensorBoard into the run folder,
MLflow into one store every run shares, the run named from its model, data and overrides); and
handing it what a run produced: the config as hyper-parameters (nulls dropped), the test scores
of metrics.json flattened with their units in the names (model and every baseline; by lead as
one figure per score, not one point per lead), the plots, and for MLflow the run's report,
forecasts, config and best checkpoint. The train/val losses reach it from Lightning while the
model trains; TensorBoard's hparams session is written once, at the end, with hp_metric the
model's test MAE."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, MLFlowLogger, TensorBoardLogger

from forecast.report import plots, tables

# logger class -> (module it needs, the pyproject extra that installs it, its PyPI package)
NEEDS = {"TensorBoardLogger": ("tensorboard", "tensorboard", "tensorboard"),
         "MLFlowLogger": ("mlflow", "mlflow", "mlflow-skinny")}
BATCH = 500  # metrics per call: MLflow takes at most 1000 in one batch
UNSAFE = re.compile(r"[^\w./\- :]")  # what MLflow refuses in a key (TensorBoard takes all)
STORE = Path("outputs") / "mlruns"  # the shared MLflow store, under the working directory
# run-folder files an MLflow run keeps as artifacts (folder in the run's artifacts or None)
ARTIFACTS = {"report.html": None, "forecasts.parquet": None, "metrics.json": None,
             ".hydra/config.yaml": ".hydra", "checkpoints/best.ckpt": "checkpoints"}
# scores in the data's unit, and in its square
IN_UNITS, IN_SQUARED_UNITS = {"mae", "rmse"}, {"mse"}
# overrides already in a run's name, or about the logger itself
UNNAMED = re.compile(r"^[+~]*((model|data)=|(logger|hydra)([=.]|$))")


def require(logger: Mapping | None) -> None:
    """Refuse a logger whose package is not installed, naming the command that installs it."""
    if not tracks(logger):
        return
    module, extra, package = NEEDS[_class_name(logger)]
    if importlib.util.find_spec(module) is None:
        raise ValueError(
            f"logger={extra} needs the '{module}' package, which is not installed: "
            f"pip install -e \".[{extra}]\" (from the repository; elsewhere "
            f"pip install {package}), or choose logger=csv")


def build(logger: DictConfig | None, run_dir: Path, config: DictConfig) -> Logger | bool:
    """The logger the config names, writing under `run_dir` (its `save_dir` option is a folder
    in the run folder; MLflow's store is `tracking_uri`, by default outputs/mlruns under the
    working directory), with the run's `config` logged as hyper-parameters; False for none."""
    if not logger:
        return False
    options = OmegaConf.to_container(logger, resolve=True)
    save_dir = run_dir / options.pop("save_dir", "")
    if _class_name(options) == "MLFlowLogger":
        # a run reports to the tracking store it is given, nowhere else (MLflow 3's usage
        # telemetry is off unless the user turns it on)
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        if not options.get("tracking_uri"):
            # the file store all runs share: MLflow 3 asks for this opt-in to use one
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            options["tracking_uri"] = (Path.cwd() / STORE).resolve().as_uri()
        if not options.get("run_name"):
            options["run_name"] = run_name(config, _overrides(), run_dir)
    made = instantiate(options, save_dir=str(save_dir))
    if tracks(logger):  # a CSV logger writing now would start metrics.csv afresh before a resume
        # TensorBoard keeps these and writes its one hparams session in log_results
        made.log_hyperparams(params(config))
    return made


def params(config: DictConfig | Mapping) -> dict[str, Any]:
    """The run's config as flat hyper-parameters: lists as text, nulls left out."""
    tree = OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) \
        else config
    return {k: v for k, v in flat(tree, enumerate_lists=False).items() if v is not None}


def run_name(config: DictConfig | Mapping, overrides: Sequence[str] | None,
             run_dir: Path) -> str:
    """'lstm on nyc_weather: model.hidden_size=32 seed=1': the model, the data and the
    command's other overrides; the run folder's name stands in for overrides not known."""
    model = config.get("model", {}).get("name", "model")
    data = config.get("data", {}).get("name", "data")
    if overrides is None:
        return f"{model} on {data}: {run_dir.name}"
    rest = " ".join(o for o in overrides if not UNNAMED.match(o))
    return f"{model} on {data}" + (f": {rest}" if rest else "")


def log_results(logger: Logger | bool, metrics: dict, run_dir: Path) -> None:
    """Hand a tracking logger the test scores (keys test/model/mae_degF,
    test/baselines/ridge/mae_degF, ...; by lead as figures), the plots and, for MLflow, the run's
    files; the CSV logger has them beside it already."""
    if not isinstance(logger, TensorBoardLogger | MLFlowLogger):
        return
    scores = test_scalars(metrics)
    names = sorted(scores)
    for start in range(0, len(names), BATCH):
        logger.log_metrics({k: scores[k] for k in names[start:start + BATCH]}, step=0)
    pngs = sorted((run_dir / "plots").glob("*.png"))
    if isinstance(logger, TensorBoardLogger):
        _tensorboard(logger, metrics, pngs)
    else:
        for path in pngs:
            logger.experiment.log_artifact(logger.run_id, str(path), "plots")
        for name, folder in ARTIFACTS.items():
            if (run_dir / name).is_file():
                logger.experiment.log_artifact(logger.run_id, str(run_dir / name), folder)
    logger.finalize("success")


def test_scalars(metrics: dict) -> dict[str, float]:
    """metrics.json's scores as test/... scalars, the unit in the name of those that have one
    (mae_degF, mse_degF2); the by_lead lists left to the figures."""
    out = {}
    for key, value in flat(metrics).items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        parts = key.split("/")
        if "by_lead" not in parts:
            out[f"test/{key}{_unit_suffix(parts, metrics)}"] = value
    return out


def _unit_suffix(parts: list[str], metrics: dict) -> str:
    score = parts[-1]
    if score not in IN_UNITS | IN_SQUARED_UNITS:
        return ""
    if metrics.get("space") == "scaled":
        unit = "z"
    elif "by_target" in parts:
        unit = (metrics.get("units") or {}).get(parts[parts.index("by_target") + 1]) or ""
    else:
        units = set((metrics.get("units") or {}).values())
        unit = units.pop() if len(units) == 1 else ""
    unit = str(unit or "").replace("%", "pct").replace("\N{DEGREE SIGN}", "deg")
    unit = UNSAFE.sub("", unit).replace(" ", "")
    if not unit:
        return ""
    return f"_{unit}2" if score in IN_SQUARED_UNITS else f"_{unit}"


def _tensorboard(logger: TensorBoardLogger, metrics: dict, pngs: list[Path]) -> None:
    """The one hparams session (hp_metric: the model's test MAE), a figure of each score by
    lead, the plots as images and the learning curves drawn from the losses logged."""
    import matplotlib.pyplot as plt
    from matplotlib.image import imread  # only a run that gets this far pays for it

    model_mae = metrics.get("model", {}).get("mae")
    hp_metric = float("nan") if model_mae is None else float(model_mae)
    logger.log_hyperparams(params(dict(logger.hparams)), metrics={"hp_metric": hp_metric})
    writer = logger.experiment
    everyone = {"model": metrics.get("model", {}), **(metrics.get("baselines") or {})}
    unit = tables.unit_label(metrics)
    lead = tables.lead_unit(metrics.get("step_seconds"))
    names = sorted({s for m in everyone.values() for s in (m.get("by_lead") or {})})
    for score in names:
        lines = {k: m["by_lead"][score] for k, m in everyone.items()
                 if score in (m.get("by_lead") or {})}
        shown = unit if score in IN_UNITS else ""
        writer.add_figure(f"test/by_lead/{score}", plots.error_by_lead(lines, score, shown, lead))
    for path in pngs:
        writer.add_image(f"plots/{path.stem}", imread(path), dataformats="HWC")
    if not any(p.stem == "learning_curves" for p in pngs):
        history = _history(logger)
        if history is not None:
            loss = str(logger.hparams.get("model/loss", "loss"))
            writer.add_figure("plots/learning_curves", plots.learning_curves(history, loss))
    writer.flush()
    plt.close("all")


def _history(logger: TensorBoardLogger):
    """The losses Lightning logged to this run's event files, as metrics.csv's columns."""
    import pandas as pd
    from tensorboard.backend.event_processing import event_accumulator as ea

    logger.experiment.flush()
    events = ea.EventAccumulator(logger.log_dir, size_guidance={ea.SCALARS: 0})
    events.Reload()
    tags = set(events.Tags().get("scalars", []))
    if "epoch" not in tags:
        return None
    epoch = {e.step: e.value for e in events.Scalars("epoch")}
    rows = [{"step": e.step, "epoch": int(epoch[e.step]), tag: e.value}
            for tag in ("train/loss_epoch", "val/loss") if tag in tags
            for e in events.Scalars(tag) if e.step in epoch]
    return pd.DataFrame(rows) if rows else None


def flat(tree: Any, prefix: str = "", enumerate_lists: bool = True) -> dict[str, Any]:
    """Nested dicts -> {"a/b/c": value}, keys made safe for every logger; lists are numbered
    from 1 (metrics.json's lists are by lead) or, with enumerate_lists=False, kept as text;
    None stays None (`params` leaves it out)."""
    if isinstance(tree, Mapping):
        items = tree.items()
    elif isinstance(tree, list | tuple) and enumerate_lists:
        items = ((i, v) for i, v in enumerate(tree, start=1))
    else:
        return {prefix: str(tree) if isinstance(tree, list | tuple) else tree}
    out = {}
    for key, value in items:
        out |= flat(value, f"{prefix}/{UNSAFE.sub('_', str(key))}".lstrip("/"), enumerate_lists)
    return out


def tracks(logger: Mapping | None) -> bool:
    """Whether the logger is an experiment tracker (tensorboard, mlflow), not the CSV log."""
    return _class_name(logger) in NEEDS


def _overrides() -> list[str] | None:
    """The command line's overrides of a forecast-train job; None outside one."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return list(HydraConfig.get().overrides.task)


def _class_name(logger: Mapping | None) -> str:
    return str((logger or {}).get("_target_", "")).rsplit(".", 1)[-1]
