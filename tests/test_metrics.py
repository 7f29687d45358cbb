"""Metrics on small arrays computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from forecast.evaluation import metrics as mt

# two windows (series 0 and 1), two leads, one target; errors are +1, 0, -2, 0
ACTUAL = np.array([[[1.0], [2.0]], [[3.0], [4.0]]])
FORECAST = np.array([[[2.0], [2.0]], [[1.0], [4.0]]])
SERIES = np.array([0, 1])


def test_mae_and_rmse():
    assert mt.mae(ACTUAL, FORECAST) == pytest.approx(0.75)
    assert mt.rmse(ACTUAL, FORECAST) == pytest.approx(math.sqrt(1.25))
    assert mt.mse(ACTUAL, FORECAST) == pytest.approx(1.25)
    np.testing.assert_allclose(mt.mae(ACTUAL, FORECAST, axis=(0, 2)), [1.5, 0.0])
    np.testing.assert_allclose(mt.rmse(ACTUAL, FORECAST, axis=(0, 2)), [math.sqrt(2.5), 0.0])


def test_smape():
    # terms 2|f-a|/(|a|+|f|): 2/3, 0, 4/4, 0
    assert mt.smape(ACTUAL, FORECAST) == pytest.approx(100 * (2 / 3 + 1) / 4)
    assert mt.smape(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0.0  # 0/0 counts as 0
    assert mt.smape(np.array([0.0]), np.array([5.0])) == pytest.approx(200.0)
    assert mt.smape(np.array([-2.0]), np.array([2.0])) == pytest.approx(200.0)


def test_seasonal_scale_skips_nan():
    history = np.array([[1.0, 3.0, 2.0, 5.0], [0.0, 1.0, np.nan, 4.0]])[..., None]
    # season 1: |3-1|, |2-3|, |5-2| -> 2;  |1-0| (others NaN) -> 1
    np.testing.assert_allclose(mt.seasonal_scale(history, 1), [[2.0], [1.0]])
    # season 2: |2-1|, |5-3| -> 1.5;  |4-1| -> 3
    np.testing.assert_allclose(mt.seasonal_scale(history, 2), [[1.5], [3.0]])


def test_mase_divides_by_each_series_scale():
    scale = np.array([[0.5], [2.0]])
    # |errors| / scale of their series: 1/0.5, 0/0.5, 2/2, 0/2 -> mean 0.75
    assert mt.mase(ACTUAL, FORECAST, SERIES, scale) == pytest.approx(0.75)
    swapped = mt.mase(ACTUAL, FORECAST, np.array([1, 0]), scale)
    assert swapped == pytest.approx((1 / 2 + 2 / 0.5) / 4)


def test_skill():
    reference = np.zeros_like(ACTUAL)  # MSE (1 + 4 + 9 + 16) / 4 = 7.5
    assert mt.skill(ACTUAL, FORECAST, reference) == pytest.approx(1 - 1.25 / 7.5)
    assert mt.skill(ACTUAL, ACTUAL, reference) == pytest.approx(1.0)
    assert mt.skill(ACTUAL, reference, reference) == pytest.approx(0.0)
    assert mt.skill(ACTUAL, FORECAST, FORECAST) == pytest.approx(0.0)


def test_summary_layout_and_values():
    rng = np.random.default_rng(0)
    k, h, nt = 7, 5, 2
    actual = rng.normal(size=(k, h, nt))
    forecast = actual + rng.normal(size=(k, h, nt))
    series = np.array([0, 0, 1, 1, 1, 2, 2])
    ids = np.array(["EWR", "JFK", "LGA"])
    scale = np.array([[1.0, 2.0], [0.5, 1.0], [2.0, 4.0]])
    out = mt.summary(actual, forecast, series, ids, ["temp", "dewp"], scale)

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
    out = mt.summary(ACTUAL, FORECAST, np.array([0, 0]), ["A", "B"], ["t"])
    assert "mase" not in out
    assert list(out["by_series"]) == ["A"]  # a series with no window is left out
    assert out["by_lead"]["mae"] == [pytest.approx(1.5), pytest.approx(0.0)]
