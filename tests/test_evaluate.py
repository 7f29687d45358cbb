"""Scoring a run: interval metrics, scaling back, evaluate in both spaces, backtest folds, the
tables, the verdict, and (slow) the artefacts of real runs: backtest, quantiles, report, LTSF."""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import weather_frame

from forecast.data import prepared
from forecast.data.windows import gather
from forecast.evaluation import folds as fold_plan
from forecast.evaluation import metrics as mt
from forecast.evaluation import scoring
from forecast.evaluation.scores import Scores, undefined
from forecast.models.quantiles import point
from forecast.report import tables

FORECAST_TRAIN = Path(sys.executable).parent / "forecast-train"
L, H, Q = 24, 6, [0.1, 0.5, 0.9]
SEASON = 24


# ------------------------------------------------------------------------- interval metrics


def test_pinball_by_hand():
    actual = np.array([[[2.0]]])  # (K=1, H=1, nt=1)
    forecast = np.array([[[[1.0, 2.0, 4.0]]]])  # (1, 1, 1, Q)
    # errors actual - forecast: +1, 0, -2 -> max(q e, (q - 1) e): 0.1, 0, 0.2
    assert mt.pinball(actual, forecast, Q) == pytest.approx(0.1)
    # the 0.5 quantile's loss is half the absolute error
    a = np.array([[[1.0], [5.0]]])
    f = np.array([[[[3.0]], [[4.0]]]])
    assert mt.pinball(a, f, [0.5]) == pytest.approx(0.5 * (2 + 1) / 2)
    # a perfect forecast costs nothing at every quantile
    assert mt.pinball(a, np.repeat(a[..., None], 3, axis=-1), Q) == 0.0


def test_coverage_counts_the_bounds_as_inside():
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    low = np.array([1.0, 0.0, 3.5, 0.0])
    high = np.array([2.0, 1.0, 4.0, 4.0])
    # 1 in [1, 2] (on the bound), 2 not in [0, 1], 3 not in [3.5, 4], 4 in [0, 4] (on the bound)
    assert mt.coverage(actual, low, high) == pytest.approx(0.5)
    assert mt.coverage(actual, actual, actual) == 1.0


def _quantile_scores(actual, forecast, quantiles) -> dict:
    """Pinball loss, coverage and width of the outermost interval of every window at once."""
    return mt.QuantileTotals(quantiles).add(actual, forecast).scores()


def test_quantile_scores_by_hand_with_unsorted_quantiles():
    actual = np.array([[[0.0], [10.0]]])  # (1, 2, 1)
    # quantiles in the order 0.9, 0.1, 0.5: the interval is the 0.1 .. 0.9 pair
    forecast = np.array([[[[2.0, -1.0, 0.5]], [[12.0, 10.0, 11.0]]]])  # (1, 2, 1, 3)
    out = _quantile_scores(actual, forecast, [0.9, 0.1, 0.5])
    assert out["interval"] == [0.1, 0.9]
    assert out["nominal_coverage"] == pytest.approx(0.8)
    # lead 1: 0 in [-1, 2]; lead 2: 10 in [10, 12] (on the lower bound)
    assert out["coverage"] == 1.0
    assert out["width"] == pytest.approx((3.0 + 2.0) / 2)
    # losses: lead 1 errors -2 (q .9), +1 (q .1), -0.5 (q .5) -> 0.2, 0.1, 0.25
    #         lead 2 errors -2 (q .9),  0 (q .1), -1 (q .5)   -> 0.2, 0.0, 0.5
    assert out["pinball"] == pytest.approx((0.2 + 0.1 + 0.25 + 0.2 + 0.0 + 0.5) / 6)
    assert set(out) == {"pinball", "interval", "coverage", "nominal_coverage", "width"}


# ------------------------------------------------------------ scaling back and point forecasts


@pytest.fixture
def prep(panel):
    """conftest's panel (3 series x 300 hourly steps, a = 1000 k + t, b = -a / 1000), both
    features as targets, windows of L=24 -> H=6."""
    return prepared.prepare(panel, L, H, ["a", "b"], (0.7, 0.1, 0.2), calendar=())


def _train_stats(prep):
    """Mean and (population) std of each target over the train span, computed here."""
    train = prep.panel.values[:, : prep.bounds["train"][1]][..., prep.target_cols]
    train = train.astype(np.float64).reshape(-1, len(prep.target_cols))
    return train.mean(axis=0), train.std(axis=0)


