"""Experiment loggers (logger=csv | tensorboard | mlflow): the check that a logger's package is
installed, made before any data is read; building the logger into the run folder; and handing it
what a run produced: the config as hyper-parameters, the test scores of metrics.json flattened
(model and every baseline, in the units metrics.json has) and the plots as images or artifacts.
The train/val losses reach it from Lightning while the model trains."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, MLFlowLogger, TensorBoardLogger

# logger class -> (module it needs, the pyproject extra that installs it, its PyPI package)
NEEDS = {"TensorBoardLogger": ("tensorboard", "tensorboard", "tensorboard"),
         "MLFlowLogger": ("mlflow", "mlflow", "mlflow-skinny")}
BATCH = 500  # metrics per call: MLflow takes at most 1000 in one batch
UNSAFE = re.compile(r"[^\w./\- :]")  # what MLflow refuses in a key (TensorBoard takes all)


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
    in the run folder), with the run's `config` logged as hyper-parameters; False for none."""
    if not logger:
        return False
    options = OmegaConf.to_container(logger, resolve=True)
    save_dir = run_dir / options.pop("save_dir", "")
    if _class_name(options) == "MLFlowLogger":
        # a run reports to the tracking store it is given, nowhere else (MLflow 3's usage
        # telemetry is off unless the user turns it on)
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if _class_name(options) == "MLFlowLogger" and not options.get("tracking_uri"):
        # the local file store under the run folder: MLflow 3 asks for this opt-in to use one
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        options["tracking_uri"] = save_dir.resolve().as_uri()
    made = instantiate(options, save_dir=str(save_dir))
    if tracks(logger):  # a CSV logger writing now would start metrics.csv afresh before a resume
        made.log_hyperparams(flat(OmegaConf.to_container(config, resolve=True),
                                  enumerate_lists=False))
    return made


def log_results(logger: Logger | bool, metrics: dict, run_dir: Path) -> None:
    """Hand a tracking logger the test scores (keys test/model/mae, test/baselines/ridge/mae,
    test/model/by_lead/mae/1, ...) and the plots; the CSV logger has them beside it already."""
    if not isinstance(logger, TensorBoardLogger | MLFlowLogger):
        return
    scores = {k: v for k, v in flat(metrics).items() if isinstance(v, int | float)}
    scores = {f"test/{k}": v for k, v in scores.items() if not isinstance(v, bool)}
    names = sorted(scores)
    for start in range(0, len(names), BATCH):
        logger.log_metrics({k: scores[k] for k in names[start:start + BATCH]}, step=0)
    plots = sorted((run_dir / "plots").glob("*.png"))
    if isinstance(logger, TensorBoardLogger):
        from matplotlib.image import imread  # only a run that gets this far pays for it

        for path in plots:
            logger.experiment.add_image(f"plots/{path.stem}", imread(path), dataformats="HWC")
    else:
        for path in [*plots, run_dir / "metrics.json"]:
            folder = "plots" if path.suffix == ".png" else None
            logger.experiment.log_artifact(logger.run_id, str(path), folder)
    logger.finalize("success")


def flat(tree: Any, prefix: str = "", enumerate_lists: bool = True) -> dict[str, Any]:
    """Nested dicts -> {"a/b/c": value}, keys made safe for every logger; lists are numbered
    from 1 (metrics.json's lists are by lead) or, with enumerate_lists=False, kept as text;
    None becomes "null"."""
    if isinstance(tree, Mapping):
        items = tree.items()
    elif isinstance(tree, list | tuple) and enumerate_lists:
        items = ((i, v) for i, v in enumerate(tree, start=1))
    else:
        value = "null" if tree is None else tree
        return {prefix: str(value) if isinstance(value, list | tuple) else value}
    out = {}
    for key, value in items:
        out |= flat(value, f"{prefix}/{UNSAFE.sub('_', str(key))}".lstrip("/"), enumerate_lists)
    return out


def tracks(logger: Mapping | None) -> bool:
    """Whether the logger is an experiment tracker (tensorboard, mlflow), not the CSV log."""
    return _class_name(logger) in NEEDS


def _class_name(logger: Mapping | None) -> str:
    return str((logger or {}).get("_target_", "")).rsplit(".", 1)[-1]
