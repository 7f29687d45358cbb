"""One forecast-train run, in stages: prepare -> fit -> evaluate -> write (a backtest runs the
middle two per fold). Between them, typed records: `Prepared` (the windows), `Fitted` (the model
and its trainer), `Evaluation` (`Scores`, the forecasts table, gate values, calibration.json's
content). The command itself is forecast.runs.train_cli; `run` returns the sweep objective."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.profilers import PassThroughProfiler

from forecast import config
from forecast.config import NetOptions, TrainingOptions
from forecast.data import covariates, largepanel, loader, prepared, repair_log
from forecast.data.panel import Panel, offset, season_length, split_points, to_panel
from forecast.data.windows import PanelDataModule
from forecast.evaluation import conformal, folds, intervals, published, scoring
from forecast.evaluation.forecasts import forecast_table
from forecast.evaluation.scores import Scores
from forecast.models import checkpoints, inference, options
from forecast.models.backbone import fit_backbone
from forecast.models.forecaster import Forecaster
from forecast.models.network import RegLSTM
from forecast.report import tables
from forecast.runs import (
    blending,
    learning_log,
    loggers,
    outputs,
    pruning,
    resume,
    runfolder,
    stopping,
)
from forecast.runs.starting_point import StartingPoint

log = logging.getLogger(__name__)
# the final scores: plain lines on the console and in train.log (conf/train.yaml, job_logging)
said = logging.getLogger("forecast.scores")
config.register()
Interrupted = stopping.Interrupted  # a run stopped by Ctrl-C or SIGTERM


def load_panel(data: DictConfig, seed: int, targets=None, min_steps: int = 0):
    """The data.* options -> Panel. With `targets` and `min_steps` (lookback + horizon) the
    targets are checked to be numeric and non-empty, and every series long enough."""
    # the typed schema (a DataConfig) passed whole; a missing data.path stops here, named
    record = OmegaConf.to_object(data)
    targets = OmegaConf.to_container(targets) if OmegaConf.is_config(targets) else targets
    if record.memmap:
        panel = largepanel.load(record, targets, min_steps)
    else:
        panel = to_panel(loader.load(record, seed=seed, targets=targets, min_steps=min_steps),
                         record.freq)
    return covariates.attach(panel, record)


class NoProfiler(PassThroughProfiler):
    """Lightning's default, no profiling, without a generator-based context per profiled call:
    the trainer enters dozens of them a training step (benchmarks/README.md).
    trainer.profiler=simple (or any of Lightning's) still profiles."""

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
    return pl.Trainer(callbacks=[checkpoint, stop, *pruning.callbacks(cfg)], logger=logger,
                      default_root_dir=str(run_dir), **kwargs)


def run(cfg: DictConfig, run_dir: Path) -> float:
    """One run into `run_dir` (a backtest when evaluate.folds > 1), which it owns while it runs
    and marks complete at its end; returns the best validation loss (scaled), the sweep
    objective. Ctrl-C or SIGTERM ends it with Interrupted: nothing scored or marked complete,
    the checkpoints kept, the lock released, the command that resumes it in the message."""
    model_options(cfg.model, cfg.lookback)
    conformal.check_method(cfg.evaluate.calibration, cfg.evaluate.adapt_rate)
    loggers.require(cfg.logger)
    if any(int(os.environ.get(rank, 0)) for rank in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")):
        return _run(cfg, run_dir)  # a DDP worker (or srun task): the folder is rank 0's
    with stopping.Signals() as signals:
        try:
            with runfolder.claim(run_dir, cfg.resume):
                save_config(cfg, run_dir)
                objective = _run(cfg, run_dir)
                signals.check()  # a signal whose KeyboardInterrupt something swallowed
                runfolder.mark_complete(run_dir)
                signals.finished = True
        except (KeyboardInterrupt, SystemExit) as error:
            if signals.signum is None and not isinstance(error, KeyboardInterrupt):
                raise  # a sys.exit of its own, not an interruption
            runfolder.mark_interrupted(run_dir)
            raise stopping.interrupted(signals.signum, error, cfg, run_dir) from None
    return objective


def _run(cfg: DictConfig, run_dir: Path) -> float:
    clock = time.perf_counter()
    panel = load(cfg, run_dir)
    split = (cfg.data.split.train, cfg.data.split.val, cfg.data.split.test)
    if cfg.evaluate.folds < 1:
        raise ValueError(f"evaluate.folds={cfg.evaluate.folds} must be 1 (a single split) or more")
    if cfg.evaluate.folds > 1:
        return backtest(cfg, panel, split, run_dir)
    prep = prepare(cfg, panel, split)
    seconds = {"prepare": time.perf_counter() - clock}
    logger = loggers.build(cfg.logger, run_dir, cfg)
    fitted = fit(cfg, prep, run_dir, logger)
    if fitted is None:  # a DDP worker process: rank 0 evaluates and writes
        return float("nan")
    result = evaluate(cfg, prep, fitted, run_dir, seconds)
    scores = write(cfg, run_dir, result, prep.targets)
    metrics = scores.to_json()
    loggers.log_results(logger, metrics, run_dir)
    tell(cfg, scores, metrics, run_dir)
    return scores.val_loss


def load(cfg: DictConfig, run_dir: Path) -> Panel:
    """The run's panel; provenance.json (what produced the run, and what the loader repaired in
    its data) written beside it."""
    with repair_log.collect() as repaired:
        panel = load_panel(cfg.data, cfg.seed, targets=cfg.targets,
                           min_steps=cfg.lookback + cfg.horizon)
    tables.write_json(outputs.provenance(panel, repaired), run_dir / "provenance.json")
    return panel


def tell(cfg: DictConfig, scores: Scores, metrics: dict, run_dir: Path) -> None:
    """The final lines of a single run on the console and in train.log; `metrics` is
    scores.to_json()."""
    said.info(f"\nTest scores on {scores.windows['test']} windows x {cfg.horizon} leads "
              f"({tables.duration(cfg.horizon, scores.step_seconds)}) of "
              f"{', '.join(scores.targets)}, in {tables.unit_label(metrics) or 'data units'}:")
    finish(metrics, run_dir)
    if "calibrated" in scores.model:  # intervals: test coverage and width
        said.info(intervals.describe(scores.model))
    if cfg.evaluate.published:
        said.info(published.describe(cfg.data.path, cfg.lookback, cfg.horizon,
                                     scores.model["mse"], scores.model["mae"], scores.space,
                                     cfg.evaluate.origin_hour))


def save_config(cfg: DictConfig, run_dir: Path) -> None:
    """.hydra/config.yaml, the resolved config forecast-predict rebuilds a run from; written by
    the run itself so that a run started from Python leaves the same folder as forecast-train
    (under Hydra it rewrites Hydra's own copy with the same content)."""
    (run_dir / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")


def model_options(model: DictConfig, lookback: int) -> tuple[NetOptions, TrainingOptions]:
    """The `model.*` options as their records, impossible ones refused before any data is read
    (a data.memmap build can take minutes). What needs the series count is checked when the net
    is built, and so is dropout, whose one-layer warning is given then."""
    return options.check_model(OmegaConf.to_object(model), lookback)


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
                            stride=cfg.evaluate.stride, ends=ends, known=cfg.data.known,
                            origin_hour=cfg.evaluate.origin_hour)


@dataclass(frozen=True)
class Fitted:
    """A model fitted on a Prepared's train windows. `module` holds the last epoch's weights
    until the test forecast loads `best` (the best checkpoint's path; None without one);
    `trainer` is the one that forecasts (a single-device one after a DDP fit); `val_loss` the
    best validation loss (scaled, NaN without one); `seconds` the fit's wall time."""

    module: Forecaster
    datamodule: PanelDataModule
    trainer: pl.Trainer
    best: str | None
    epochs: int
    val_loss: float
    seconds: float


@dataclass(frozen=True)
class Evaluation:
    """What a fitted model's test windows give: `scores` (metrics.json), `forecasts` (the
    forecasts.parquet table, with interval bounds), `gates` (a ManualLSTM's gate values for
    plots/gates.png; empty for other cells) and `calibration` (calibration.json's content; None
    when the run saves none)."""

    scores: Scores
    forecasts: pd.DataFrame
    gates: dict
    calibration: dict | None
    loss: str  # the loss the model trained on, as the learning curves are labelled


def fit(cfg: DictConfig, prep: prepared.Prepared, out_dir: Path, logger=None) -> Fitted | None:
    """Fit a fresh model on prep's train windows into out_dir (checkpoints/ with data.json, the
    learning log), resuming from cfg.resume when set; None in a DDP worker other than rank 0,
    whose part ends with the fit."""
    clock = time.perf_counter()
    pl.seed_everything(cfg.seed, workers=True)
    net, training = model_options(cfg.model, cfg.lookback)
    module = Forecaster(RegLSTM(**options.shapes(prep), options=net), training)
    dm = prepared.datamodule(prep, cfg.data.batch_size, cfg.data.num_workers, cfg.seed,
                             cfg.data.windows_per_epoch, module.net.input_columns)
    trainer = build_trainer(cfg, out_dir, logger)
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    data_json = out_dir / "checkpoints" / "data.json"
    tables.write_json(prepared.data_description(prep), data_json)
    module.data_digest = checkpoints.digest(data_json)  # recorded in every checkpoint
    ckpt_path = resume.checkpoint_path(cfg.resume, out_dir)
    start = None
    if module.net.backbone is not None and not ckpt_path:  # a resumed one is in the checkpoint
        kept = fit_backbone(module.net, dm.dataset("train"), dm.dataset("val"),
                            module.point_loss, net.backbone, seed=cfg.seed)
        start = None if module.net.blend_mode else StartingPoint.of(module, dm.dataset("val"))
        log.info("model.backbone=%s fitted on the train windows: %s%s", net.backbone, kept,
                 "" if start is None else f"; val/loss {start.val_loss:.4g} before training")
    if ckpt_path:
        resume.check_resumed(ckpt_path, dict(module.hparams))
        runfolder.mark_complete(out_dir, False)  # its checkpoints change from here on
    earlier = learning_log.earlier_log(trainer, ckpt_path)
    stopping.fit(trainer, module, datamodule=dm, ckpt_path=ckpt_path)  # interrupted: raises
    seconds = time.perf_counter() - clock
    if trainer.global_rank != 0:
        return None  # rank 0 evaluates; the others are done
    learning_log.continue_log(trainer, earlier)
    said.info(stopping.why_stopped(trainer))  # why it stopped, which epoch's weights are used
    best_score = trainer.checkpoint_callback.best_model_score
    best = trainer.checkpoint_callback.best_model_path or None
    val_loss = float(best_score if best_score is not None else float("nan"))
    if start is not None:
        best, val_loss, kept = start.keep_if_better(module, best, val_loss)
        if kept:
            said.info(kept)
    if module.net.blend_mode and best:
        blended = blending.blend_best(module, dm.dataset("val"), best, cfg.seed)
        val_loss = blended.blended_loss
        said.info(blended.describe(module.net.backbone.kind))
    return Fitted(module, dm, forecasting_trainer(cfg, trainer), best, trainer.current_epoch,
                  val_loss, seconds)


def forecasting_trainer(cfg: DictConfig, trainer: pl.Trainer) -> pl.Trainer:
    """The trainer that forecasts the test windows: the fit's own, or after a DDP fit one on a
    single device (a DDP trainer's predictions are split across ranks)."""
    if trainer.world_size == 1:
        return trainer
    return pl.Trainer(accelerator=cfg.trainer.get("accelerator", "auto"), devices=1,
                      logger=False, enable_progress_bar=False, enable_checkpointing=False)


def evaluate(cfg: DictConfig, prep: prepared.Prepared, fitted: Fitted, out_dir: Path,
             seconds: dict | None = None) -> Evaluation:
    """Forecast prep's test windows from the best checkpoint, calibrate the intervals on the
    validation windows, and score the model and the baselines on the test windows. `seconds`:
    the timings of stages before the fit, kept in front of the fit's and this one's."""
    clock = time.perf_counter()
    quantiles = fitted.module.net.quantiles or None  # (Q,) levels of a quantile model
    model_scaled = inference.forecast(fitted.trainer, fitted.module, fitted.datamodule,
                                      ckpt_path=fitted.best)  # (K, H, n_targets[, Q])
    # the best weights are loaded now: calibrate the intervals on the validation windows
    calibration = intervals.calibrate_run(OmegaConf.to_object(cfg.evaluate), prep,
                                          fitted.module, fitted.datamodule, quantiles,
                                          out_dir / "checkpoints")
    season = cfg.evaluate.season or season_length(prep.panel.times)
    baseline = scoring.baseline_forecasters(prep, cfg.evaluate.baselines, season, cfg.seed)
    tested = scoring.evaluate(prep, model_scaled, baseline, season, cfg.evaluate.space,
                              quantiles)
    forecasts = forecast_table(prep, model_scaled, quantiles)
    model, saved = tested["model"], None
    if calibration is not None:  # the whole test arrays only for a run with intervals
        found = intervals.score_test(calibration, prep, prepared.to_units(prep, model_scaled),
                                     prepared.actuals(prep), quantiles, cfg.evaluate.space)
        model, saved = intervals.merged(model, found.scores), found.calibration
        for name, column in found.bounds.items():  # in place: the table can be 20M rows
            forecasts[name] = column
    gates = inference.gate_activations(fitted.module, fitted.datamodule)
    scores = Scores(
        model=model, baselines=tested["baselines"], space=tested["space"],
        windows={**{k: len(v) for k, v in prep.indices.items()},
                 "dropped": sum(prep.dropped.values()), "dropped_by_split": prep.dropped},
        val_loss=fitted.val_loss, epochs=fitted.epochs,
        seconds={**(seconds or {}), "fit": fitted.seconds,
                 "evaluate": time.perf_counter() - clock},
        lookback=cfg.lookback, horizon=cfg.horizon, targets=prep.targets,
        units={t: cfg.data.units.get(t) for t in prep.targets},
        step_seconds=offset(prep.panel.freq)[0].total_seconds(),
    )
    return Evaluation(scores, forecasts, gates, saved, fitted.module.loss_name)


def backtest(cfg: DictConfig, panel: Panel, split, run_dir: Path) -> float:
    """evaluate.folds expanding-window folds; each refits scaler, baselines and model on its own
    training span, in <run>/folds/<i>/. metrics.json holds the mean (and _std) over folds."""
    fold_scores, fold_tables = [], []
    plan = folds.fold_ends(used_steps(cfg.data, panel), split, cfg.evaluate.folds, cfg.horizon)
    for i, ends in enumerate(plan):
        log.info("backtest fold %d/%d: train [0, %d), val [%d, %d), test [%d, %d)",
                 i + 1, cfg.evaluate.folds, ends[0], ends[0], ends[1], ends[1], ends[2])
        prep = prepare(cfg, panel, split, ends)
        fold_dir = run_dir / "folds" / str(i)
        fold_cfg = cfg  # resume=true: a fold the interrupted run had not reached starts afresh
        if cfg.resume is True and not (fold_dir / "checkpoints" / "last.ckpt").is_file():
            fold_cfg = OmegaConf.merge(cfg, {"resume": None})
        fitted = fit(fold_cfg, prep, fold_dir)  # its own logger, in the fold's folder
        if fitted is None:  # a DDP worker: every rank fits every fold, rank 0 scores it
            continue
        result = evaluate(cfg, prep, fitted, fold_dir)
        result = replace(result, scores=replace(result.scores, ends=list(ends),
                                                test_start=str(panel.times[ends[1]])))
        intervals.save_run(result.calibration, fold_dir / "checkpoints")
        outputs.write_metrics(fold_dir, result.scores)
        fold_scores.append(result.scores)  # the gate values of a fold are not plotted
        fold_tables.append(result.forecasts.assign(fold=i))
    if not fold_scores:  # a DDP worker
        return float("nan")
    summary = Evaluation(folds.aggregate_folds(fold_scores),
                         pd.concat(fold_tables, ignore_index=True), {}, None, result.loss)
    scores = write(cfg, run_dir, summary, fold_scores[0].targets)
    metrics = scores.to_json()
    if loggers.tracks(cfg.logger):  # each fold's logger has its losses; this one the summary
        loggers.log_results(loggers.build(cfg.logger, run_dir, cfg), metrics, run_dir)
    said.info(f"\nBacktest over {cfg.evaluate.folds} folds, mean (and std) of test scores, "
              f"in {tables.unit_label(metrics) or 'data units'}:")
    finish(metrics, run_dir)
    return scores.val_loss


def write(cfg: DictConfig, run_dir: Path, result: Evaluation, targets) -> Scores:
    """The run folder's calibration.json, then its scores, plots and page
    (forecast.runs.outputs), titled from the config; returns the scores as metrics.json holds
    them."""
    intervals.save_run(result.calibration, run_dir / "checkpoints")
    step = result.scores.step_seconds
    title = f"{cfg.model.name} on " \
            f"{outputs.data_label(cfg.data.name, cfg.data.get('path'), run_dir)}: " \
            f"{', '.join(targets)}, lookback " \
            f"{tables.duration(cfg.lookback, step)}, horizon " \
            f"{tables.duration(cfg.horizon, step)}"
    return outputs.write_run(run_dir, title, result.scores, result.forecasts, targets,
                             result.gates, cfg.evaluate.plot_days, result.loss)


def finish(metrics: dict, run_dir: Path) -> None:
    said.info(tables.summary_table(metrics))
    said.info(tables.verdict(metrics))
    said.info(f"Run folder: {run_dir}")
