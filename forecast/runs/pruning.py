"""Pruning of an Optuna trial from inside its job: the validation loss reported to the study
after every epoch, and the fit stopped when the study's pruner says the trial is worse than
the others were at that epoch.

The sweeper (hydra_plugins/forecast_optuna_sweeper) passes the trial in the environment
variable FORECAST_OPTUNA_TRIAL (JSON: storage URL, study name, trial id and number, the
pruner's config), set for the job alone by hydra.job.env_set. A pruned fit raises
optuna.TrialPruned: the run is neither scored nor marked complete, and the sweeper records
the trial as pruned. Any other run (a single run, a grid sweep, forecast.fit) gets no
callback and imports no Optuna."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass

import pytorch_lightning as pl
from omegaconf import DictConfig

log = logging.getLogger(__name__)
TRIAL_ENV = "FORECAST_OPTUNA_TRIAL"
MONITOR = "val/loss"


@dataclass(frozen=True)
class TrialRef:
    """Where a job's trial lives: what the sweeper put in FORECAST_OPTUNA_TRIAL."""

    storage: str
    study: str
    trial_id: int
    number: int
    pruner: dict

    @classmethod
    def from_env(cls) -> TrialRef | None:
        text = os.environ.get(TRIAL_ENV)
        if not text:
            return None
        try:
            job = json.loads(text)
            return cls(str(job["storage"]), str(job["study"]), int(job["trial_id"]),
                       int(job["number"]), dict(job.get("pruner") or {}))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{TRIAL_ENV} is not the sweeper's trial ({error}): {text!r}"
                             ) from None


def open_trial(ref: TrialRef):
    """The running trial as an optuna.Trial, its study loaded with the sweep's pruner."""
    import optuna
    from hydra.utils import instantiate

    from hydra_plugins.forecast_optuna_sweeper._impl import open_storage

    pruner = instantiate(ref.pruner) if ref.pruner else optuna.pruners.NopPruner()
    study = optuna.load_study(study_name=ref.study, storage=open_storage(ref.storage),
                              pruner=pruner)
    return optuna.trial.Trial(study, ref.trial_id)


class Pruning(pl.Callback):
    """Reports val/loss at the end of every validation (sanity check excluded) and raises
    optuna.TrialPruned when the trial should stop. Under DDP rank 0 reports and decides, and
    the decision is broadcast so that every rank stops at the same epoch."""

    def __init__(self, ref: TrialRef, trial=None):
        self.ref = ref
        self.trial = trial

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(MONITOR)
        epoch = trainer.current_epoch
        prune = False
        if trainer.is_global_zero and value is not None and math.isfinite(float(value)):
            if self.trial is None:
                self.trial = open_trial(self.ref)
            self.trial.report(float(value), step=epoch)
            prune = bool(self.trial.should_prune())
        prune = bool(trainer.strategy.broadcast(prune, src=0))
        if prune:
            import optuna

            pruner = self.ref.pruner.get("_target_", "the pruner").rsplit(".", 1)[-1]
            seen = f" at {MONITOR} {float(value):.4g}" if value is not None else ""
            message = (f"trial {self.ref.number} pruned after epoch {epoch + 1}{seen} by the "
                       f"study's {pruner}")
            log.info("%s", message)
            raise optuna.TrialPruned(message)


def callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """The trainer callbacks of pruning: one for a job of an Optuna sweep that keeps its study
    in a storage the job can open; none otherwise, and none for a backtest (its folds' epochs
    are not one learning curve)."""
    ref = TrialRef.from_env()
    if ref is None:
        return []
    if cfg.evaluate.folds > 1:
        log.info("Pruning is off for a backtest (evaluate.folds=%d)", cfg.evaluate.folds)
        return []
    return [Pruning(ref)]
