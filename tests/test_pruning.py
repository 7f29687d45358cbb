"""forecast.runs.pruning: the trainer callback that reports a trial's val/loss to its Optuna
study after every epoch and stops the fit when the study's pruner says so (against a real
SQLite study; the trainer is a stand-in with the attributes the callback reads)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from forecast.runs import pruning

optuna = pytest.importorskip("optuna")


def _trial_env(tmp_path, monkeypatch, upper: float) -> optuna.Study:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    monkeypatch.setenv(pruning.TRIAL_ENV, json.dumps({
        "storage": storage, "study": "s", "trial_id": trial._trial_id, "number": trial.number,
        "pruner": {"_target_": "optuna.pruners.ThresholdPruner", "upper": upper}}))
    return study


def _trainer(loss: float | None, epoch: int = 0, sanity: bool = False):
    metrics = {} if loss is None else {"val/loss": torch.tensor(loss)}
    return SimpleNamespace(sanity_checking=sanity, callback_metrics=metrics, current_epoch=epoch,
                           is_global_zero=True,
                           strategy=SimpleNamespace(broadcast=lambda obj, src=0: obj))


CFG = OmegaConf.create({"evaluate": {"folds": 1}})


def test_no_trial_no_callback(monkeypatch):
    monkeypatch.delenv(pruning.TRIAL_ENV, raising=False)
    assert pruning.callbacks(CFG) == []


def test_a_backtest_is_not_pruned(tmp_path, monkeypatch):
    _trial_env(tmp_path, monkeypatch, upper=0.1)
    assert pruning.callbacks(OmegaConf.create({"evaluate": {"folds": 3}})) == []


def test_a_garbled_trial_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(pruning.TRIAL_ENV, '{"storage": "sqlite://"}')
    with pytest.raises(ValueError, match=pruning.TRIAL_ENV):
        pruning.callbacks(CFG)


def test_each_epoch_is_reported_and_a_bad_one_pruned(tmp_path, monkeypatch):
    study = _trial_env(tmp_path, monkeypatch, upper=0.4)
    (callback,) = pruning.callbacks(CFG)
    callback.on_validation_end(_trainer(9.0, sanity=True), None)  # the sanity check: not a step
    callback.on_validation_end(_trainer(0.3, epoch=0), None)
    callback.on_validation_end(_trainer(None, epoch=1), None)  # no val/loss: nothing to judge
    with pytest.raises(optuna.TrialPruned, match=r"trial 0 pruned after epoch 3 at val/loss "
                                                 r"0\.5 by the study's ThresholdPruner"):
        callback.on_validation_end(_trainer(0.5, epoch=2), None)
    (trial,) = study.get_trials()
    assert trial.intermediate_values == pytest.approx({0: 0.3, 2: 0.5})
    assert trial.state.name == "RUNNING"  # the sweeper, not the job, tells the study the end