def test_to_units_scales_each_quantile_like_a_point_forecast(prep):
    mean, std = _train_stats(prep)
    rng = np.random.default_rng(0)
    scaled = rng.normal(size=(5, H, 2, 3)).astype(np.float32)  # (K, H, nt, Q)
    units = prepared.to_units(prep, scaled)
    assert units.shape == scaled.shape
    for j in range(3):
        np.testing.assert_allclose(units[..., j], prepared.to_units(prep, scaled[..., j]))
        np.testing.assert_allclose(units[..., j], scaled[..., j] * std + mean, rtol=1e-5)


def test_point_picks_the_median():
    forecast = np.arange(2 * 3 * 1 * 3, dtype=float).reshape(2, 3, 1, 3)
    np.testing.assert_array_equal(point(forecast, [0.1, 0.5, 0.9]), forecast[..., 1])
    np.testing.assert_array_equal(point(forecast, [0.5, 0.1, 0.9]), forecast[..., 0])
    plain = forecast[..., 0]
    assert point(plain, None) is plain


# ---------------------------------------------------------------------------------- evaluate


def _actual_and_z(prep):
    """Test-window actuals (K, H, 2) in data units and z-scored by hand."""
    mean, std = _train_stats(prep)
    actual = gather(prep.panel.values[..., prep.target_cols], prep.indices["test"], L, H)
    actual = actual.astype(np.float64)
    return actual, (actual - mean) / std, std


def _baselines(actual):
    """Hand-made baselines in data units: always 2 too high / 1 too low."""
    return {"persistence": actual + 2.0, "ridge": actual - 1.0}


def test_evaluate_in_data_units(prep):
    actual, z, std = _actual_and_z(prep)
    model = (z + 0.5).astype(np.float32)  # 0.5 train-std too high everywhere
    out = scoring.evaluate(prep, model, _baselines(actual), SEASON, space="original")
    assert out["space"] == "original"
    assert set(out["baselines"]) == {"persistence", "ridge"}
    m, p = out["model"], out["baselines"]["persistence"]
    # model errors are 0.5 std of each target; the baselines' are fixed in data units
    assert m["mae"] == pytest.approx(0.5 * std.mean(), rel=1e-5)
    assert m["mse"] == pytest.approx(0.25 * np.mean(std**2), rel=1e-5)
    assert m["rmse"] == pytest.approx(np.sqrt(0.25 * np.mean(std**2)), rel=1e-5)
    assert p["mae"] == pytest.approx(2.0, rel=1e-5)
    assert out["baselines"]["ridge"]["mae"] == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(m["by_lead"]["mae"], [0.5 * std.mean()] * H, rtol=1e-5)
    assert m["by_target"]["a"]["mae"] == pytest.approx(0.5 * std[0], rel=1e-5)
    assert m["by_target"]["b"]["mae"] == pytest.approx(0.5 * std[1], rel=1e-5)
    assert set(m["by_series"]) == {"A", "B", "C"}
    # skill against persistence: 1 - MSE / 4
    assert m["skill"] == pytest.approx(1 - 0.25 * np.mean(std**2) / 4.0, rel=1e-5)
    assert p["skill"] == pytest.approx(0.0)
    # MASE: seasonal (24 h) naive MAE of the train span is 24 for a and 0.024 for b
    assert m["mase"] == pytest.approx(np.mean([0.5 * std[0] / 24, 0.5 * std[1] / 0.024]),
                                      rel=1e-4)
    assert "pinball" not in m and "coverage" not in m


