"""+experiment=ett: the rows, splits, window counts and scaler span of the ETT protocol, on a
small synthetic file of the same layout (a `date` column and numeric columns)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import weather_frame
from hydra import compose, initialize_config_module

from forecast import config
from forecast.evaluation import published
from forecast.runs import train

ROWS, STEPS, L, H = 200, 150, 8, 4  # ETT: 17,420 rows, 14,400 used, L=96, H in {96, ...}


@pytest.fixture(scope="module")
def ett_file(tmp_path_factory):
    frame = weather_frame(1, ROWS, {"HUFL": (5.0, 2.0)}, start="2016-07-01", tz=None,
                          series_col=None, time_col="date")
    # OT a trend, so the train rows' mean is not the file's; whole numbers rising by one would be
    # read as a row counter and left out
    frame["OT"] = 0.5 * np.arange(ROWS)
    path = tmp_path_factory.mktemp("ett") / "ETTsynth.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _prepared(path, *overrides):
    config.register()
    with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=ett", f"data.path={path}",
                                          f"lookback={L}", f"horizon={H}", *overrides])
    panel = train.load_panel(cfg.data, cfg.seed, cfg.targets, L + H)
    split = (cfg.data.split.train, cfg.data.split.val, cfg.data.split.test)
    return train.prepare(cfg, panel, split)


def test_ett_rows_splits_and_window_counts(ett_file):
    path, _ = ett_file
    prep = _prepared(path, f"data.steps={STEPS}")
    train_end, val_end = int(0.6 * STEPS), int(0.8 * STEPS)  # 8640, 11520 for 14,400 rows
    assert prep.bounds == {"train": (0, train_end), "val": (train_end, val_end),
                           "test": (val_end, STEPS)}
    assert prep.targets == ["HUFL", "OT"]  # every column a target
    # every window whose targets lie in its span; val/test inputs may reach into the span before
    counts = {k: len(v) for k, v in prep.indices.items()}
    assert counts == {"train": train_end - L - H + 1, "val": val_end - train_end - H + 1,
                      "test": STEPS - val_end - H + 1}  # ETTh1, H=96: 2,785 test windows
    test = prep.indices["test"]
    assert test[:, 1].min() + L == val_end and test[:, 1].max() + L + H == STEPS
    # rows from data.steps on are never a target nor an input
    assert (prep.indices["test"][:, 1] + L + H).max() <= STEPS


def test_ett_scaler_is_fitted_on_the_train_rows_only(ett_file):
    path, frame = ett_file
    prep = _prepared(path, f"data.steps={STEPS}")
    train_rows = frame.iloc[: int(0.6 * STEPS)]
    np.testing.assert_allclose(prep.scaler.mean, train_rows[["HUFL", "OT"]].mean(), rtol=1e-5)
    np.testing.assert_allclose(prep.scaler.scale, train_rows[["HUFL", "OT"]].std(ddof=0),
                               rtol=1e-4)


def test_data_steps_beyond_the_file_is_refused(ett_file):
    path, _ = ett_file
    with pytest.raises(ValueError, match=r"data.steps=999 must lie in \[1, 200\]"):
        _prepared(path, "data.steps=999")


def test_the_published_rows_stand_beside_the_run():
    text = published.describe("../shared/benchmarks/ETTh2.csv", 96, 192, 0.370, 0.400)
    assert "ETTh2, L=96, H=192" in text
    assert "SegRNN          0.359   0.389" in text and "this run        0.370   0.400" in text
    assert text.endswith("at or below: iTransformer, TimesNet, PatchTST, DLinear.")
    assert published.describe("ETTh1.csv", 96, 96, 0.3, 0.3).endswith(
        "at or below: SegRNN, iTransformer, TimesNet, PatchTST, DLinear.")
    for path, lookback, horizon in (("weather.csv", 96, 96), ("ETTh1.csv", 336, 96),
                                    ("ETTh1.csv", 96, 24)):
        assert published.describe(path, lookback, horizon, 0.4, 0.4).startswith(
            "No published row")


def test_ett_and_ltsf_use_the_segment_recurrent_model(ett_file):
    path, _ = ett_file
    for experiment in ("ett", "ltsf"):
        config.register()
        with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
            cfg = compose("train", overrides=[f"+experiment={experiment}", f"data.path={path}"])
        assert cfg.model.name == "segrnn" and cfg.model.decoder == "parallel"
        assert cfg.model.channel_independent and cfg.model.segment == 24
        assert "rlinear" in cfg.evaluate.baselines
        assert cfg.evaluate.published == (experiment == "ett")


@pytest.mark.slow
def test_an_ett_run_prints_the_published_table(tmp_path):
    """The ETT recipe end to end on a small synthetic file named as the benchmark's."""
    frame = weather_frame(1, 400, ("HUFL", "MUFL", "OT"), start="2016-07-01", tz=None,
                          noise=0.2, seed=1, series_col=None, time_col="date")
    path = tmp_path / "ETTh1.csv"
    frame.to_csv(path, index=False)
    run = tmp_path / "run"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "forecast-train"), "+experiment=ett",
         f"data.path={path}", "data.steps=null", "horizon=24", "model.hidden_size=16",
         "model.channel_embedding=8", "trainer.max_epochs=2", "+trainer.limit_train_batches=4",
         "+trainer.enable_progress_bar=false", f"hydra.run.dir={run}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["space"] == "scaled" and metrics["lookback"] == 96
    assert set(metrics["baselines"]) == {"persistence", "seasonal_naive", "ridge", "rlinear"}
    assert "Published test scores, ETTh1, L=96, H=24" not in proc.stdout
    assert "No published row for 'ETTh1' at lookback=96, horizon=24" in proc.stdout
    assert f"{metrics['model']['mse']:7.3f}" in proc.stdout
