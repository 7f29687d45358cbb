"""One forecast-train run: fit, test, evaluate against baselines, plot (the command itself is
forecast.runs.train_cli). `run` returns the sweep objective."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.profilers import PassThroughProfiler

from forecast import config
from forecast.data import largepanel, loader, prepared, repair_log
from forecast.data.panel import offset, season_length, split_points, to_panel
from forecast.evaluation import conformal, folds, intervals, published, scoring
from forecast.evaluation.forecasts import forecast_table
from forecast.models import checkpoints, inference, options
from forecast.models.forecaster import Forecaster
from forecast.models.network import RegLSTM
from forecast.report import tables
from forecast.runs import loggers, outputs, runfolder

log = logging.getLogger(__name__)
# the final scores: plain lines on the console and in train.log (conf/train.yaml, job_logging)
scores = logging.getLogger("forecast.scores")
config.register()


def load_panel(data: DictConfig, seed: int, targets=None, min_steps: int = 0):
    """The data.* options -> Panel. With `targets` and `min_steps` (lookback + horizon) the
    targets are checked to be numeric and non-empty, and every series long enough."""
    # the typed schema (a DataConfig) passed whole; a missing data.path stops here, named
    record = OmegaConf.to_object(data)
    targets = OmegaConf.to_container(targets) if OmegaConf.is_config(targets) else targets
    if record.memmap:
        return largepanel.load(record, targets, min_steps)
    df = loader.load(record, seed=seed, targets=targets, min_steps=min_steps)
    return to_panel(df, record.freq)


class NoProfiler(PassThroughProfiler):
    """Lightning's default, no profiling, without a generator-based context per profiled call:
    the trainer enters ~70 of them a training step (~0.1 ms). trainer.profiler=simple (or any
    of Lightning's) still profiles."""

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext(action_name)


def build_trainer(cfg: DictConfig, run_dir: Path, logger=None) -> pl.Trainer:
    """The trainer of one fit into run_dir; `logger` the run's own (built here when None)."""
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best", monitor="val/loss", mode="min",
        save_last=True, save_top_k=1,
    )
    stop = pl.callbacks.EarlyStopping(monitor="val/loss", patience=cfg.early_stopping_patience)
    if logger is None:
        logger = loggers.build(cfg.logger, run_dir, cfg)
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    kwargs["profiler"] = kwargs.get("profiler") or NoProfiler()
    return pl.Trainer(callbacks=[checkpoint, stop], logger=logger,
                      default_root_dir=str(run_dir), **kwargs)


def run(cfg: DictConfig, run_dir: Path) -> float:
    """One run into `run_dir` (a backtest when evaluate.folds > 1), which it owns while it runs
    and marks complete at its end; returns the best validation loss (scaled), the sweep
    objective."""
    check_model(cfg.model, cfg.lookback)
    conformal.check_method(cfg.evaluate.calibration, cfg.evaluate.adapt_rate)
    loggers.require(cfg.logger)
    if int(os.environ.get("LOCAL_RANK", 0)) or int(os.environ.get("NODE_RANK", 0)):
        return _run(cfg, run_dir)  # a DDP worker: the folder is its launcher's
    with runfolder.claim(run_dir, cfg.resume):
        save_config(cfg, run_dir)
        objective = _run(cfg, run_dir)
        runfolder.mark_complete(run_dir)
    return objective