def test_evaluate_in_scaled_space_scores_z_scores(prep):
    actual, z, std = _actual_and_z(prep)
    model = (z + 0.5).astype(np.float32)
    baselines = _baselines(actual)
    out = scoring.evaluate(prep, model, baselines, SEASON, space="scaled")
    original = scoring.evaluate(prep, model, baselines, SEASON, space="original")
    assert out["space"] == "scaled"
    m, p, r = out["model"], out["baselines"]["persistence"], out["baselines"]["ridge"]
    assert m["mae"] == pytest.approx(0.5, rel=1e-4)
    assert m["mse"] == pytest.approx(0.25, rel=1e-4)
    assert m["rmse"] == pytest.approx(0.5, rel=1e-4)
    np.testing.assert_allclose(m["by_lead"]["mae"], [0.5] * H, rtol=1e-4)
    for name in ("A", "B", "C"):
        assert m["by_series"][name]["mae"] == pytest.approx(0.5, rel=1e-4)
    # a fixed error in data units is that error over each target's train std
    assert p["mae"] == pytest.approx(np.mean(2.0 / std), rel=1e-4)
    assert p["mse"] == pytest.approx(np.mean(4.0 / std**2), rel=1e-4)
    assert r["mae"] == pytest.approx(np.mean(1.0 / std), rel=1e-4)
    assert p["by_target"]["b"]["mae"] == pytest.approx(2.0 / std[1], rel=1e-4)
    # the same scores by hand on the z-scored arrays
    zp = (baselines["persistence"] - actual) / std  # persistence's error in z units
    assert p["smape"] == pytest.approx(_smape(z, z + zp), rel=1e-4)
    assert m["smape"] == pytest.approx(_smape(z, z + 0.5), rel=1e-4)
    assert m["skill"] == pytest.approx(1 - 0.25 / np.mean(4.0 / std**2), rel=1e-4)
    # MASE divides by a scale in the same units: it does not depend on the space
    for scores, ref in ((m, original["model"]), (p, original["baselines"]["persistence"])):
        assert scores["mase"] == pytest.approx(ref["mase"], rel=1e-4)


def _smape(actual, forecast) -> float:
    """sMAPE in percent by hand: the mean of 200 |error| / (|actual| + |forecast|)."""
    return float(np.mean(200 * np.abs(forecast - actual) / (np.abs(actual) + np.abs(forecast))))


def test_evaluate_refuses_an_unknown_space(prep):
    actual, z, _ = _actual_and_z(prep)
    with pytest.raises(ValueError, match="evaluate.space='kelvin'"):
        scoring.evaluate(prep, z.astype(np.float32), {}, SEASON, space="kelvin")


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    if isinstance(tree, list) and tree and isinstance(tree[0], float):
        return {f"{prefix}{i}": v for i, v in enumerate(tree)}
    return {prefix: tree}


def test_an_exact_persistence_leaves_skill_undefined_not_a_crash(prep):
    """Skill divides by persistence's MSE: when persistence is exact on every test value (a
    constant test span), the skill is undefined (null in metrics.json, with the reason)."""
    actual, z, _ = _actual_and_z(prep)
    out = scoring.evaluate(prep, (z + 0.5).astype(np.float32), {"persistence": actual}, SEASON,
                           block=7)
    assert out["model"]["skill"] == -np.inf  # 1 - MSE / 0
    assert np.isnan(out["baselines"]["persistence"]["skill"])  # 1 - 0 / 0
    assert undefined(out)  # written as null in metrics.json, with the reason
    assert out["model"]["mae"] > 0


@pytest.mark.parametrize("space", ["scaled", "original"])
def test_scoring_in_blocks_equals_scoring_every_window_at_once(prep, space):
    """Blocks of 7 windows (series boundaries inside blocks, a last short block) and fitted
    baselines forecasting each block give the scores of the arrays scored whole."""
    rng = np.random.default_rng(0)
    _, z, _ = _actual_and_z(prep)
    model = np.stack([z - 1.0, z + rng.normal(size=z.shape), z + 1.0], -1).astype(np.float32)
    names = list(scoring.BASELINES)
    fitted = scoring.baseline_forecasters(prep, names, SEASON)
    arrays = {name: forecast(prep.indices["test"]) for name, forecast in fitted.items()}
    whole = scoring.evaluate(prep, model, arrays, SEASON, space, Q, block=10**6)
    assert len(prep.indices["test"]) % 7 and len(np.unique(prep.indices["test"][:, 0])) == 3
    blocked = scoring.evaluate(prep, model, fitted, SEASON, space, Q, block=7)
    a, b = _flat(whole), _flat(blocked)
    assert a.keys() == b.keys() and set(whole["baselines"]) == set(names)
    for key, value in a.items():
        if isinstance(value, float):
            # float32 ridge forecasts differ by ~1e-9 between block sizes (BLAS)
            assert b[key] == pytest.approx(value, rel=1e-6, abs=1e-5), key
        else:
            assert b[key] == value, key
    # the quantile scores of the blocks are those of the whole arrays
    actual = scoring.FeatureColumns(prep.panel.values, prep.target_cols).gather(
        prep.indices["test"], L, H)
    units = model if space == "scaled" else prepared.to_units(prep, model)
    reference = _quantile_scores(actual if space == "original" else
                                 prep.scaler.transform(actual, prep.target_cols), units, Q)
    for key in ("pinball", "coverage", "width"):
        assert blocked["model"][key] == pytest.approx(reference[key], rel=1e-6), key


