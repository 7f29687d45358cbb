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
                                  "model/by_target/sh _g/kg_/mae": 2.0, "season": None}
    assert loggers.flat({"targets": ["temp", "dewp"]}, enumerate_lists=False) == \
        {"targets": "['temp', 'dewp']"}


def test_hyper_parameters_leave_nulls_out():
    assert loggers.params({"data": {"path": None, "name": "x"}, "season": None}) == \
        {"data/name": "x"}


def test_test_scalars_carry_units_and_leave_by_lead_to_figures():
    metrics = {"model": {"mae": 1.0, "mse": 2.0, "mase": 0.9, "by_lead": {"mae": [1.0, 2.0]},
                         "by_target": {"humid": {"mae": 3.0}}},
               "baselines": {"ridge": {"rmse": 4.0}}, "space": "original",
               "units": {"temp": "degF", "humid": "%"}}
    assert loggers.test_scalars(metrics) == {
        "test/model/mae": 1.0, "test/model/mse": 2.0, "test/model/mase": 0.9,
        "test/model/by_target/humid/mae_pct": 3.0, "test/baselines/ridge/rmse": 4.0}
    metrics["units"] = {"temp": "\N{DEGREE SIGN}F"}
    assert set(loggers.test_scalars(metrics)) == {
        "test/model/mae_degF", "test/model/mse_degF2", "test/model/mase",
        "test/model/by_target/humid/mae", "test/baselines/ridge/rmse_degF"}
    assert "test/model/mae_z" in loggers.test_scalars({**metrics, "space": "scaled"})


def test_a_run_is_named_by_model_data_and_overrides(tmp_path):
    cfg = {"model": {"name": "lstm"}, "data": {"name": "nyc_weather"}}
    overrides = ["model=lstm", "data=nyc_weather", "logger=mlflow", "model.hidden_size=32",
                 "seed=1", "logger.experiment_name=x"]
    assert loggers.run_name(cfg, overrides, tmp_path / "run") == \
        "lstm on nyc_weather: model.hidden_size=32 seed=1"
    assert loggers.run_name(cfg, [], tmp_path / "run") == "lstm on nyc_weather"
    assert loggers.run_name(cfg, None, tmp_path / "a") == "lstm on nyc_weather: a"


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
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.plugins.hparams import plugin_data_pb2

    metrics = _run("tensorboard", tmp_path / "run", "+data.units.temp=degC")
    events = ea.EventAccumulator(str(tmp_path / "run" / "tensorboard"),
                                 size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss_epoch", "val/loss", "test/model/mae_degC", "test/model/mse_degC2",
            "test/baselines/ridge/mae_degC"} <= set(scalars)
    assert events.Scalars("test/model/mae_degC")[0].value == \
        pytest.approx(metrics["model"]["mae"])
    assert not [t for t in scalars if "by_lead" in t]  # no one-point scalar per lead
    # exactly one hparams session, whose hp_metric is the model's test MAE in data units
    written = [v.tag for path in (tmp_path / "run" / "tensorboard").rglob("events.out.*")
               for event in event_file_loader.EventFileLoader(str(path)).Load()
               for v in event.summary.value]
    assert written.count("_hparams_/session_start_info") == 1
    content = events.PluginTagToContent("hparams")
    [hp_metric] = events.Scalars("hp_metric")
    assert hp_metric.value == pytest.approx(metrics["model"]["mae"])
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model/hidden_size"].number_value == 8
    assert start.hparams["data/name"].string_value == "synthetic"
    assert "data/path" not in start.hparams  # null in the config: left out
    assert not [k for k, v in start.hparams.items() if v.string_value in ("null", "None")]
    images = events.Tags()["images"]
    assert {"plots/mae_by_lead", "plots/learning_curves", "test/by_lead/mae",
            "test/by_lead/rmse"} <= set(images)


def _mlflow_runs(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(tmp_path / "outputs" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("test").experiment_id
    return client, client.search_runs([experiment], order_by=["attributes.start_time ASC"])


@pytest.mark.slow
def test_mlflow_runs_share_one_store_with_names_scores_and_artifacts(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # the run opts in to MLflow 3's file store itself; the opt-in is undone after the test
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)  # the shared store is outputs/mlruns under the working folder

    metrics = _run("mlflow", tmp_path / "outputs" / "a", "logger.experiment_name=test")
    _run("mlflow", tmp_path / "outputs" / "b", "logger.experiment_name=test", "seed=1")
    assert not (tmp_path / "outputs" / "a" / "mlruns").exists()
    client, runs = _mlflow_runs(tmp_path)
    assert [r.info.run_name for r in runs] == ["lstm on synthetic: a", "lstm on synthetic: b"]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["model/hidden_size"] == "8"
    assert run.data.params["logger/experiment_name"] == "test"
    assert "data/path" not in run.data.params  # null in the config: left out
    assert "null" not in run.data.params.values()
    logged = run.data.metrics
    assert "val/loss" in logged and "train/loss_epoch" in logged
    assert logged["test/model/mae"] == pytest.approx(metrics["model"]["mae"])
    assert logged["test/baselines/ridge/mae"] == pytest.approx(metrics["baselines"]["ridge"]["mae"])
    assert not [k for k in logged if "by_lead" in k]
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/mae_by_lead.png" in plots
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= \
        {"metrics.json", "plots", "report.html", "forecasts.parquet", ".hydra", "checkpoints"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, ".hydra")] == \
        [".hydra/config.yaml"]
    assert "checkpoints/best.ckpt" in \
        {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}


@pytest.mark.slow
def test_mlflow_keeps_a_given_tracking_uri(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store the user names
    monkeypatch.chdir(tmp_path)
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "elsewhere").as_uri()
    _run("mlflow", tmp_path / "run", "logger.experiment_name=test",
         f"logger.tracking_uri='{store}'", "logger.run_name=mine")
    assert not (tmp_path / "outputs" / "mlruns").exists()
    client = MlflowClient(tracking_uri=store)
    [run] = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert run.info.run_name == "mine"
