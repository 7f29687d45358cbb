"""Calibrated prediction intervals (forecast.evaluation.conformal): the conformal quantile by hand
and on synthetic cases of known coverage, the intervals a run asks for, that calibration reads no
test window, the metrics and bounds of a run, forecast-predict's bounds, and the plot's legend."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import weather_frame

from forecast.config import EvaluateConfig
from forecast.data import prepared
from forecast.data.panel import to_panel
from forecast.evaluation import adaptive, conformal, intervals, scoring
from forecast.evaluation.forecasts import forecast_table
from forecast.report import plots
from forecast.runs import predict

BIN = Path(sys.executable).parent
L, H = 24, 6
Q = [0.1, 0.5, 0.9]


# ---------------------------------------------------------------------- the conformal quantile


def test_conformal_quantile_by_hand():
    scores = np.arange(1.0, 20.0)  # n = 19 scores 1..19
    # k = ceil(20 * 0.8) = 16 (not 17: (n + 1) * 0.8 is 16.000000000000004 in floats)
    assert adaptive.rank(np.asarray(19), 0.8) == 16
    assert conformal.conformal_quantile(scores, 0.8) == 16.0
    assert conformal.conformal_quantile(scores, 0.9) == 18.0  # ceil(18) = 18
    assert conformal.conformal_quantile(scores, 0.95) == 19.0  # ceil(19) = 19
    # too few scores for the coverage: an unbounded interval, not the largest score
    assert conformal.conformal_quantile(scores[:4], 0.9) == np.inf  # ceil(4.5) = 5 > 4
    # per column, NaNs left out of n: column 1 holds 9 scores -> k = ceil(10 * 0.8) = 8
    two = np.stack([scores[:10], np.r_[scores[:9], np.nan]], axis=1)[::-1]
    np.testing.assert_array_equal(conformal.conformal_quantile(two, 0.8), [9.0, 8.0])


@pytest.mark.parametrize("n, coverage", [(19, 0.8), (49, 0.9)])
def test_exchangeable_scores_cover_exactly_k_over_n_plus_1(n, coverage):
    # for exchangeable continuous scores, P(new score <= k-th smallest of n) = k / (n + 1):
    # here exactly the nominal coverage; np.quantile's interpolated 0.8 quantile would give 0.77
    rng = np.random.default_rng(0)
    trials = 4000
    calib = rng.standard_normal((n, trials))
    fresh = rng.standard_normal((200, trials))
    offset = conformal.conformal_quantile(np.abs(calib), coverage)  # (trials,)
    covered = np.mean(np.abs(fresh) <= offset)
    k = adaptive.rank(np.asarray(n), coverage)
    assert k / (n + 1) == pytest.approx(coverage)
    assert covered == pytest.approx(coverage, abs=0.006)


def _panel_windows(rng, k, spread):
    """k windows x H leads x 2 targets, actual = forecast + noise whose spread grows with lead
    and differs by target."""
    forecast = rng.normal(size=(k, H, 2)) * 5
    noise = rng.standard_normal((k, H, 2)) * spread
    return forecast + noise, forecast


def test_offsets_per_lead_and_target_give_the_nominal_coverage_at_every_lead():
    rng = np.random.default_rng(1)
    spread = np.stack([np.arange(1, H + 1), 10 * np.arange(1, H + 1)], axis=1)  # (H, 2)
    val_actual, val_forecast = _panel_windows(rng, 2000, spread)
    test_actual, test_forecast = _panel_windows(rng, 20000, spread)
    calibration = conformal.calibrate(val_actual, val_forecast, None, [0.8, 0.95],
                                      ["a", "b"]).content
    for spec in calibration["intervals"]:
        assert spec["kind"] == "residual"
        offsets = np.asarray(spec["offsets"])
        assert offsets.shape == (H, 2)
        # the offset follows the spread: normal quantile times the lead's and target's sd
        z = {"80": 1.2816, "95": 1.96}[spec["label"]]
        np.testing.assert_allclose(offsets, z * spread, rtol=0.08)
        bounds = conformal.bounds(calibration, test_forecast, None)
        low, high = bounds[f"lower_{spec['label']}"], bounds[f"upper_{spec['label']}"]
        inside = (test_actual >= low) & (test_actual <= high)
        np.testing.assert_allclose(inside.mean(axis=0), spec["level"], atol=0.03)


def test_each_series_gets_the_nominal_coverage_in_its_own_spread():
    """A calm series (sd 1) and a stormy one (sd 4): pooled offsets over-cover the first and
    under-cover the second; scaled by series, both get the nominal coverage."""
    rng = np.random.default_rng(11)
    spread = np.ones((H, 2))

    def windows(k):
        series = np.repeat([0, 1], k)
        actual, forecast = _panel_windows(rng, 2 * k, spread)
        storm = np.where(series == 1, 4.0, 1.0)[:, None, None]
        return forecast + (actual - forecast) * storm, forecast, series

    val_actual, val_forecast, val_series = windows(1500)
    test_actual, test_forecast, test_series = windows(10000)
    pooled = conformal.calibrate(val_actual, val_forecast, None, [0.8], ["a", "b"]).content
    scaled = conformal.calibrate(val_actual, val_forecast, None, [0.8], ["a", "b"],
                                 series=val_series, n_series=2).content
    ratio = np.asarray(scaled["intervals"][0]["series_scale"])  # (2 series, 2 targets)
    np.testing.assert_allclose(ratio[1] / ratio[0], 4.0, rtol=0.08)

    def by_series(calibration, **series):
        bounds = conformal.bounds(calibration, test_forecast, None, **series)
        inside = (test_actual >= bounds["lower_80"]) & (test_actual <= bounds["upper_80"])
        return [inside[test_series == i].mean() for i in (0, 1)]

    calm, stormy = by_series(pooled)
    assert calm > 0.95 and stormy < 0.65
    np.testing.assert_allclose(by_series(scaled, series=test_series), 0.8, atol=0.02)
    with pytest.raises(ValueError, match="series position"):
        conformal.bounds(scaled, test_forecast, None)


def test_a_series_flat_on_validation_keeps_a_band():
    scores = np.abs(np.random.default_rng(12).normal(size=(300, H, 1)))
    series = np.repeat([0, 1, 2], 100)
    scores[series == 2] = 0.0  # no error at all on validation
    ratio = conformal.series_scale(scores, series, 4)  # series 3 has no validation window
    assert ratio[2, 0] == conformal.MIN_SERIES_SCALE
    assert ratio[3, 0] == pytest.approx(1.0)
    assert ratio[0, 0] == pytest.approx(ratio[1, 0], rel=0.15)


def test_cqr_widens_quantiles_that_are_too_narrow():
    rng = np.random.default_rng(2)
    k = 3000
    centre = rng.normal(size=(2 * k, H, 1))
    sd = rng.uniform(0.5, 3.0, size=(2 * k, 1, 1))  # each window's own spread
    actual = centre + sd * rng.standard_normal((2 * k, H, 1))
    # the model's quantiles have the right shape but half the spread:
    # they cover P(|Z| < 0.64) = 0.48
    units = np.stack([centre - 0.64 * sd, centre, centre + 0.64 * sd], axis=-1)
    units = np.broadcast_to(units, (2 * k, H, 1, 3)).copy()
    calibration = conformal.calibrate(actual[:k], units[:k], Q, None, ["temp"]).content
    [spec] = calibration["intervals"]
    assert (spec["kind"], spec["quantiles"], spec["label"]) == ("cqr", [0.1, 0.9], "80")
    assert spec["validation_coverage_raw"] == pytest.approx(0.478, abs=0.02)
    assert spec["validation_coverage"] >= 0.8
    bounds = conformal.bounds(calibration, units[k:], Q)
    test = actual[k:]
    inside = (test >= bounds["lower_80"]) & (test <= bounds["upper_80"])
    assert inside.mean() == pytest.approx(0.8, abs=0.015)
    # normalised scores: the bound is the raw pair widened by offset x its own width
    width = units[k:, ..., 2] - units[k:, ..., 0]
    np.testing.assert_allclose(bounds["upper_80"],
                               units[k:, ..., 2] + np.asarray(spec["offsets"]) * width, rtol=1e-5)
    # scores by hand on one window: max(low - y, y - high) / (high - low)
    s = conformal.scores(spec, actual[:1], units[:1], Q)
    low, high = units[:1, ..., 0], units[:1, ..., 2]
    np.testing.assert_allclose(s, np.maximum(low - actual[:1], actual[:1] - high) / (high - low))


def test_each_quantile_pair_is_scaled_by_its_own_width():
    quantiles = [0.025, 0.1, 0.5, 0.9, 0.975]
    units = np.array([[[[-3.0, -1.0, 0.0, 1.0, 3.0]]]])  # (K=1, H=1, nt=1, Q=5)
    s80, s95 = conformal.specs(quantiles, None)
    [s50] = conformal.specs(quantiles, [0.5])  # no pair: residual about the median
    assert conformal.scale(s80, units, quantiles) == 2.0  # q0.9 - q0.1
    assert conformal.scale(s95, units, quantiles) == 6.0  # q0.975 - q0.025
    assert conformal.scale(s50, units, quantiles) == 6.0  # the outermost pair
    assert conformal.scale(s50, units[..., 2], None) == 1.0  # a point model: data units
    low, high = conformal.calibrated_bounds(s80, np.array([[0.5]]), units, quantiles)
    assert (low.item(), high.item()) == (-2.0, 2.0)  # q0.1 - 0.5 x 2, q0.9 + 0.5 x 2


def test_specs_the_intervals_a_run_asks_for():
    assert conformal.specs(Q, None) == [
        {"level": 0.8, "label": "80", "kind": "cqr", "quantiles": [0.1, 0.9]}]
    mixed = conformal.specs([0.05, 0.1, 0.5, 0.9, 0.95], [0.95, 0.8, 0.5])
    assert [(s["label"], s["kind"]) for s in mixed] == [("50", "residual"), ("80", "cqr"),
                                                         ("95", "residual")]
    assert [s["kind"] for s in conformal.specs([0.025, 0.5, 0.975], [0.95])] == ["cqr"]
    assert [s["kind"] for s in conformal.specs(None, [0.8, 0.95])] == ["residual", "residual"]
    assert conformal.specs(None, None) == []
    with pytest.raises(ValueError, match="evaluate.intervals"):
        conformal.specs(None, [80])
    assert conformal.label(0.975) == "97.5"


# ------------------------------------------------------------ calibration reads no test window


class Persistence(torch.nn.Module):
    """A stand-in for a trained model: every lead repeats the last input of each target column
    (scaled), quantiles at +-1 (scaled) around it."""

    def __init__(self, columns, quantiles=None):
        super().__init__()
        self.columns, self.quantiles = list(columns), quantiles
        self.weight = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, series=None):
        last = x[:, -1:, self.columns].expand(-1, H, -1) * self.weight  # (B, H, nt)
        if not self.quantiles:
            return last
        return torch.stack([last - 1, last, last + 1], dim=-1)


def _prep(noise=0.0):
    """Three hourly series of two targets, 300 steps; the noise makes the residuals vary."""
    panel = to_panel(weather_frame(3, 300, ("a", "b"), noise=noise, seed=3), "h")
    return prepared.prepare(panel, L, H, ["a", "b"], (0.6, 0.2, 0.2), calendar=())


@pytest.mark.parametrize("quantiles", [None, Q])
def test_calibration_uses_no_test_window(tmp_path, quantiles):
    prep = _prep(noise=3.0)
    evaluate = EvaluateConfig(intervals=[0.8, 0.95], calibrate=True, calibration="split")
    module = Persistence(prep.target_cols, quantiles)

    def offsets(p, folder):
        folder.mkdir()
        dm = prepared.datamodule(p)
        calibration = intervals.calibrate_run(evaluate, p, module, dm, quantiles, folder)
        return [np.asarray(s["offsets"]) for s in calibration.content["intervals"]]

    before = offsets(prep, tmp_path / "a")
    # every value after the validation span (the test windows' targets) changed wildly
    val_end = prep.bounds["val"][1]
    values = prep.panel.values.copy()
    values[:, val_end:] = values[:, val_end:] * 7 + 1e4
    perturbed = replace(prep, panel=replace(prep.panel, values=values))
    assert not np.allclose(prepared.actuals(perturbed), prepared.actuals(prep))
    for a, b in zip(before, offsets(perturbed, tmp_path / "b"), strict=True):
        np.testing.assert_array_equal(a, b)
    # while a change to the validation span's values does change them (the check can fail)
    values = prep.panel.values.copy()
    start = prep.bounds["val"][0]
    shape = values[:, start:val_end].shape
    values[:, start:val_end] += np.random.default_rng(4).normal(0, 50, shape)
    moved = replace(prep, panel=replace(prep.panel, values=values))
    assert not np.allclose(before[0], offsets(moved, tmp_path / "c")[0])


@pytest.mark.parametrize("quantiles", [None, Q])
def test_adaptive_bounds_read_no_outcome_after_their_origin(tmp_path, quantiles):
    """A test window's adaptive interval moves with the outcomes known at its origin (the last
    input step), never with a later one."""
    prep = _prep(noise=3.0)
    module = Persistence(prep.target_cols, quantiles)

    def table_of(p, folder):
        folder.mkdir()
        (folder / conformal.FILE).write_text("{}")  # an earlier run's
        dm = prepared.datamodule(p)
        calibration = intervals.calibrate_run(EvaluateConfig(intervals=[0.8, 0.95]), p, module, dm,
                                              quantiles, folder)
        assert calibration.content["calibration"] == "adaptive"  # the default
        assert not (folder / conformal.FILE).exists()  # written once walked to the data's end
        scaled = np.concatenate([module(x, s).detach().numpy()
                                 for x, _, s in dm.predict_dataloader()])
        found = intervals.score_test(calibration, p, prepared.to_units(p, scaled),
                                     prepared.actuals(p), quantiles)
        return forecast_table(p, scaled, quantiles).assign(**found.bounds)

    before = table_of(prep, tmp_path / "a")
    test_start, test_end = prep.bounds["test"]
    cut = (test_start + test_end) // 2
    values = prep.panel.values.copy()
    values[:, cut:] = values[:, cut:] * 7 + 1e4  # every outcome from step `cut` on
    after = table_of(replace(prep, panel=replace(prep.panel, values=values)), tmp_path / "b")
    known = (before["origin"] < prep.panel.times[cut]).to_numpy()  # inputs end before the cut
    assert 0 < known.sum() < len(known)
    for column in ("lower_80", "upper_80", "lower_95", "upper_95"):
        np.testing.assert_array_equal(before[column][known], after[column][known])
        assert not np.allclose(before[column][~known], after[column][~known])


@pytest.mark.parametrize("method", ["split", "adaptive"])
def test_calibration_json_holds_the_offsets_predict_applies(tmp_path, method):
    prep = _prep(noise=3.0)
    module = Persistence(prep.target_cols, Q)
    dm = prepared.datamodule(prep)
    (tmp_path / conformal.FILE).write_text("{}")  # an earlier run's, in the same folder
    evaluate = EvaluateConfig(intervals=[0.8, 0.95], calibration=method)
    calibration = intervals.calibrate_run(evaluate, prep, module, dm, Q, tmp_path)
    assert not (tmp_path / conformal.FILE).exists()  # nothing until the test windows are scored
    # each interval's validation scores beside the content, which never holds them
    shape = (len(prep.indices["val"]), H, len(prep.targets))
    assert [s.shape for s in calibration.validation_scores] == [shape, shape]
    scaled = np.concatenate([module(x, s).detach().numpy() for x, _, s in dm.predict_dataloader()])
    found = intervals.score_test(calibration, prep, prepared.to_units(prep, scaled),
                                 prepared.actuals(prep), Q)
    for spec in calibration.content["intervals"]:  # the walk leaves the calibration as it was
        assert spec["offsets"] == spec["validation_offsets"] and "end_level" not in spec
    intervals.save_run(found.calibration, tmp_path)
    saved = conformal.load(tmp_path)
    assert found.scores["calibration"] == method
    assert saved["calibration"] == method
    assert [spec["kind"] for spec in saved["intervals"]] == ["cqr", "residual"]
    for spec in saved["intervals"]:
        assert not any(key.startswith("_") for key in spec)  # the raw scores stay in memory
        validation = np.asarray(spec["validation_offsets"])
        if method == "split":
            np.testing.assert_array_equal(spec["offsets"], validation)
        else:  # walked over the test windows to the end of the data
            assert spec["end_level"] is not None
            assert not np.allclose(spec["offsets"], validation)


def test_calibrate_false_reports_the_raw_quantile_interval(tmp_path):
    prep = _prep(noise=3.0)
    module = Persistence(prep.target_cols, Q)
    dm = prepared.datamodule(prep)
    (tmp_path / conformal.FILE).write_text("{}")  # an earlier run's, in the same folder
    evaluate = EvaluateConfig(intervals=None, calibrate=False)
    calibration = intervals.calibrate_run(evaluate, prep, module, dm, Q, tmp_path)
    assert not (tmp_path / conformal.FILE).exists()  # forecast-predict then adds no bounds
    scaled = np.concatenate([module(x, s).detach().numpy() for x, _, s in dm.predict_dataloader()])
    scored = scoring.evaluate(prep, scaled, {}, 24, quantiles=Q)
    found = intervals.score_test(calibration, prep, prepared.to_units(prep, scaled),
                                 prepared.actuals(prep), Q)
    model = intervals.merged(scored["model"], found.scores)
    assert model["calibrated"] is False and "coverage_80_raw" not in model
    assert model["coverage_80"] == pytest.approx(model["coverage"])  # the q0.1-q0.9 interval
    assert set(model["by_lead"]) >= {"mae", "coverage_80", "width_80"}  # beside the point ones
    assert "coverage_80" not in scored["model"]  # merged into a new entry
    table = forecast_table(prep, scaled, Q)
    np.testing.assert_array_equal(found.bounds["lower_80"], table["q0.1"])
    assert found.calibration is None  # nothing for forecast-predict to apply
    intervals.save_run(found.calibration, tmp_path)
    assert not (tmp_path / conformal.FILE).exists()


def test_point_model_with_calibrate_false_has_no_intervals(tmp_path, caplog):
    prep = _prep()
    calibration = intervals.calibrate_run(EvaluateConfig(intervals=[0.8], calibrate=False), prep,
                                          Persistence(prep.target_cols), None, None, tmp_path)
    found = intervals.score_test(calibration, prep, None, None, None)
    assert found.scores == {"calibrated": False} and found.bounds == {}
    assert "no uncalibrated intervals" in caplog.text


# ------------------------------------------------------------------- a run, and forecast-predict


@pytest.fixture(scope="module")
def quantile_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("conformal")
    out = base / "run"
    args = ["data=synthetic", "trainer=fast", "data.n_steps=600", f"lookback={L}",
            f"horizon={H}", "model.hidden_size=16", "trainer.max_epochs=1", "threads=1",
            "model.quantiles=[0.1,0.5,0.9]", "evaluate.intervals=[0.8,0.95]",
            f"hydra.run.dir={out}"]
    proc = subprocess.run([str(BIN / "forecast-train"), *args], cwd=base, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "80% interval: test coverage" in proc.stdout
    return out


def test_a_run_reports_and_writes_calibrated_intervals(quantile_run):
    metrics = json.loads((quantile_run / "metrics.json").read_text())["model"]
    calibration = json.loads((quantile_run / "checkpoints" / conformal.FILE).read_text())
    table = pd.read_parquet(quantile_run / "forecasts.parquet")
    assert [s["kind"] for s in calibration["intervals"]] == ["cqr", "residual"]
    assert calibration["windows"] == json.loads(
        (quantile_run / "metrics.json").read_text())["windows"]["val"]
    assert calibration["calibration"] == metrics["calibration"] == "adaptive"
    assert calibration["adapted_windows"] == json.loads(
        (quantile_run / "metrics.json").read_text())["windows"]["test"]
    width = (table["q0.9"] - table["q0.1"]).to_numpy()
    leads = table["lead"].to_numpy() - 1
    first = (table["origin"] == table["origin"].min()).to_numpy()
    ids = json.loads((quantile_run / "checkpoints" / "data.json").read_text())["ids"]
    position = table["series"].astype(str).map(ids.index).to_numpy()
    for spec in calibration["intervals"]:
        tag = spec["label"]
        # a residual interval is scaled by its series' spread; cqr's by the window's pair width
        assert ("series_scale" in spec) == (spec["kind"] == "residual")
        by_series = np.asarray(spec.get("series_scale", np.ones((len(ids), 1))))[position, 0]
        offset = np.asarray(spec["validation_offsets"])[leads, 0] * width * by_series
        centre = (table["q0.1"], table["q0.9"]) if spec["kind"] == "cqr" else \
            (table["forecast"], table["forecast"])
        split = (table["actual"] >= centre[0] - offset) & (table["actual"] <= centre[1] + offset)
        assert metrics[f"coverage_{tag}_split"] == pytest.approx(split.mean(), abs=1e-6)
        # the adaptive bounds start at the validation offsets, then move with the misses
        np.testing.assert_allclose(table[f"lower_{tag}"][first], (centre[0] - offset)[first],
                                   rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(table[f"upper_{tag}"][first], (centre[1] + offset)[first],
                                   rtol=1e-5, atol=1e-4)
        assert not np.allclose(table[f"upper_{tag}"], centre[1] + offset, rtol=1e-5, atol=1e-4)
        assert np.shape(spec["end_level"]) == np.shape(spec["offsets"]) == (H, 1)
        inside = (table["actual"] >= table[f"lower_{tag}"]) & \
                 (table["actual"] <= table[f"upper_{tag}"])
        assert metrics[f"coverage_{tag}"] == pytest.approx(inside.mean(), abs=1e-6)
        assert metrics[f"width_{tag}"] == pytest.approx(
            (table[f"upper_{tag}"] - table[f"lower_{tag}"]).mean(), rel=1e-4)
        by_lead = inside.groupby(table["lead"]).mean().to_numpy()
        np.testing.assert_allclose(metrics["by_lead"][f"coverage_{tag}"], by_lead, atol=1e-6)
        for name, one in table.groupby("series", observed=True):
            assert metrics["by_series"][name][f"coverage_{tag}"] == pytest.approx(
                inside[one.index].mean(), abs=1e-6)
    # the uncalibrated q0.1-q0.9 interval beside the calibrated 80% one
    raw = (table["actual"] >= table["q0.1"]) & (table["actual"] <= table["q0.9"])
    assert metrics["coverage_80_raw"] == pytest.approx(raw.mean(), abs=1e-6)
    assert "coverage_95_raw" not in metrics  # no quantile pair spans 95%
    assert "coverage_80" in pd.read_csv(quantile_run / "tables" / "summary.csv").columns


def test_predict_writes_the_calibrated_bounds(quantile_run, tmp_path):
    trained = predict.load_run(quantile_run)
    table, history = predict.forecast_run(trained)
    calibration = json.loads((quantile_run / "checkpoints" / conformal.FILE).read_text())
    assert [c for c in table.columns if c.startswith(("lower", "upper"))] == \
        ["lower_80", "upper_80", "lower_95", "upper_95"]
    steps = table.groupby(["series", "target"], observed=True).cumcount().to_numpy()  # lead - 1
    width = (table["q0.9"] - table["q0.1"]).to_numpy()
    offset = np.asarray(calibration["intervals"][0]["offsets"])[steps, 0] * width
    np.testing.assert_allclose(table["lower_80"], table["q0.1"] - offset, rtol=1e-5, atol=1e-4)
    # the 95% residual interval: the end-of-data offsets times the series scale of each series
    residual = calibration["intervals"][1]
    ids = trained.description["ids"]
    position = table["series"].astype(str).map(ids.index).to_numpy()
    by_series = np.asarray(residual["series_scale"])[position, 0]
    offset = np.asarray(residual["offsets"])[steps, 0] * width * by_series
    np.testing.assert_allclose(table["upper_95"], table["forecast"] + offset, rtol=1e-5,
                               atol=1e-4)
    assert len(set(by_series.round(6))) > 1  # the series do get different scales
    assert (table["lower_95"] <= table["forecast"]).all()
    assert (table["upper_95"] >= table["forecast"]).all()
    fig = plots.history_and_forecast(history, table, "temp")
    assert {"80% interval", "95% interval"} <= set(fig.axes[0].get_legend_handles_labels()[1])
    assert fig.axes[0].get_title(loc="left").startswith(f"{table['series'].iloc[0]}: temp")
    # a calibration.json of another run is refused
    bad = json.loads((quantile_run / "checkpoints" / conformal.FILE).read_text())
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    conformal.save({**bad, "horizon": H + 1}, folder)
    with pytest.raises(ValueError, match="does not match its data.json"):
        conformal.load(folder, trained.description)
    fewer = [{**spec, "series_scale": spec.get("series_scale", [[1.0]])[:1]}
             for spec in bad["intervals"]]
    conformal.save({**bad, "intervals": fewer}, folder)
    with pytest.raises(ValueError, match="'series'"):
        conformal.load(folder, trained.description)


def test_plot_legend_names_the_nominal_level(quantile_run):
    table = pd.read_parquet(quantile_run / "forecasts.parquet")
    assert [b[2] for b in plots.interval_bands(table.columns)] == ["95% interval", "80% interval"]
    fig = plots.forecasts_vs_actuals(table, "temp", days=2)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "80% interval" in labels and "95% interval" in labels
    assert fig.axes[0].get_title(loc="left").startswith(f"{table['series'].iloc[0]}: temp")
    raw = table.drop(columns=[c for c in table.columns if c.startswith(("lower", "upper"))])
    assert [b[2] for b in plots.interval_bands(raw.columns)] == ["80% interval (uncalibrated)"]
    assert plots.interval_bands(["forecast", "actual"]) == []