@pytest.mark.parametrize("space", ["scaled", "original"])
def test_evaluate_with_quantiles_adds_interval_scores(prep, space):
    actual, z, std = _actual_and_z(prep)
    # scaled quantiles 0.1, 0.5, 0.9 at z - 1, z + 0.5, z + 1: every actual is inside
    model = np.stack([z - 1.0, z + 0.5, z + 1.0], axis=-1).astype(np.float32)
    out = scoring.evaluate(prep, model, _baselines(actual), SEASON, space=space, quantiles=Q)
    m = out["model"]
    unit = np.ones(2) if space == "scaled" else std  # one scaled unit in this space
    assert m["mae"] == pytest.approx(0.5 * unit.mean(), rel=1e-4)  # scored on the median
    assert m["coverage"] == 1.0
    assert m["nominal_coverage"] == pytest.approx(0.8)
    assert m["interval"] == [0.1, 0.9]
    assert m["width"] == pytest.approx(2.0 * unit.mean(), rel=1e-4)
    # losses per quantile: 0.1 * 1, 0.5 * 0.5, 0.1 * 1 (units of each target's std)
    assert m["pinball"] == pytest.approx(0.15 * unit.mean(), rel=1e-4)
    for scores in out["baselines"].values():
        assert not {"pinball", "coverage", "width"} & set(scores)


# ---------------------------------------------------------------------------- backtest folds


def test_fold_ends_cut_the_test_span_into_consecutive_blocks():
    ends = fold_plan.fold_ends(1000, (0.7, 0.1, 0.2), 3)
    # test span [800, 1000) in blocks of 200 // 3 = 66, the last one taking the remainder
    assert ends == [(700, 800, 866), (766, 866, 932), (832, 932, 1000)]
    tests = [(val_end, test_end) for _, val_end, test_end in ends]
    assert tests[0][0] == 800 and tests[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(tests, tests[1:], strict=False))  # no gap, no overlap
    for train_end, val_end, test_end in ends:
        assert val_end - train_end == 100  # the val share, just before the test block
        assert train_end < val_end < test_end
    train_ends = [e[0] for e in ends]
    assert train_ends == sorted(train_ends) and len(set(train_ends)) == 3  # expanding


@pytest.mark.parametrize("folds", [1, 0])
def test_fold_ends_needs_two_folds(folds):
    with pytest.raises(ValueError, match=f"evaluate.folds={folds}"):
        fold_plan.fold_ends(1000, (0.7, 0.1, 0.2), folds)


def _scores(mae, rmse, leads, a_mae, skill=None):
    out = {"mae": mae, "rmse": rmse, "by_lead": {"mae": leads},
           "by_series": {"A": {"mae": a_mae}}, "by_target": {"t": {"mae": mae}}}
    if skill is not None:
        out["skill"] = skill
    return out


def _fold(model, persistence, ends, val_loss, windows, fit_seconds):
    return Scores(model=model, baselines={"persistence": persistence}, space="original",
                  windows={"train": windows, "val": 5, "test": 4, "dropped": 0,
                           "dropped_by_split": {"train": 0, "val": 0, "test": 0}},
                  val_loss=val_loss, epochs=3, seconds={"fit": fit_seconds, "evaluate": 0.5},
                  lookback=L, horizon=H, targets=["t"], units={"t": "degF"}, step_seconds=3600.0,
                  ends=list(ends), test_start=f"step {ends[1]}")


