"""Metrics on small arrays computed by hand, through `Totals`, the running sums a run scores its
test windows with."""

from __future__ import annotations

import math

import numpy as np
import pytest

from forecast.evaluation import metrics as mt

# two windows (series 0 and 1), two leads, one target; errors are +1, 0, -2, 0
ACTUAL = np.array([[[1.0], [2.0]], [[3.0], [4.0]]])
FORECAST = np.array([[[2.0], [2.0]], [[1.0], [4.0]]])
SERIES = np.array([0, 1])


def _scores(actual, forecast, series=SERIES, ids=("A", "B"), targets=("t",), scale=None):
    """Every window scored at once: overall, by_lead, by_series and by_target."""
    _, horizon, n_targets = actual.shape
    totals = mt.Totals(len(ids), horizon, n_targets, scale)
    return totals.add(actual, forecast, np.asarray(series)).summary(list(ids), list(targets))


def test_mae_and_rmse():
    out = _scores(ACTUAL, FORECAST)
    assert out["mae"] == pytest.approx(0.75)
    assert out["rmse"] == pytest.approx(math.sqrt(1.25))
    assert out["mse"] == pytest.approx(1.25)
    np.testing.assert_allclose(out["by_lead"]["mae"], [1.5, 0.0])
    np.testing.assert_allclose(out["by_lead"]["rmse"], [math.sqrt(2.5), 0.0])


def _smape(actual, forecast) -> float:
    one = lambda a: np.asarray(a, dtype=float).reshape(1, -1, 1)  # noqa: E731
    return _scores(one(actual), one(forecast), series=[0], ids=("A",))["smape"]


def test_smape():
    # terms 2|f-a|/(|a|+|f|): 2/3, 0, 4/4, 0
    assert _scores(ACTUAL, FORECAST)["smape"] == pytest.approx(100 * (2 / 3 + 1) / 4)
    assert _smape([0.0, 1.0], [0.0, 1.0]) == 0.0  # 0/0 counts as 0
    assert _smape([0.0], [5.0]) == pytest.approx(200.0)
    assert _smape([-2.0], [2.0]) == pytest.approx(200.0)


def test_seasonal_scale_skips_nan():
    history = np.array([[1.0, 3.0, 2.0, 5.0], [0.0, 1.0, np.nan, 4.0]])[..., None]
    # season 1: |3-1|, |2-3|, |5-2| -> 2;  |1-0| (others NaN) -> 1
    np.testing.assert_allclose(mt.seasonal_scale(history, 1), [[2.0], [1.0]])
    # season 2: |2-1|, |5-3| -> 1.5;  |4-1| -> 3
    np.testing.assert_allclose(mt.seasonal_scale(history, 2), [[1.5], [3.0]])


def test_mase_divides_by_each_series_scale():
    scale = np.array([[0.5], [2.0]])
    # |errors| / scale of their series: 1/0.5, 0/0.5, 2/2, 0/2 -> mean 0.75
    assert _scores(ACTUAL, FORECAST, scale=scale)["mase"] == pytest.approx(0.75)
    swapped = _scores(ACTUAL, FORECAST, series=[1, 0], scale=scale)["mase"]
    assert swapped == pytest.approx((1 / 2 + 2 / 0.5) / 4)


def test_totals_mse_is_the_ratio_skill_compares():
    reference = np.zeros_like(ACTUAL)  # MSE (1 + 4 + 9 + 16) / 4 = 7.5
    mse = lambda f: mt.Totals(2, 2, 1).add(ACTUAL, f, SERIES).mse()  # noqa: E731
    assert mse(FORECAST) == pytest.approx(1.25)
    assert mse(reference) == pytest.approx(7.5)
    assert mse(ACTUAL) == 0.0


