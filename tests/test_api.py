"""The Python API: fit from a DataFrame or a file, load_run, Run.predict; bad arguments are
refused by name before anything is written. (A folder from fit against one from forecast-train:
tests/test_predict.py, beside its forecast-train run.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import weather_frame
from omegaconf import OmegaConf

import forecast
from forecast import api
from forecast.models.network import RegLSTM
from forecast.report import tables
from forecast.runs import loggers, predict

pytestmark = pytest.mark.usefixtures("one_thread")

LOOKBACK, HORIZON, N_SERIES, N_STEPS = 24, 6, 3, 500
TINY = ["trainer=fast", "trainer.max_epochs=1", "trainer.limit_train_batches=4",
        "model.hidden_size=8", "evaluate.plot_days=2"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """A user's long table [series, time, temp, sun, humid]."""
    return weather_frame(N_SERIES, N_STEPS, ("temp", "sun", "humid"))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, frame) -> forecast.Run:
    run_dir = tmp_path_factory.mktemp("api") / "run"
    return forecast.fit(frame, targets="temp", lookback=LOOKBACK, horizon=HORIZON,
                        overrides=[*TINY, "model=gru"], run_dir=run_dir)


@pytest.mark.slow
def test_fit_from_a_dataframe_scores_and_forecasts(fitted, frame):
    metrics = fitted.metrics
    assert metrics["lookback"] == LOOKBACK and metrics["targets"] == ["temp"]
    assert metrics["model"]["mae"] > 0 and "ridge" in metrics["baselines"]
    assert fitted.forecasts["lead"].max() == HORIZON
    assert len(fitted.forecasts) == metrics["windows"]["test"] * HORIZON
    config = OmegaConf.load(fitted.dir / ".hydra" / "config.yaml")
    assert config.model.cell == "gru" and config.data.name == "csv"
    # the frame went to the run folder, and the run read it from there
    assert Path(config.data.path) == (fitted.dir / api.INPUT).resolve()
    pd.testing.assert_frame_equal(pd.read_parquet(config.data.path), frame)
    assert "windows:" in (fitted.dir / "train.log").read_text()


@pytest.mark.slow
def test_load_run_and_predict_past_the_end(fitted, frame):
    run = forecast.load_run(fitted.dir)
    ahead = run.predict()
    assert len(ahead) == N_SERIES * HORIZON and set(ahead["target"]) == {"temp"}
    assert ahead["time"].min() == frame["time"].max() + pd.Timedelta(hours=1)
    # forecast-predict's own path gives the same table
    expected, _ = predict.forecast_run(predict.load_run(fitted.dir))
    pd.testing.assert_frame_equal(ahead, expected)
    # new data, as a DataFrame or a file: forecasts past its own end
    shorter = frame[frame["time"] < frame["time"].max() - pd.Timedelta(hours=48)]
    from_frame = run.predict(shorter)
    assert from_frame["time"].min() == shorter["time"].max() + pd.Timedelta(hours=1)
    path = fitted.dir.parent / "shorter.csv"
    shorter.to_csv(path, index=False)
    pd.testing.assert_frame_equal(run.predict(path), from_frame, check_exact=False)
    with pytest.raises(ValueError, match=r"data \(the DataFrame\): the series differ"):
        run.predict(shorter[shorter["series"] != "S1"])
    # the next day's rows appended (targets empty): refused, never a forecast of the day after
    future = frame[frame["time"] > frame["time"].max() - pd.Timedelta(hours=HORIZON)].copy()
    future["time"] += pd.Timedelta(hours=HORIZON)
    future["temp"] = np.nan
    with pytest.raises(ValueError, match=r"data \(the DataFrame\): 6 time step\(s\) after"):
        run.predict(pd.concat([frame, future]))


@pytest.mark.slow
def test_a_run_says_what_it_is_and_holds_its_model(fitted):
    metrics = fitted.metrics
    summary = fitted.summary()
    assert repr(fitted) == summary and str(fitted) == summary
    best = min(metrics["baselines"], key=lambda name: metrics["baselines"][name]["mae"])
    for part in (f"Run {fitted.dir}", "model gru on csv", str(fitted.dir / api.INPUT),
                 "targets temp", f"lookback {LOOKBACK} steps (24 hours)",
                 f"horizon {HORIZON} steps (6 hours)", "test, in data units:",
                 f"model MAE {metrics['model']['mae']:.3f}, "
                 f"RMSE {metrics['model']['rmse']:.3f}",
                 f"best baseline {best} MAE {metrics['baselines'][best]['mae']:.3f}",
                 tables.verdict(metrics)):
        assert part in summary, part
    model = fitted.model
    assert isinstance(model, RegLSTM) and not model.training
    assert fitted.model is model  # loaded once
    expected = predict.load_run(fitted.dir).module.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"targets": "wind"}, r"targets: no column \['wind'\]"),
    ({"targets": 5}, "targets=5: give a column name"),
    ({"lookback": "48"}, "lookback='48': a whole number"),
    ({"horizon": 0}, "horizon=0"),
    ({"overrides": "model=gru"}, "overrides='model=gru': a list of override strings"),
    ({"overrides": ["lookback=12"]}, "sets fit's argument lookback"),
    ({"overrides": ["data.path=other.csv"]}, "sets fit's argument data.path"),
    ({"overrides": ["data.series_col=station"]}, r"no column 'station' \(data.series_col\)"),
    ({"overrides": ["model.cell=lstn"]}, "model.cell='lstn'"),
    ({"overrides": ["model.hiden_size=3"]}, r"'model\.hiden_size'"),
    ({"data": [1, 2]}, r"data: a long DataFrame \(pandas or polars\) or a CSV/Parquet path, "
                       "not list"),
])
def test_bad_arguments_are_refused_by_name_before_anything_is_written(frame, tmp_path, kwargs,
                                                                        message):
    arguments = {"data": frame, "targets": "temp", "lookback": 24, "horizon": 6,
                 "run_dir": tmp_path / "run", **kwargs}
    with pytest.raises(ValueError, match=message):
        forecast.fit(**arguments)
    assert not (tmp_path / "run").exists()


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        forecast.fit(tmp_path / "nowhere.csv", targets="temp", lookback=24, horizon=6,
                     run_dir=tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="holds no finished run"):
        forecast.load_run(tmp_path)


def test_a_logger_without_its_package_is_refused_with_the_install_command(frame, tmp_path,
                                                                          monkeypatch):
    real = loggers.importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ValueError, match=r'pip install -e "\.\[mlflow\]"'):
        forecast.fit(frame, targets="temp", lookback=24, horizon=6, run_dir=tmp_path / "run",
                     overrides=["logger=mlflow"])
    assert not (tmp_path / "run").exists()  # the frame was not written either