def test_aggregate_folds_means_and_population_std():
    fold1 = _fold(_scores(1.0, 2.0, [1.0, 3.0], 0.5, skill=0.2),
                  _scores(2.0, 3.0, [2.0, 2.0], 1.0), (70, 80, 90), 0.5, 20, 1.0)
    fold2 = _fold(_scores(3.0, 6.0, [3.0, 5.0], 1.5, skill=0.4),
                  _scores(4.0, 3.0, [4.0, 6.0], 2.0), (80, 90, 100), 0.7, 30, 2.0)
    out = fold_plan.aggregate_folds([fold1, fold2])
    assert out.space == "original"
    m, p = out.model, out.baselines["persistence"]
    assert m["mae"] == pytest.approx(2.0) and m["mae_std"] == pytest.approx(1.0)  # not 1.414
    assert m["rmse"] == pytest.approx(4.0) and m["rmse_std"] == pytest.approx(2.0)
    assert m["skill"] == pytest.approx(0.3) and m["skill_std"] == pytest.approx(0.1)
    assert m["by_lead"]["mae"] == pytest.approx([2.0, 4.0])
    assert m["by_series"]["A"] == pytest.approx({"mae": 1.0})  # breakdowns: mean, no _std
    assert m["by_target"]["t"] == pytest.approx({"mae": 2.0})
    assert p["mae"] == pytest.approx(3.0) and p["mae_std"] == pytest.approx(1.0)
    assert p["rmse_std"] == pytest.approx(0.0)
    assert p["by_lead"]["mae"] == pytest.approx([3.0, 4.0])
    # beside the means: each fold's overall scores, the per-fold counts, the total fit time
    assert out.folds == [{"ends": [70, 80, 90], "test_start": "step 80",
                          "model": {"mae": 1.0, "rmse": 2.0, "skill": 0.2},
                          "baselines": {"persistence": {"mae": 2.0, "rmse": 3.0}}},
                         {"ends": [80, 90, 100], "test_start": "step 90",
                          "model": {"mae": 3.0, "rmse": 6.0, "skill": 0.4},
                          "baselines": {"persistence": {"mae": 4.0, "rmse": 3.0}}}]
    assert out.val_loss == pytest.approx(0.6) and out.seconds == {"fit": 3.0}
    assert out.windows == {"train": [20, 30], "val": [5, 5], "test": [4, 4], "dropped": [0, 0]}
    written = out.to_json()  # metrics.json: no single-run fields, no fold's own ends
    assert list(written) == ["model", "baselines", "space", "windows", "val_loss", "seconds",
                             "units", "step_seconds", "folds"]


def test_scores_json_says_why_a_score_is_undefined():
    fold = _fold(_scores(1.0, float("nan"), [1.0, 2.0], 0.5), _scores(2.0, 3.0, [2.0, 2.0], 1.0),
                 (70, 80, 90), 0.5, 20, 1.0)
    written = fold.to_json()
    assert list(written)[:12] == ["model", "baselines", "space", "windows", "val_loss", "epochs",
                                  "seconds", "lookback", "horizon", "targets", "units",
                                  "step_seconds"]
    assert written["ends"] == [70, 80, 90] and written["test_start"] == "step 80"
    assert written["undefined"] == {"model.rmse": "nan (not a finite number)"}
    assert fold.timed(plots=2.0).seconds == {"fit": 1.0, "evaluate": 0.5, "plots": 2.0}
    assert fold.seconds == {"fit": 1.0, "evaluate": 0.5}  # a record is never changed


# ---------------------------------------------------------------------------- tables and text


def test_metric_tables_shapes(prep):
    actual, z, _ = _actual_and_z(prep)
    model = np.stack([z - 1.0, z + 0.5, z + 1.0], axis=-1).astype(np.float32)
    metrics = scoring.evaluate(prep, model, _baselines(actual), SEASON, quantiles=Q)
    by_name = tables.metric_tables(metrics)
    assert set(by_name) == {"summary", "by_lead", "by_series", "by_target"}
    names = ["model", "persistence", "ridge"]

    summary = by_name["summary"]
    assert list(summary["forecaster"]) == names
    assert {"mae", "mse", "rmse", "smape", "mase", "skill", "coverage", "width"} \
        <= set(summary.columns)
    assert "interval" not in summary.columns and "by_lead" not in summary.columns
    assert summary.loc[0, "mae"] == pytest.approx(metrics["model"]["mae"])

    by_lead = by_name["by_lead"]
    assert len(by_lead) == 3 * H
    for name in names:
        rows = by_lead[by_lead["forecaster"] == name]
        assert list(rows["lead"]) == list(range(1, H + 1))
    np.testing.assert_allclose(by_lead.loc[by_lead["forecaster"] == "ridge", "mae"],
                               metrics["baselines"]["ridge"]["by_lead"]["mae"])

    by_series = by_name["by_series"]
    assert len(by_series) == 3 * 3 and {"forecaster", "series", "mae"} <= set(by_series.columns)
    assert sorted(by_series.loc[by_series["forecaster"] == "model", "series"]) == ["A", "B", "C"]
    by_target = by_name["by_target"]
    assert len(by_target) == 3 * 2 and {"forecaster", "target", "mae"} <= set(by_target.columns)
    assert list(by_target.loc[by_target["forecaster"] == "model", "target"]) == ["a", "b"]


