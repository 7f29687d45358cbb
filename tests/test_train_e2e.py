"""The real `forecast-train` console script on the default data, `fast` trainer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

FORECAST_TRAIN = Path(sys.executable).parent / "forecast-train"
BASELINES = ("persistence", "seasonal_naive", "climatology", "ridge", "rlinear")
HORIZON = 24  # the schema's default (forecast/config.py)

pytestmark = pytest.mark.slow


def _run(args, cwd, timeout=600):
    return subprocess.run([str(FORECAST_TRAIN), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    assert FORECAST_TRAIN.is_file(), f"{FORECAST_TRAIN} missing: pip install -e ."
    base = tmp_path_factory.mktemp("e2e")
    run_dir = base / "run"
    proc = _run(["trainer=fast", f"hydra.run.dir={run_dir}"], cwd=base)
    assert proc.returncode == 0, f"forecast-train failed:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-5000:]}"
    return run_dir, proc


def _check_scores(scores, ids):
    for key in ("mae", "rmse"):
        assert isinstance(scores[key], float) and scores[key] >= 0
        assert len(scores["by_lead"][key]) == HORIZON
    assert set(scores["by_series"]) == set(ids)


def test_metrics_json(fast_run):
    run_dir, _ = fast_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    ids = ["EWR", "JFK", "LGA"]
    _check_scores(metrics["model"], ids)
    assert set(BASELINES) <= set(metrics["baselines"])
    for name in BASELINES:
        _check_scores(metrics["baselines"][name], ids)
    windows = metrics["windows"]
    assert {"train", "val", "test", "dropped"} <= set(windows)
    assert all(isinstance(windows[k], int) for k in ("train", "val", "test", "dropped"))
    assert windows["train"] > windows["test"] > 0 and windows["val"] > 0
    assert windows["dropped"] > 0  # the NYC data has gaps in temp


def test_forecasts_parquet(fast_run):
    run_dir, _ = fast_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    table = pd.read_parquet(run_dir / "forecasts.parquet")
    assert {"series", "origin", "lead", "target", "actual", "forecast"} <= set(table.columns)
    assert sorted(table["series"].unique()) == ["EWR", "JFK", "LGA"]
    assert sorted(table["lead"].unique()) == list(range(1, HORIZON + 1))
    assert set(table["target"]) == {"temp"}
    assert len(table) == metrics["windows"]["test"] * HORIZON
    assert table["forecast"].notna().all() and table["actual"].notna().all()
    # the table's errors are the ones metrics.json reports for the model
    mae = (table["forecast"] - table["actual"]).abs().mean()
    assert mae == pytest.approx(metrics["model"]["mae"], rel=1e-4)


def test_checkpoints_plots_and_config(fast_run):
    run_dir, _ = fast_run
    for name in ("best.ckpt", "last.ckpt"):
        assert (run_dir / "checkpoints" / name).stat().st_size > 0
    pngs = sorted((run_dir / "plots").glob("*.png"))
    assert pngs
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert (run_dir / ".hydra" / "config.yaml").is_file()


def test_stdout_shows_table_and_run_folder(fast_run):
    run_dir, proc = fast_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    want = {"model": metrics["model"]["mae"],
            **{name: metrics["baselines"][name]["mae"] for name in BASELINES}}
    header = next(line for line in proc.stdout.splitlines() if "MAE" in line)
    assert "forecaster" in header and "RMSE" in header
    printed = {}  # rows look like "  ridge   3.854   5.356 ...", the best one marked "*"
    for line in proc.stdout.splitlines():
        parts = line.replace("*", " ").split()
        if len(parts) >= 3 and parts[0] in want:
            printed[parts[0]] = float(parts[1])
    assert set(printed) == set(want), proc.stdout
    for name, mae in want.items():
        assert printed[name] == pytest.approx(mae, abs=1e-3), name
    assert f"Run folder: {run_dir}" in proc.stdout


def test_the_console_holds_nothing_a_user_cannot_act_on(fast_run):
    run_dir, proc = fast_run
    said = proc.stdout + proc.stderr
    for noise in ("GPU available", "TPU available", "litlogger", "LeafSpec",
                  "exists and is not empty", "Restoring states", "Seed set to"):
        assert noise not in said, noise
    log = (run_dir / "train.log").read_text()
    assert "windows:" in log and "GPU available" not in log


def test_city_weather_runs_with_the_data_groups_own_defaults(tmp_path):
    """`forecast-train data=city_weather` with no targets, lookback or horizon given (only a
    shorter training): the group's own (daily data, a week ahead) and units reach the run."""
    run_dir = tmp_path / "run"
    proc = _run(["data=city_weather", "trainer=fast", "trainer.max_epochs=1",
                 "evaluate.baselines=[persistence]", "model.hidden_size=8",
                 f"hydra.run.dir={run_dir}"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["targets"], metrics["lookback"], metrics["horizon"]) == (["avg_temp"], 28, 7)
    assert len(metrics["model"]["by_lead"]["mae"]) == 7 and len(metrics["model"]["by_series"]) == 5
    assert metrics["units"] == {"avg_temp": "degF"} and metrics["step_seconds"] == 86400


def test_train_log_holds_the_scores_as_the_console_shows_them(fast_run):
    from forecast.report import tables

    run_dir, proc = fast_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    log = (run_dir / "train.log").read_text()
    for said in (tables.summary_table(metrics), tables.verdict(metrics),
                 f"Run folder: {run_dir}"):
        assert proc.stdout.count(said) == 1 and log.count(said) == 1, said


def test_unknown_config_key_fails(tmp_path):
    proc = _run(["trainer=fast", "model.hiden_size=3", f"hydra.run.dir={tmp_path / 'run'}"],
                cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "hiden_size" in proc.stdout + proc.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_the_defaults_beat_every_baseline(tmp_path):
    """`forecast-train` exactly as shipped: the model beats persistence, seasonal naive,
    climatology and ridge on test MAE, and the run says so."""
    proc = _run([f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["baselines"]) == set(BASELINES)
    model = metrics["model"]["mae"]
    better = {n: m["mae"] for n, m in metrics["baselines"].items() if m["mae"] <= model}
    assert not better, f"model MAE {model:.3f} vs {better}"
    assert "The model beats every baseline on test MAE" in proc.stdout