def _run(cfg: DictConfig, run_dir: Path) -> float:
    clock = time.perf_counter()
    with repair_log.collect() as repaired:
        panel = load_panel(cfg.data, cfg.seed, targets=cfg.targets,
                           min_steps=cfg.lookback + cfg.horizon)
    tables.write_json(outputs.provenance(panel, repaired), run_dir / "provenance.json")
    split = (cfg.data.split.train, cfg.data.split.val, cfg.data.split.test)
    if cfg.evaluate.folds < 1:
        raise ValueError(f"evaluate.folds={cfg.evaluate.folds} must be 1 (a single split) or more")
    if cfg.evaluate.folds > 1:
        return backtest(cfg, panel, split, run_dir)
    prep = prepare(cfg, panel, split)
    load_seconds = time.perf_counter() - clock
    logger = loggers.build(cfg.logger, run_dir, cfg)
    result = fit_and_evaluate(cfg, prep, run_dir, logger)
    if result is None:  # a DDP worker process
        return float("nan")
    metrics, forecasts, extra = result
    metrics["seconds"] = {"prepare": load_seconds, **metrics["seconds"]}
    write_run(cfg, run_dir, metrics, forecasts, prep.targets, extra)
    loggers.log_results(logger, metrics, run_dir)
    scores.info(f"\nTest scores on {len(prep.indices['test'])} windows x {cfg.horizon} leads "
                f"({tables.duration(cfg.horizon, metrics['step_seconds'])}) of "
                f"{', '.join(prep.targets)}, in {tables.unit_label(metrics) or 'data units'}:")
    finish(metrics, run_dir)
    if "calibrated" in metrics["model"]:  # intervals: test coverage and width
        scores.info(intervals.describe(metrics["model"]))
    if cfg.evaluate.published and metrics["space"] != "scaled":
        scores.info("The published tables score z-scores: set evaluate.space=scaled to compare.")
    elif cfg.evaluate.published:
        scores.info(published.describe(cfg.data.path, cfg.lookback, cfg.horizon,
                                       metrics["model"]["mse"], metrics["model"]["mae"]))
    return metrics["val_loss"]