def _m(mae, **extra):
    return {"mae": mae, "rmse": 2 * mae, "mse": 4 * mae**2, "mase": mae / 3, "skill": 0.5,
            **extra}


def _metrics(model, **baselines):
    return {"model": _m(model), "baselines": {n: _m(v) for n, v in baselines.items()},
            "space": "original"}


def test_verdict_names_the_baselines_that_win():
    losing = tables.verdict(_metrics(2.0, persistence=1.5, climatology=3.0, ridge=1.0))
    assert "LOSES to persistence, ridge on test MAE and RMSE" in losing
    assert "climatology" not in losing
    assert "worse than repeating the last value (persistence) on MAE and RMSE" in losing

    only_ridge = tables.verdict(_metrics(2.0, persistence=2.5, ridge=1.0))
    assert "LOSES to ridge on test MAE and RMSE" in only_ridge
    assert "persistence" not in only_ridge and "last value" not in only_ridge

    winning = tables.verdict(_metrics(1.0, persistence=2.0, ridge=1.0))  # a tie is no loss
    assert winning == "The model beats every baseline on test MAE and RMSE."


def test_verdict_says_when_mae_and_rmse_disagree():
    metrics = _metrics(3.7, persistence=5.6, ridge=3.9)
    metrics["model"]["rmse"], metrics["baselines"]["ridge"]["rmse"] = 5.4, 5.2
    said = tables.verdict(metrics)
    assert said.startswith("The model beats every baseline on test MAE.")
    assert "beats ridge on test MAE but LOSES to it on RMSE" in said
    assert "RMSE 5.400 vs 5.200" in said and "persistence" not in said

    metrics["baselines"]["ridge"] |= {"mae": 3.5, "rmse": 5.6}  # now the other way round
    said = tables.verdict(metrics)
    assert "beats every baseline" not in said
    assert "LOSES to ridge on test MAE but beats it on RMSE" in said

    metrics["baselines"]["persistence"]["rmse"] = 5.0  # persistence: lower RMSE only
    said = tables.verdict(metrics)
    assert said.endswith("It does worse than repeating the last value (persistence) on RMSE.")


def _rows(table: str) -> dict[str, list[str]]:
    return {line[2:].split()[0]: line.split() for line in table.splitlines()[1:]}


def test_summary_table_rmse_mse_and_the_fold_column():
    metrics = _metrics(2.0, persistence=1.5, ridge=3.0)
    table = tables.summary_table(metrics, unit="degF")
    header = table.splitlines()[0].split()
    assert header[:3] == ["forecaster", "MAE", "RMSE"] and "MSE" not in header
    assert "+-" not in header and header[-1] == "degF"
    rows = _rows(table)
    assert rows["persistence"][0] == "*"  # the best MAE is marked
    assert rows["model"][1:3] == ["2.000", "4.000"]  # MAE, RMSE

    metrics["space"] = "scaled"
    header, *_ = tables.summary_table(metrics).splitlines()
    assert header.split()[:3] == ["forecaster", "MAE", "MSE"] and "RMSE" not in header.split()
    assert _rows(tables.summary_table(metrics))["model"][1:3] == ["2.000", "16.000"]

    folded = {"model": _m(2.0, mae_std=0.25),
              "baselines": {"ridge": _m(3.0, mae_std=0.5)}, "space": "original"}
    table = tables.summary_table(folded)
    assert table.splitlines()[0].split()[:4] == ["forecaster", "MAE", "+-", "RMSE"]
    rows = _rows(table)
    assert rows["model"][:4] == ["*", "model", "2.000", "0.250"]
    assert rows["ridge"][:3] == ["ridge", "3.000", "0.500"]


@pytest.mark.parametrize("step, unit, count, horizon", [
    (3600, "hours", 1, "24 hours"), (86400, "days", 1, "24 days"),
    (900, "minutes", 15, "360 minutes"), (None, "steps", 1, "24 steps")])
def test_leads_in_the_datas_time_unit(step, unit, count, horizon):
    assert tables.lead_unit(step) == (unit, count)
    assert tables.duration(24, step) == horizon


