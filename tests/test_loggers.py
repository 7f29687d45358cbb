"""Experiment loggers against the real packages: what a run hands TensorBoard and MLflow (config
as hyper-parameters, losses, test scores of the model and the baselines, plots), read back with
their own readers; a logger whose package is missing is refused before any data is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from forecast import config
from forecast.runs import loggers, train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["data=synthetic", "trainer=fast", "data.n_steps=400", "lookback=24", "horizon=6",
        "model.hidden_size=8", "targets=[temp]", "trainer.max_epochs=1",
        "trainer.limit_train_batches=4", "evaluate.plot_days=2"]


def _run(logger: str, run_dir: Path, *overrides: str) -> dict:
    config.register()
    with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, f"logger={logger}", *overrides])
    train.run(cfg, run_dir)
    return json.loads((run_dir / "metrics.json").read_text())


def test_flat_keys_are_paths_safe_for_every_logger():
    tree = {"model": {"mae": 1.5, "by_lead": {"mae": [3.0, 4.0]},
                      "by_target": {"sh (g/kg)": {"mae": 2.0}}}, "season": None}
    assert loggers.flat(tree) == {"model/mae": 1.5, "model/by_lead/mae/1": 3.0,
                                  "model/by_lead/mae/2": 4.0,
                                  "model/by_target/sh _g/kg_/mae": 2.0, "season": "null"}
    assert loggers.flat({"targets": ["temp", "dewp"]}, enumerate_lists=False) == \
        {"targets": "['temp', 'dewp']"}


@pytest.mark.parametrize("logger", ["tensorboard", "mlflow"])
def test_a_missing_package_is_refused_before_any_data_is_read(logger, tmp_path, monkeypatch):
    real = loggers.importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec",
                        lambda name, *a: None if name == logger else real(name, *a))
    config.register()
    with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
        cfg = compose("train", overrides=["data=csv", f"data.path={tmp_path / 'nowhere.csv'}",
                                          f"logger={logger}"])
    command = f'pip install -e "\\.\\[{logger}\\]"'
    with pytest.raises(ValueError, match=command):  # not the missing file: nothing was read
        train.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_tensorboard_receives_config_losses_scores_and_plots(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.plugins.hparams import plugin_data_pb2

    metrics = _run("tensorboard", tmp_path / "run")
    events = ea.EventAccumulator(str(tmp_path / "run" / "tensorboard"),
                                 size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss_epoch", "val/loss", "test/model/mae", "test/baselines/ridge/mae"} <= \
        set(scalars)
    assert events.Scalars("test/model/mae")[0].value == pytest.approx(metrics["model"]["mae"])
    assert events.Scalars("test/baselines/persistence/by_lead/mae/6")[0].value == \
        pytest.approx(metrics["baselines"]["persistence"]["by_lead"]["mae"][5])
    assert "plots/mae_by_lead" in events.Tags()["images"]
    start = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model/hidden_size"].number_value == 8
    assert start.hparams["data/name"].string_value == "synthetic"


@pytest.mark.slow
def test_mlflow_receives_config_losses_scores_and_plots(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # the run opts in to MLflow 3's file store itself; the opt-in is undone after the test
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    from mlflow.tracking import MlflowClient

    metrics = _run("mlflow", tmp_path / "run", "logger.experiment_name=test")
    client = MlflowClient(tracking_uri=(tmp_path / "run" / "mlruns").as_uri())
    [run] = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model/hidden_size"] == "8"
    assert run.data.params["logger/experiment_name"] == "test"
    logged = run.data.metrics
    assert "val/loss" in logged and "train/loss_epoch" in logged
    assert logged["test/model/mae"] == pytest.approx(metrics["model"]["mae"])
    assert logged["test/baselines/ridge/mae"] == pytest.approx(metrics["baselines"]["ridge"]["mae"])
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/mae_by_lead.png" in plots
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"metrics.json", "plots"}
