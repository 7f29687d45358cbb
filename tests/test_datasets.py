"""Sources -> long DataFrame [series, time, *features]."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import load_data

from forecast.data import sources
from forecast.data.panel import to_panel

NYC_COLUMNS = ["series", "time", "temp", "dewp", "humid", "wind_speed", "precip", "pressure",
               "visib", "wind_dir_sin", "wind_dir_cos"]
GUST_TIME = pd.Timestamp("2013-02-12 08:00", tz="UTC")  # EWR reported 1048.36 mph


@pytest.fixture(scope="module")
def nyc():
    return load_data("nyc_weather")


def test_nyc_weather_series_and_features(nyc):
    assert list(nyc.columns) == NYC_COLUMNS
    assert sorted(nyc["series"].unique()) == ["EWR", "JFK", "LGA"]
    assert str(nyc["time"].dt.tz) == "UTC"
    assert nyc["time"].dt.year.eq(2013).all()
    assert all(pd.api.types.is_float_dtype(nyc[c]) for c in NYC_COLUMNS[2:])
    for name, group in nyc.groupby("series"):  # sorted by series, then time
        assert group["time"].is_monotonic_increasing, name
    assert list(nyc["series"]) == sorted(nyc["series"])
    norm = (nyc["wind_dir_sin"] ** 2 + nyc["wind_dir_cos"] ** 2).dropna()
    assert len(norm) > 20000
    np.testing.assert_allclose(norm, 1.0, rtol=1e-9)  # degrees -> a unit vector


def test_nyc_weather_drops_the_implausible_wind_speed(nyc):
    raw = sources.load_nyc_weather()
    at = (raw["series"] == "EWR") & (raw["time"] == GUST_TIME)
    assert raw.loc[at, "wind_speed"].iloc[0] == pytest.approx(1048.36, abs=0.01)  # in the source

    row = nyc[(nyc["series"] == "EWR") & (nyc["time"] == GUST_TIME)]
    assert len(row) == 1
    assert np.isnan(row["wind_speed"].iloc[0])
    assert np.isfinite(row["temp"].iloc[0])  # only the bad value goes, not the row
    assert nyc["wind_speed"].max() <= 150
    assert nyc["wind_speed"].isna().sum() == raw["wind_speed"].isna().sum() + 1


def test_nyc_weather_feature_subset_and_panel(nyc):
    df = load_data("nyc_weather", features=["temp", "humid"])
    assert list(df.columns) == ["series", "time", "temp", "humid"]
    p = to_panel(df, "h")
    assert list(p.ids) == ["EWR", "JFK", "LGA"] and p.features == ["temp", "humid"]
    assert p.values.shape == (3, p.n_steps, 2) and p.n_steps > 8000


def _write_csv(path):
    text = (
        "station,timestamp,temp,rh,note\n"
        "B,2022-01-01 01:00,11.0,-9999,x\n"
        "A,2022-01-01 00:00,1.0,50,y\n"
        "A,2022-01-01 01:00,2.0,51,z\n"
        "B,2022-01-01 00:00,10.0,60,w\n"
        "A,2022-01-01 02:00,3.0,52,v\n"
        "B,2022-01-01 02:00,12.0,62,u\n"
    )
    path.write_text(text)
    return path


def test_csv_loads_into_a_tidy_frame(tmp_path):
    path = _write_csv(tmp_path / "obs.csv")
    df = load_data("csv", path=str(path), series_col="station", time_col="timestamp",
                       na_values=[-9999])
    assert list(df.columns) == ["series", "time", "temp", "rh"]  # `note` is not numeric
    assert list(df["series"]) == ["A", "A", "A", "B", "B", "B"]
    start = pd.Timestamp("2022-01-01", tz="UTC")
    assert list(df["time"]) == [start + pd.Timedelta(hours=h) for h in (0, 1, 2, 0, 1, 2)]
    assert list(df["temp"]) == [1.0, 2.0, 3.0, 10.0, 11.0, 12.0]
    assert np.isnan(df.loc[4, "rh"]) and df.loc[5, "rh"] == 62.0  # -9999 read as missing

    p = to_panel(df, freq=None)
    assert p.freq == "h" and p.values.shape == (2, 3, 2)
    np.testing.assert_array_equal(p.values[:, :, 0], [[1, 2, 3], [10, 11, 12]])
    assert not p.observed[1, 1, 1] and p.observed.sum() == 11


def test_csv_features_and_single_series(tmp_path):
    path = _write_csv(tmp_path / "obs.csv")
    df = load_data("csv", path=str(path), series_col=None, time_col="timestamp",
                       features=["temp"])
    assert list(df.columns) == ["series", "time", "temp"]
    assert df["series"].nunique() == 1


def test_csv_missing_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_data("csv", path=str(missing))
    with pytest.raises(ValueError, match="data.path"):
        load_data("csv")


def test_csv_missing_column_names_the_column_and_file(tmp_path):
    path = _write_csv(tmp_path / "obs.csv")
    with pytest.raises(ValueError, match="pressure") as err:
        load_data("csv", path=str(path), series_col="station", time_col="timestamp",
                      features=["temp", "pressure"])
    assert "obs.csv" in str(err.value)
    with pytest.raises(ValueError, match="'series'"):  # default series_col is absent here
        load_data("csv", path=str(path), time_col="timestamp")


def test_csv_bad_times_and_empty_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("series,time,temp\nA,2022-01-01 00:00,1\nA,not a time,2\n")
    with pytest.raises(ValueError, match="not a time"):
        load_data("csv", path=str(bad))
    empty = tmp_path / "empty.csv"
    empty.write_text("series,time,temp\n")
    with pytest.raises(ValueError, match="no rows"):
        load_data("csv", path=str(empty))


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        load_data("weather_on_mars")