def test_units_of_the_scores_on_the_table_and_the_plot_axes():
    from forecast.report import plots

    metrics = _metrics(2.0, ridge=3.0) | {"units": {"temp": "degF", "dewp": "degF"}}
    assert tables.unit_label(metrics) == "degF"
    assert tables.summary_table(metrics).splitlines()[0].split()[-1] == "degF"
    assert tables.unit_label(metrics | {"units": {"temp": "degF", "humid": "%"}}) == \
        "temp degF, humid %"
    assert tables.unit_label(metrics | {"units": {"temp": None}}) == ""
    assert tables.unit_label(metrics | {"space": "scaled"}) == "z-scores"

    fig = plots.error_by_lead({"model": [1.0, 2.0, 3.0]}, "mae", "degF", ("hours", 3.0))
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("lead (hours ahead)", "MAE (degF)")
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [3.0, 6.0, 9.0])


# ------------------------------------------------------------------------ slow: real runs

def _train(args, cwd, timeout=600):
    assert FORECAST_TRAIN.is_file(), f"{FORECAST_TRAIN} missing: pip install -e ."
    proc = subprocess.run([str(FORECAST_TRAIN), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"forecast-train {args} failed:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-5000:]}"
    return proc


SMALL = ["data=synthetic", "data.n_steps=1000", "trainer=fast", "model.hidden_size=16"]


@pytest.mark.slow
def test_backtest_run(tmp_path):
    run_dir = tmp_path / "run"
    proc = _train([*SMALL, "evaluate.folds=3", f"hydra.run.dir={run_dir}"], tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["folds"]) == 3
    ends = fold_plan.fold_ends(1000, (0.7, 0.1, 0.2), 3)
    start = pd.Timestamp("2020-01-01", tz="UTC")  # the synthetic data's first step, hourly
    for i, fold in enumerate(metrics["folds"]):
        assert fold["ends"] == list(ends[i])
        assert pd.Timestamp(fold["test_start"]) == start + pd.Timedelta(hours=ends[i][1])
        fold_metrics = json.loads((run_dir / "folds" / str(i) / "metrics.json").read_text())
        assert fold["model"]["mae"] == pytest.approx(fold_metrics["model"]["mae"])
    maes = [f["model"]["mae"] for f in metrics["folds"]]
    assert metrics["model"]["mae"] == pytest.approx(np.mean(maes))
    assert metrics["model"]["mae_std"] == pytest.approx(np.std(maes))
    assert "mae_std" in metrics["baselines"]["persistence"]
    assert "Backtest over 3 folds" in proc.stdout
    header = next(line for line in proc.stdout.splitlines() if "forecaster" in line)
    assert header.split()[:4] == ["forecaster", "MAE", "+-", "RMSE"]
    assert tables.verdict(metrics) in proc.stdout


@pytest.fixture(scope="module")
def quantile_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("quantiles")
    run_dir = base / "run"
    _train([*SMALL, "model.quantiles=[0.1,0.5,0.9]", f"hydra.run.dir={run_dir}"], base)
    return run_dir


@pytest.mark.slow
def test_run_writes_tables_and_plots(quantile_run):
    metrics = json.loads((quantile_run / "metrics.json").read_text())
    forecasters = ["model", *metrics["baselines"]]
    tables = {n: pd.read_csv(quantile_run / "tables" / f"{n}.csv")
              for n in ("summary", "by_lead", "by_series", "by_target")}
    assert list(tables["summary"]["forecaster"]) == forecasters
    assert len(tables["by_lead"]) == len(forecasters) * metrics["horizon"]
    assert len(tables["by_series"]) == len(forecasters) * 3  # synthetic: S0, S1, S2
    assert len(tables["by_target"]) == len(forecasters)  # targets: [temp]
    pngs = {p.name for p in (quantile_run / "plots").glob("*.png")}
    assert {"mae_by_series.png", "residuals.png", "learning_curves.png", "forecasts_temp.png",
            "mae_by_lead.png"} <= pngs


@pytest.mark.slow
def test_report_page_is_self_contained(quantile_run):
    page = (quantile_run / "report.html").read_text()
    metrics = json.loads((quantile_run / "metrics.json").read_text())
    assert html.escape(tables.summary_table(metrics)) in page
    assert html.escape(tables.verdict(metrics)) in page
    pngs = sorted((quantile_run / "plots").glob("*.png"))
    sources = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert len(sources) == page.count("<img") == len(pngs)
    embedded = set(sources)
    for png in pngs:
        assert "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode() in embedded
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # nothing fetched from outside


@pytest.mark.slow
def test_quantile_run_forecasts_and_interval_scores(quantile_run):
    table = pd.read_parquet(quantile_run / "forecasts.parquet")
    assert {"q0.1", "q0.5", "q0.9"} <= set(table.columns)
    assert (table["q0.1"] <= table["q0.5"]).all() and (table["q0.5"] <= table["q0.9"]).all()
    np.testing.assert_allclose(table["forecast"], table["q0.5"])
    model = json.loads((quantile_run / "metrics.json").read_text())["model"]
    assert model["nominal_coverage"] == pytest.approx(0.8)
    inside = (table["actual"] >= table["q0.1"]) & (table["actual"] <= table["q0.9"])
    assert model["coverage"] == pytest.approx(inside.mean(), abs=1e-6)
    assert model["width"] == pytest.approx((table["q0.9"] - table["q0.1"]).mean(), rel=1e-4)


@pytest.mark.slow
def test_ltsf_experiment_on_a_multivariate_csv(tmp_path):
    n, columns = 1200, ["HUFL", "HULL", "MUFL", "MULL", "OT"]
    start = pd.Timestamp("2016-07-01")
    data = weather_frame(1, n, columns, start=start, tz=None, series_col=None, time_col="date")
    data["date"] = data["date"].dt.strftime("%Y-%m-%d %H:%M:%S")  # as ETT's files write it
    path = tmp_path / "ett.csv"
    data.to_csv(path, index=False)
    run_dir = tmp_path / "run"
    lookback, horizon = 48, 24
    proc = _train(["+experiment=ltsf", "data=csv", f"data.path={path}", "data.time_col=date",
                   "trainer=fast", f"lookback={lookback}", f"horizon={horizon}",
                   f"hydra.run.dir={run_dir}"], tmp_path)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["targets"] == columns
    assert metrics["space"] == "scaled"
    assert {"mse", "mae"} <= set(metrics["model"])
    train_end, val_end = round(0.7 * n), round(0.8 * n)
    assert metrics["windows"]["test"] == n - val_end - horizon + 1  # stride 1

    table = pd.read_parquet(run_dir / "forecasts.parquet")
    hour = pd.Timedelta(hours=1)
    test_start = pd.Timestamp(start, tz="UTC") + val_end * hour
    first_origin = table["origin"].min()
    assert first_origin < test_start
    assert first_origin == test_start - hour  # the first test window's target starts at val_end
    first_input = first_origin - (lookback - 1) * hour
    assert pd.Timestamp(start, tz="UTC") + train_end * hour <= first_input  # inside val span
    assert table["time"].min() == test_start

    assert f"leads (24 hours) of {', '.join(columns)}, in z-scores:" in proc.stdout
    header = next(line for line in proc.stdout.splitlines() if "forecaster" in line)
    assert "MSE" in header.split() and "RMSE" not in header.split()
    assert header.split()[-1] == "z-scores"


def test_stride_spaces_test_windows_only(panel):
    dense = prepared.prepare(panel, 24, 6, ["a"], (0.6, 0.2, 0.2))
    sparse = prepared.prepare(panel, 24, 6, ["a"], (0.6, 0.2, 0.2), stride=5)
    np.testing.assert_array_equal(dense.indices["train"], sparse.indices["train"])
    np.testing.assert_array_equal(dense.indices["val"], sparse.indices["val"])
    starts = sparse.indices["test"][sparse.indices["test"][:, 0] == 0, 1]
    assert set(np.diff(starts)) == {5}
    assert set(starts) <= set(dense.indices["test"][dense.indices["test"][:, 0] == 0, 1])


@pytest.mark.parametrize(("loss", "label"), [("mae", "MAE"), ("pinball", "pinball")])
def test_learning_curves_name_the_training_loss(loss, label):
    from forecast.report import plots

    nan = np.nan
    history = pd.DataFrame({"epoch": [0, 0, 1, 1], "train/loss_epoch": [0.4, nan, 0.3, nan],
                            "val/loss": [nan, 0.5, nan, 0.45]})
    fig = plots.learning_curves(history, loss)
    ax = fig.axes[0]
    assert ax.get_ylabel() == f"{label} (scaled targets)"
    curves = [line for line in ax.lines if line.get_label() in ("train", "validation")]
    assert [list(line.get_ydata()) for line in curves] == [[0.4, 0.3], [0.5, 0.45]]