def save_config(cfg: DictConfig, run_dir: Path) -> None:
    """.hydra/config.yaml, the resolved config forecast-predict rebuilds a run from; written by
    the run itself so that a run started from Python leaves the same folder as forecast-train
    (under Hydra it rewrites Hydra's own copy with the same content)."""
    (run_dir / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")


def check_model(model: DictConfig, lookback: int) -> None:
    """Refuse impossible model options before any data is read (a data.memmap build can take
    minutes). The options that need the data (the series count) are checked again when the net
    is built, and so is dropout, whose one-layer warning is given then."""
    options.check_model(OmegaConf.to_object(model), lookback)


def used_steps(data: DictConfig, panel) -> int:
    """How many leading time steps the run splits and uses: data.steps, or all of them."""
    if data.steps is None:
        return panel.n_steps
    if not 0 < data.steps <= panel.n_steps:
        raise ValueError(f"data.steps={data.steps} must lie in [1, {panel.n_steps}] (the "
                         "panel's steps); lower it or set data.steps=null to use every step")
    return data.steps


def prepare(cfg: DictConfig, panel, split, ends=None) -> prepared.Prepared:
    if cfg.evaluate.stride < 1:
        raise ValueError(f"evaluate.stride={cfg.evaluate.stride} must be >= 1")
    if ends is None:
        steps = used_steps(cfg.data, panel)
        ends = (*split_points(steps, split), steps)
    return prepared.prepare(panel, cfg.lookback, cfg.horizon, cfg.targets, split,
                            cfg.data.calendar, cfg.data.mask_features,
                            stride=cfg.evaluate.stride, ends=ends)


def fit_and_evaluate(cfg: DictConfig, prep: prepared.Prepared, out_dir: Path, logger=None):
    """Fit a fresh model on prep's train windows, forecast its test windows from the best
    checkpoint and score it against the baselines. -> (metrics, forecasts table, gate values)."""
    seconds, clock = {}, time.perf_counter()
    pl.seed_everything(cfg.seed, workers=True)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    schema = OmegaConf.to_object(cfg.model)
    module = Forecaster(RegLSTM(**options.shapes(prep), options=schema.net()), schema.training())
    dm = prepared.datamodule(prep, cfg.data.batch_size, cfg.data.num_workers, cfg.seed,
                             cfg.data.windows_per_epoch, module.net.input_columns)
    trainer = build_trainer(cfg, out_dir, logger)
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    data_json = out_dir / "checkpoints" / "data.json"
    tables.write_json(prepared.data_description(prep), data_json)
    module.data_digest = checkpoints.digest(data_json)  # recorded in every checkpoint
    ckpt_path = resume_checkpoint(cfg.resume, out_dir)
    if ckpt_path:
        check_resumed(ckpt_path, dict(module.hparams))
        runfolder.mark_complete(out_dir, False)  # its checkpoints change from here on
    earlier = earlier_log(trainer, ckpt_path)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    seconds["fit"], clock = time.perf_counter() - clock, time.perf_counter()

    best = trainer.checkpoint_callback.best_model_path or None
    epochs = trainer.current_epoch
    best_score = trainer.checkpoint_callback.best_model_score
    if trainer.world_size > 1:
        if trainer.global_rank != 0:
            return None  # rank 0 evaluates; the others are done
        # predictions of a DDP trainer are split across ranks: evaluate on one device instead
        trainer = pl.Trainer(accelerator=cfg.trainer.get("accelerator", "auto"), devices=1,
                             logger=False, enable_progress_bar=False, enable_checkpointing=False)
    model_scaled = inference.forecast(trainer, module, dm, ckpt_path=best)
    # the best weights are loaded now: calibrate the intervals on the validation windows
    calibration = intervals.calibrate_run(OmegaConf.to_container(cfg.evaluate), prep, module,
                                          dm, model["quantiles"], out_dir / "checkpoints")
    season = cfg.evaluate.season or season_length(prep.panel.times)
    baseline = scoring.baseline_forecasters(prep, cfg.evaluate.baselines, season, cfg.seed)
    metrics = scoring.evaluate(prep, model_scaled, baseline, season, cfg.evaluate.space,
                                model["quantiles"])
    forecasts = forecast_table(prep, model_scaled, model["quantiles"])
    if calibration is not None:  # the whole test arrays only for a run with intervals
        intervals.add_to_run(metrics, forecasts, prep, prepared.to_units(prep, model_scaled),
                             prepared.actuals(prep), calibration, model["quantiles"],
                             cfg.evaluate.space)
        intervals.save_run(calibration, out_dir / "checkpoints")
    continue_log(trainer, earlier)
    gates = inference.gate_activations(module, dm)
    seconds["evaluate"] = time.perf_counter() - clock
    metrics.update({
        "windows": {**{k: len(v) for k, v in prep.indices.items()},
                    "dropped": sum(prep.dropped.values()), "dropped_by_split": prep.dropped},
        "val_loss": float(best_score if best_score is not None else float("nan")),
        "epochs": epochs, "seconds": seconds,
        "lookback": cfg.lookback, "horizon": cfg.horizon, "targets": prep.targets,
        "units": {t: cfg.data.units.get(t) for t in prep.targets},
        "step_seconds": offset(prep.panel.freq)[0].total_seconds(),
    })
    return metrics, forecasts, gates


def resume_checkpoint(resume, run_dir: Path) -> str | None:
    """The checkpoint `resume` points at: None, true (this run's last.ckpt) or a path."""
    if resume in (None, False):
        return None
    path = run_dir / "checkpoints" / "last.ckpt" if resume is True else Path(str(resume))
    if not path.is_file():
        raise FileNotFoundError(
            f"resume={resume}: no checkpoint at '{path}'. Resume an interrupted run with "
            "hydra.run.dir=<its run folder> resume=true, or give resume=<path to a .ckpt>"
        )
    log.info("resuming from %s", path)
    return str(path)


def _csv_log(trainer: pl.Trainer) -> Path | None:
    logger = trainer.logger
    if isinstance(logger, pl.loggers.CSVLogger):
        return Path(logger.log_dir) / "metrics.csv"
    return None


def earlier_log(trainer: pl.Trainer, ckpt_path: str | None) -> pd.DataFrame | None:
    """On resume, the CSV learning log of the epochs up to the checkpoint's (the logger starts
    its file afresh; rows after the checkpoint are trained again)."""
    path = _csv_log(trainer)
    if not ckpt_path or path is None or not path.is_file():
        return None
    rows, ckpt = pd.read_csv(path), checkpoints.read(ckpt_path)
    if "global_step" in ckpt and "step" in rows:  # a checkpoint may be saved within an epoch
        return rows[rows["step"] < ckpt["global_step"]]
    return rows[rows["epoch"] <= ckpt.get("epoch", -1)]


def continue_log(trainer: pl.Trainer, earlier: pd.DataFrame | None) -> None:
    """Put the epochs before a resume back in front of the resumed run's learning log."""
    path = _csv_log(trainer)
    if earlier is None or path is None or not path.is_file():
        return
    pd.concat([earlier, pd.read_csv(path)], ignore_index=True).to_csv(path, index=False)


def check_resumed(path: str, hparams: dict) -> None:
    """A resumed run must build the model its checkpoint trained: the same network arguments,
    lr, weight decay and loss. Otherwise the weights would load into a model that differs only in
    meaning (e.g. residual or loss), and the run would silently mix two models."""
    saved = checkpoints.read(path)["hyper_parameters"]
    # as this version stores them (an option's alias resolved); another version's is refused
    net_shapes, net = options.net_from_hparams(saved["net"], f"resume: the checkpoint '{path}'")
    saved = {**saved, "net": {**net_shapes, **options.to_hparams(net)}}
    changed = _differences(saved, hparams)
    if changed:
        raise ValueError(
            f"resume: the checkpoint '{path}' was trained with other settings (checkpoint vs "
            f"now: {changed}); resume with the run's own config (drop the overrides that "
            "changed) or start a new run"
        )


def _differences(old: dict, new: dict, prefix: str = "") -> dict:
    """{dotted key: (old, new)} wherever two nested dicts differ."""
    out = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out |= _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out[f"{prefix}{key}"] = (a, b)
    return out


def backtest(cfg: DictConfig, panel, split, run_dir: Path) -> float:
    """evaluate.folds expanding-window folds; each refits scaler, baselines and model on its own
    training span, in <run>/folds/<i>/. metrics.json holds the mean (and _std) over folds."""
    fold_metrics, fold_tables = [], []
    for i, ends in enumerate(folds.fold_ends(used_steps(cfg.data, panel), split, cfg.evaluate.folds,
                                                     cfg.horizon)):
        log.info("backtest fold %d/%d: train [0, %d), val [%d, %d), test [%d, %d)",
                 i + 1, cfg.evaluate.folds, ends[0], ends[0], ends[1], ends[1], ends[2])
        prep = prepare(cfg, panel, split, ends)
        metrics, forecasts, _ = fit_and_evaluate(cfg, prep, run_dir / "folds" / str(i))
        metrics["ends"] = list(ends)
        metrics["test_start"] = str(panel.times[ends[1]])
        tables.write_json(metrics, run_dir / "folds" / str(i) / "metrics.json")
        fold_metrics.append(metrics)
        fold_tables.append(forecasts.assign(fold=i))
    summary = folds.aggregate_folds(fold_metrics)
    summary["folds"] = [{"ends": m["ends"], "test_start": m["test_start"],
                         "model": tables.scalars(m["model"]),
                         "baselines": {n: tables.scalars(b)
                                       for n, b in m["baselines"].items()}}
                        for m in fold_metrics]
    summary["val_loss"] = float(np.mean([m["val_loss"] for m in fold_metrics]))
    summary["windows"] = {k: [m["windows"][k] for m in fold_metrics]
                          for k in ("train", "val", "test", "dropped")}
    summary["seconds"] = {"fit": sum(m["seconds"]["fit"] for m in fold_metrics)}
    summary |= {k: fold_metrics[0][k] for k in ("units", "step_seconds")}
    write_run(cfg, run_dir, summary, pd.concat(fold_tables, ignore_index=True),
              fold_metrics[0]["targets"], {})
    if loggers.tracks(cfg.logger):  # each fold's logger has its losses; this one the summary
        loggers.log_results(loggers.build(cfg.logger, run_dir, cfg), summary, run_dir)
    scores.info(f"\nBacktest over {cfg.evaluate.folds} folds, mean (and std) of test scores, "
                f"in {tables.unit_label(summary) or 'data units'}:")
    finish(summary, run_dir)
    return summary["val_loss"]


def write_run(cfg, run_dir: Path, metrics: dict, forecasts: pd.DataFrame, targets, gates):
    """The run folder's scores, plots and page (forecast.runs.outputs), titled from the config."""
    loss = "pinball" if cfg.model.quantiles else cfg.model.loss
    step = metrics["step_seconds"]
    title = f"{cfg.model.name} on {cfg.data.name}: {', '.join(targets)}, lookback " \
            f"{tables.duration(cfg.lookback, step)}, horizon " \
            f"{tables.duration(cfg.horizon, step)}"
    outputs.write_run(run_dir, title, metrics, forecasts, targets, gates,
                      cfg.evaluate.plot_days, loss)


def finish(metrics: dict, run_dir: Path) -> None:
    scores.info(tables.summary_table(metrics))
    scores.info(tables.verdict(metrics))
    scores.info(f"Run folder: {run_dir}")