def test_blocks_add_up_to_every_window_at_once():
    rng = np.random.default_rng(1)
    actual = rng.normal(size=(9, 3, 2))
    forecast = actual + rng.normal(size=(9, 3, 2))
    series = np.array([0, 0, 1, 1, 1, 2, 2, 0, 2])  # blocks of one series and of several
    scale = rng.uniform(0.5, 2.0, size=(3, 2))
    whole = _scores(actual, forecast, series, ("A", "B", "C"), ("x", "y"), scale)
    totals = mt.Totals(3, 3, 2, scale)
    for rows in (slice(0, 2), slice(2, 5), slice(5, 9)):
        totals.add(actual[rows], forecast[rows], series[rows])
    blocked = totals.summary(["A", "B", "C"], ["x", "y"])
    assert blocked.keys() == whole.keys()
    for key in ("mae", "mse", "rmse", "smape", "mase"):
        assert blocked[key] == pytest.approx(whole[key])
        np.testing.assert_allclose(blocked["by_lead"][key], whole["by_lead"][key])
    for group in ("by_series", "by_target"):
        assert blocked[group].keys() == whole[group].keys()
        for name, scores in whole[group].items():
            assert blocked[group][name] == pytest.approx(scores), (group, name)


def test_summary_layout_and_values():
    rng = np.random.default_rng(0)
    k, h, nt = 7, 5, 2
    actual = rng.normal(size=(k, h, nt))
    forecast = actual + rng.normal(size=(k, h, nt))
    series = np.array([0, 0, 1, 1, 1, 2, 2])
    ids = np.array(["EWR", "JFK", "LGA"])
    scale = np.array([[1.0, 2.0], [0.5, 1.0], [2.0, 4.0]])
    out = _scores(actual, forecast, series, ids, ["temp", "dewp"], scale)

    assert out["mae"] == pytest.approx(np.mean(np.abs(forecast - actual)))
    assert set(out["by_lead"]) == {"mae", "mse", "rmse", "smape", "mase"}
    assert all(len(v) == h for v in out["by_lead"].values())
    np.testing.assert_allclose(out["by_lead"]["mae"],
                               np.abs(forecast - actual).mean(axis=(0, 2)))
    assert list(out["by_series"]) == ["EWR", "JFK", "LGA"]
    rows = series == 1
    assert out["by_series"]["JFK"]["mae"] == pytest.approx(
        np.mean(np.abs(forecast[rows] - actual[rows])))
    assert out["by_series"]["JFK"]["mase"] == pytest.approx(
        np.mean(np.abs(forecast[rows] - actual[rows]) / scale[1]))
    assert list(out["by_target"]) == ["temp", "dewp"]
    assert out["by_target"]["dewp"]["rmse"] == pytest.approx(
        np.sqrt(np.mean((forecast[..., 1] - actual[..., 1]) ** 2)))
    assert out["by_target"]["dewp"]["mase"] == pytest.approx(
        np.mean(np.abs(forecast[..., 1] - actual[..., 1]) / scale[series, 1][:, None]))
    for value in (out["mae"], out["rmse"], out["smape"], out["mase"]):
        assert isinstance(value, float)


def test_summary_without_scale_and_absent_series():
    out = _scores(ACTUAL, FORECAST, series=[0, 0])
    assert "mase" not in out
    assert list(out["by_series"]) == ["A"]  # a series with no window is left out
    assert out["by_lead"]["mae"] == [pytest.approx(1.5), pytest.approx(0.0)]


def test_coverage_leaves_out_missing_actuals():
    actual = np.array([[1.0, np.nan], [3.0, 4.0]])
    low, high = np.zeros((2, 2)), np.full((2, 2), 3.5)
    # observed: 1 and 3 inside, 4 outside; the NaN is neither
    assert mt.coverage(actual, low, high) == pytest.approx(2 / 3)
    np.testing.assert_allclose(mt.coverage(actual, low, high, axis=0), [1.0, 0.0])
    np.testing.assert_allclose(mt.coverage(actual, low, high, axis=1), [1.0, 0.5])
