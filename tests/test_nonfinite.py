"""Infinite and out-of-range numbers in a user's file are missing values, counted per column,
in training and in forecast-predict's reading alike (both read through loader.load)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import inputs_of, load_data, repairs_of

from forecast.data import prepared
from forecast.data.panel import to_panel
from forecast.evaluation import scoring


def _file(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=n, freq="h"),
                          "temp": 10 + np.sin(np.arange(n) / 4) + rng.normal(0, 0.1, n),
                          "wind": rng.normal(3, 1, n)})
    frame.loc[[5, 9], "wind"] = [np.inf, -np.inf]
    frame.loc[[20], "wind"] = 1e308  # finite in float64, inf in the float32 panel
    frame.loc[[30], "temp"] = np.inf
    frame.to_csv(tmp_path / "obs.csv", index=False)
    text = (tmp_path / "obs.csv").read_text().replace("1e+308", "1e308")
    (tmp_path / "obs.csv").write_text(text)
    return tmp_path / "obs.csv"


def test_infinite_values_are_missing_and_counted_by_column(tmp_path, caplog):
    path = _file(tmp_path)
    with caplog.at_level(logging.WARNING):
        df = load_data("csv", path=str(path), series_col=None)
    values = df[["temp", "wind"]].to_numpy()
    assert np.isfinite(values[~np.isnan(values)]).all()
    assert df["wind"].isna().sum() == 3 and df["temp"].isna().sum() == 1
    found = repairs_of(caplog)
    assert found["infinite", "wind"] == 3 and found["infinite", "temp"] == 1


def test_a_file_with_infinite_values_prepares_and_fits_the_ridge_baseline(tmp_path):
    df = load_data("csv", path=str(_file(tmp_path)), series_col=None)
    prep = prepared.prepare(to_panel(df), 24, 6, ["temp"], calendar=())
    assert np.isfinite(inputs_of(prep)).all()  # filled causally, never inf
    ridge = scoring.baseline_forecasters(prep, ["ridge"], 24)["ridge"](prep.indices["test"])
    assert np.isfinite(ridge).all()
    assert prep.dropped["train"] > 0  # the window whose target was inf is dropped, not scored


def _panel(temp: np.ndarray):
    n = len(temp)
    return to_panel(pd.DataFrame({"series": "a", "time": pd.date_range("2024-01-01", periods=n,
                                                                       freq="h", tz="UTC"),
                                  "temp": temp, "wind": np.arange(n, dtype=float) % 7}))


def test_a_constant_target_is_refused_by_name():
    temp = np.full(300, 4.0)
    temp[250:] = np.arange(50)  # varies only after the train span
    with pytest.raises(ValueError, match=r"target 'temp' is constant \(4\) over the train span"):
        prepared.prepare(_panel(temp), 24, 6, ["temp"], calendar=())
    prepared.prepare(_panel(temp), 24, 6, ["wind"], calendar=())  # another target is fine


def test_a_target_too_large_to_score_is_refused_by_name():
    temp = 1e30 * (1 + np.sin(np.arange(300) / 5))
    with pytest.raises(ValueError, match=r"target 'temp' reaches 2e\+30.*rescale the column"):
        prepared.prepare(_panel(temp), 24, 6, ["temp"], calendar=())
    prepared.prepare(_panel(temp / 1e27), 24, 6, ["temp"], calendar=())  # rescaled: accepted
