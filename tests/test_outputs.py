"""What a run writes survives odd names and undefined numbers: file names made from column names
are safe and distinct, and metrics.json is strict JSON with null for undefined scores."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import weather_frame
from hydra import compose, initialize_config_module

from forecast import config
from forecast.evaluation.scores import undefined
from forecast.report import plots
from forecast.report.plots import safe_name
from forecast.report.tables import write_json
from forecast.runs import train

FORECAST_TRAIN = Path(sys.executable).parent / "forecast-train"


@pytest.mark.parametrize("name", ["sh (g/kg)", "temp/max", "a\\b", "x:y", "..", "temp"])
def test_safe_names_stay_in_their_folder(tmp_path, name):
    safe = safe_name(name)
    assert "/" not in safe and "\\" not in safe and ":" not in safe and safe not in (".", "..")
    (tmp_path / f"forecasts_{safe}.png").write_bytes(b"")  # a plain file in tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [f"forecasts_{safe}.png"]
    if name == "temp":
        assert safe == "temp"  # ordinary names are kept as they are


def test_safe_names_of_different_columns_differ():
    assert safe_name("temp/max") != safe_name("temp_max") != safe_name("temp max")
    assert safe_name("temp_max") == "temp_max"


def test_metrics_json_is_strict_with_null_for_undefined_numbers(tmp_path):
    path = tmp_path / "metrics.json"
    write_json({"mae": float("nan"), "mse": np.float32("inf"), "by_lead": [1.5, -math.inf],
                "ok": np.float64(2.0), "n": np.int64(3)}, path)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"mae": None, "mse": None, "by_lead": [1.5, None], "ok": 2.0,
                                "n": 3}


@pytest.mark.slow
def test_a_target_with_a_slash_in_its_name_trains_and_plots(tmp_path):
    frame = weather_frame(1, 400, {"temp/max": (10.0, 5.0), "sh (g/kg)": (4.0, 1.0)},
                          tz=None, series_col=None)
    frame.to_csv(tmp_path / "obs.csv", index=False)
    run = tmp_path / "run"
    proc = subprocess.run(
        [str(FORECAST_TRAIN), "data=csv", f"data.path={tmp_path / 'obs.csv'}",
         "data.series_col=null", "targets=['temp/max','sh (g/kg)']", "lookback=24", "horizon=6",
         "trainer=fast", f"hydra.run.dir={run}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plots = sorted(p.name for p in (run / "plots").glob("forecasts_*.png"))
    assert plots == sorted(f"forecasts_{safe_name(t)}.png" for t in ("temp/max", "sh (g/kg)"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["model"]["by_target"]) == {"temp/max", "sh (g/kg)"}


def test_a_failing_plot_costs_no_scores(tmp_path, monkeypatch, caplog):
    """Scores are written before any plot, and a plot that fails is logged and skipped."""
    def broken(*args, **kwargs):
        raise RuntimeError("no font for this label")

    monkeypatch.setattr(plots, "residuals", broken)
    monkeypatch.setattr(plots, "forecasts_vs_actuals", broken)
    config.register()
    with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
        cfg = compose("train", overrides=["data=synthetic", "trainer=fast", "data.n_steps=500",
                                          "lookback=24", "horizon=6", "model.hidden_size=8",
                                          "targets=[temp]", "trainer.max_epochs=1",
                                          "logger=csv"])
    run = tmp_path / "run"
    train.run(cfg, run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"]["mae"] > 0 and "plots" in metrics["seconds"]
    assert len(pd.read_parquet(run / "forecasts.parquet")) > 0
    assert (run / "tables" / "summary.csv").is_file() and (run / "report.html").is_file()
    made = {p.name for p in (run / "plots").iterdir()}
    assert "mae_by_lead.png" in made and "residuals.png" not in made
    assert "forecasts_temp.png" not in made
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert any("residuals.png" in m and "no font" in m for m in skipped), skipped


def test_undefined_scores_are_null_with_a_reason():
    scores = {"model": {"mae": 1.0, "mase": float("nan"),
                        "by_series": {"A": {"mase": np.float32("inf"), "mae": 2.0}}},
              "baselines": {"persistence": {"skill": float("nan"), "by_lead": [1.0, -math.inf]}}}
    gaps = undefined(scores)
    assert set(gaps) == {"model.mase", "model.by_series.A.mase", "baselines.persistence.skill",
                         "baselines.persistence.by_lead.1"}
    assert "seasonal-naive MAE is 0" in gaps["model.mase"] and gaps["model.mase"].startswith("nan")
    assert "persistence's MSE is 0" in gaps["baselines.persistence.skill"]
    assert gaps["baselines.persistence.by_lead.1"] == "-inf (not a finite number)"
    assert undefined({"model": {"mae": 1.0}}) == {}


def _forecasts(n_series: int, days: int, leads: int = 4) -> pd.DataFrame:
    """Hourly test forecasts of `temp`; series S<i> is off by i + 1 at every lead."""
    origins = days * 24
    weather = weather_frame(n_series, origins + leads)
    rows = []
    for i, (name, one) in enumerate(weather.groupby("series", sort=False)):
        times, temp = pd.DatetimeIndex(one["time"]), one["temp"].to_numpy()
        for lead in range(1, leads + 1):
            actual = temp[lead:lead + origins]  # the step `lead` after each origin
            rows.append(pd.DataFrame({
                "series": name, "origin": times[:origins], "lead": lead, "target": "temp",
                "time": times[lead:lead + origins], "actual": actual,
                "forecast": actual + i + 1}))
    return pd.concat(rows, ignore_index=True)


def test_plots_of_many_series_keep_their_width():
    names = ["model", "persistence", "seasonal_naive", "climatology", "ridge", "rlinear"]
    by_series = lambda n: {f: {f"S{i}": {"mae": i + j} for i in range(n)}  # noqa: E731
                           for j, f in enumerate(names)}
    few, twelve, many = (plots.error_by_series(by_series(n), "mae", "degF") for n in (3, 12, 45))
    assert few.get_size_inches()[0] == twelve.get_size_inches()[0] == many.get_size_inches()[0]
    assert twelve.get_size_inches()[0] * 110 <= 900  # px at plots.save's dpi
    rows = [t.get_text() for t in twelve.axes[0].get_yticklabels()]
    assert len(rows) == 12 and rows[0] == "S11"  # the model's worst at the top
    assert len(many.axes[0].get_yticklabels()) == plots.MAX_SERIES_ROWS
    assert twelve.axes[0].get_xlabel() == "MAE (degF)"


def test_forecast_plot_samples_the_whole_test_span_and_some_series():
    table = _forecasts(12, days=60)
    fig = plots.forecasts_vs_actuals(table, "temp", days=7, every=4, unit="degF",
                                     lead=("hours", 1.0))
    grid = np.array(fig.axes).reshape(plots.MAX_PANELS, 3)
    series = [ax.get_title(loc="left").split(":")[0] for ax in grid[:, 0]]
    assert series[0] == "S0" and series[-1] == "S11"  # the best and the worst forecast
    assert len(set(series)) == plots.MAX_PANELS
    first, last = table["time"].min(), table["time"].max()
    shown = [pd.to_datetime(np.concatenate([line.get_xdata() for line in ax.lines]), utc=True)
             for ax in grid[0]]
    assert shown[0].min() == first  # the start of the span, and its end (within a horizon)
    assert pd.Timedelta(0) <= last - shown[-1].max() < pd.Timedelta(hours=4)
    assert shown[0].max() < shown[1].min() and shown[1].max() < shown[2].min()
    assert grid[0, 0].get_ylabel() == "temp (degF)"
    short = plots.forecasts_vs_actuals(_forecasts(3, days=10), "temp", days=7, every=4)
    assert len(short.axes) == 3  # a span shorter than three stretches: one column, every series


def test_residuals_of_many_targets_wrap_into_rows_with_leads_in_time_units():
    table = pd.concat([_forecasts(1, days=2).assign(target=f"t{i}") for i in range(7)])
    table["forecast"] += np.random.default_rng(0).normal(0, 1, len(table))  # errors that vary
    fig = plots.residuals(table, leads=(1, 4), units={"t0": "degF"}, lead=("hours", 1.0))
    assert fig.get_size_inches()[0] == 15 and sum(ax.get_visible() for ax in fig.axes) == 7
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[0].startswith("lead 1 hours") and labels[1].startswith("lead 4 hours")
    assert fig.axes[0].get_xlabel() == "error (degF)" and fig.axes[1].get_xlabel() == "error"


def _page_tables() -> dict[str, pd.DataFrame]:
    nan = float("nan")
    summary = pd.DataFrame({"forecaster": ["model", "persistence", "ridge"],
                            "mae": [1.25, 2.5, nan], "coverage_80": [0.81, nan, nan],
                            "width_80": [3.5, None, None], "skill": [nan, nan, nan]})
    by_lead = pd.DataFrame({"forecaster": ["model"] * 3, "lead": [1, 2, 3],
                            "mae": [1.0, 1.5, 2.0]})
    return {"summary": summary, "by_lead": by_lead}


def test_run_page_shows_no_nan_and_drops_empty_columns(tmp_path):
    from forecast.report import page

    text = page.run_page("lstm on synthetic", "  model   1.250     nan", "The model wins.",
                         _page_tables(), [])
    assert not re.search(r"NaN|\bnan\b|\bNone\b", text)
    summary = text[text.index("<h3>summary</h3>"):]
    head = summary.split("</table>")[0]
    assert "<th>coverage_80</th>" in head and "<th>skill</th>" not in head
    assert "undefined for every row: skill" in summary
    assert summary.count(page.DASH) >= 3  # ridge's mae, the baselines' coverage and width
    assert '<div class="scroll"><table>' in text  # every table scrolls inside its own box


def test_run_page_shows_by_lead_as_its_plot_and_embeds_it(tmp_path):
    from forecast.report import page

    png = tmp_path / "mae_by_lead.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    text = page.run_page("t", "s", "v", _page_tables(), [png])
    assert "<h3>by_lead</h3>" not in text and "tables/by_lead.csv" in text
    assert text.count("<img") == 1 and 'src="data:image/png;base64,' in text


def test_run_page_states_interval_coverage():
    from forecast.evaluation import intervals
    from forecast.report import page
    from forecast.runs.outputs import interval_sentence

    model = {"mae": 1.0, "coverage_80": 0.798, "width_80": 19.169, "calibration": "adaptive"}
    sentence = interval_sentence(model)
    assert sentence == intervals.describe(model)
    text = page.run_page("t", "s", "v", _page_tables(), [], sentence)
    assert "80% interval: test coverage 0.798, width 19.169 (adaptive)" in text
    assert "Intervals" not in page.run_page("t", "s", "v", _page_tables(), [], "")
    assert interval_sentence({"coverage_80": None, "width_80": None}) == ""  # undefined: none


def test_run_page_escapes_its_title():
    from forecast.report import page

    text = page.run_page('lstm on <script>alert("x")</script> & co', "a < b", "v",
                         _page_tables(), [])
    assert "<script>" not in text and "&lt;script&gt;" in text and "&amp; co" in text
    assert "a &lt; b" in text


def test_the_title_names_the_data_as_the_run_read_it(tmp_path):
    from forecast.runs.outputs import data_label

    run = tmp_path / "run"
    assert data_label("csv", str(run / "input.parquet"), run) == "your DataFrame"
    assert data_label("csv", str(tmp_path / "obs.csv"), run) == "obs.csv"
    assert data_label("synthetic", None, run) == "synthetic"
    assert data_label("nyc_weather", None, run) == "nyc_weather"
