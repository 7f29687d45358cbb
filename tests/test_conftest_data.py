"""The shared synthetic data of tests/conftest.py: what `weather_frame` promises its callers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import weather_frame


def test_weather_frame_is_a_long_frame_of_regular_steps():
    df = weather_frame(3, 50, ("temp", "humid"))
    assert list(df.columns) == ["series", "time", "temp", "humid"]
    assert len(df) == 3 * 50 and df.index.equals(pd.RangeIndex(150))
    assert list(df["series"].unique()) == ["S0", "S1", "S2"]
    for _, one in df.groupby("series"):
        steps = one["time"].diff().dropna()
        assert (steps == pd.Timedelta(hours=1)).all()
        assert one["time"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert df[["temp", "humid"]].notna().all().all()


def test_weather_frame_follows_its_recipe():
    df = weather_frame(2, 48, {"temp": (10.0, 5.0), "dewp": (2.0, 1.0)}, noise=0.0)
    hours = np.arange(48)
    s1 = df[df["series"] == "S1"]
    np.testing.assert_allclose(s1["temp"], 10 + 5 * np.sin(2 * np.pi * (hours + 5) / 24))
    np.testing.assert_allclose(s1["dewp"], 2 + np.sin(2 * np.pi * (hours + 5 + 3) / 24))
    plain = weather_frame(1, 24, ("a", "b"), noise=0.0)
    assert plain["b"].mean() == pytest.approx(10.0)  # a sequence: levels 10 j, amplitudes j + 1
    assert plain["b"].max() - plain["b"].min() == pytest.approx(4.0, abs=0.1)
    noisy = weather_frame(1, 2000, noise=0.5)
    residual = noisy["temp"] - weather_frame(1, 2000, noise=0.0)["temp"]
    assert residual.std() == pytest.approx(0.5, rel=0.05)


def test_weather_frame_is_fixed_by_its_seed():
    pd.testing.assert_frame_equal(weather_frame(seed=3), weather_frame(seed=3))
    assert not weather_frame(seed=3)["temp"].equals(weather_frame(seed=4)["temp"])


def test_weather_frame_names_zones_and_one_series():
    df = weather_frame(2, 10, names=["st_b", "st_a"], series_col="station", freq="15min",
                       start="2022-03-01 06:00", tz="Europe/Berlin")
    assert list(df["station"].unique()) == ["st_b", "st_a"]  # in the order given
    assert str(df["time"].dt.tz) == "Europe/Berlin"
    assert (df["time"].diff().dropna().iloc[:9] == pd.Timedelta(minutes=15)).all()
    one = weather_frame(1, 10, ("OT",), series_col=None, time_col="date", tz=None)
    assert list(one.columns) == ["date", "OT"] and one["date"].dt.tz is None
    with pytest.raises(ValueError, match="series_col=None"):
        weather_frame(2, 10, series_col=None)
    with pytest.raises(ValueError, match="n_series=3"):
        weather_frame(3, 10, names=["a", "b"])
