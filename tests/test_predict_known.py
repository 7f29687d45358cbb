"""Forecasting ahead with known inputs and static covariates: the known values of the horizon
come from the rows past the last observed target and from future=, missing ones are named, and
a run without known inputs refuses both; fit's known= and static= arguments.

One run with a known column `fc` (the target plus a little noise) and a static table, and one
without covariates, are trained once for the module with the fast trainer.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import weather_frame

import forecast
from forecast.data.panel import Scaler, calendar
from forecast.runs import predict, predict_data, predict_known

BIN = Path(sys.executable).parent
LOOKBACK, HORIZON, N_STEPS = 24, 6, 600
FAST = ["trainer=fast", "threads=1", "model.hidden_size=8"]
STATIONS = pd.DataFrame({"series": ["S0", "S1", "S2"], "elevation": [10.0, 200.0, 50.0],
                         "coast": [1.0, 0.0, 1.0]})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """[series, time, y, fc]: fc is y plus noise, as a forecast of y known ahead would be."""
    df = weather_frame(3, N_STEPS, ("y",))
    df["fc"] = df["y"] + np.random.default_rng(1).normal(0, 0.1, len(df))
    return df


@pytest.fixture(scope="module")
def known_run(tmp_path_factory, frame) -> forecast.Run:
    # the network alone: a short fit's blend can leave the forecast to ridge, whose penalty
    # all but drops three series' constants; the test is that the network reads them
    return forecast.fit(frame, targets=["y"], lookback=LOOKBACK, horizon=HORIZON, known=["fc"],
                        static=STATIONS, overrides=[*FAST, "model.backbone=none"],
                        run_dir=tmp_path_factory.mktemp("known") / "run")


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, frame) -> forecast.Run:
    return forecast.fit(frame, targets=["y"], lookback=LOOKBACK, horizon=HORIZON, overrides=FAST,
                        run_dir=tmp_path_factory.mktemp("plain") / "run")


def _split(frame: pd.DataFrame, steps: int = HORIZON) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history: all but the last `steps` times, future: those times' [series, time, fc])."""
    cut = frame["time"].max() - pd.Timedelta(hours=steps)
    return frame[frame["time"] <= cut], frame.loc[frame["time"] > cut, ["series", "time", "fc"]]


def _with_future_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with y removed from its last H times: rows of the future, fc alone."""
    history, future = _split(frame)
    return pd.concat([history, future]).reset_index(drop=True)


def _values(table: pd.DataFrame) -> np.ndarray:
    return table.sort_values(["series", "time"])["forecast"].to_numpy()


# (a) where the known values come from ----------------------------------------------------------

@pytest.mark.slow
def test_rows_past_the_last_target_are_read_as_the_known_future(known_run, frame):
    data = _with_future_rows(frame)
    table = known_run.predict(data)
    future = data.loc[data["y"].isna(), "time"]
    want = list(pd.date_range(future.min(), periods=HORIZON, freq="h"))
    assert future.min() == frame["time"].max() - pd.Timedelta(hours=HORIZON - 1)
    for _, one in table.groupby("series"):
        assert list(one["time"]) == want
    assert sorted(table["series"].unique()) == ["S0", "S1", "S2"]
    assert len(table) == 3 * HORIZON


@pytest.mark.slow
def test_future_as_a_frame_a_polars_frame_and_a_file_give_the_same_forecast(known_run, frame,
                                                                           tmp_path):
    history, future = _split(frame)
    in_rows = known_run.predict(_with_future_rows(frame))
    as_frame = known_run.predict(history, future=future)
    pd.testing.assert_frame_equal(as_frame, in_rows)
    polars = pytest.importorskip("polars")
    pd.testing.assert_frame_equal(known_run.predict(history, future=polars.from_pandas(future)),
                                  in_rows)

    history.to_parquet(tmp_path / "history.parquet", index=False)
    future.to_csv(tmp_path / "future.csv", index=False)
    out = tmp_path / "out"
    proc = subprocess.run([str(BIN / "forecast-predict"), f"run={known_run.dir}",
                           f"data.path={tmp_path / 'history.parquet'}",
                           f"future={tmp_path / 'future.csv'}", f"hydra.run.dir={out}"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from_cli = pd.read_parquet(out / "forecast.parquet")
    assert list(from_cli["time"]) == list(in_rows["time"])
    np.testing.assert_allclose(from_cli["forecast"], in_rows["forecast"], rtol=1e-5)


@pytest.mark.slow
def test_the_known_values_are_used_and_rows_past_the_horizon_are_not(known_run, frame):
    history, future = _split(frame)
    base = _values(known_run.predict(history, future=future))
    moved = _values(known_run.predict(history, future=future.assign(fc=future["fc"] + 5.0)))
    assert np.abs(moved - base).max() > 1e-3

    beyond = future.assign(time=future["time"] + pd.Timedelta(hours=HORIZON))
    longer = pd.concat([future, beyond])
    same = _values(known_run.predict(history, future=longer))
    other = _values(known_run.predict(history, future=longer.assign(
        fc=np.where(longer["time"].isin(beyond["time"]), 100.0, longer["fc"]))))
    np.testing.assert_array_equal(same, base)
    np.testing.assert_array_equal(other, base)


@pytest.mark.slow
def test_future_wins_over_the_datas_rows_and_says_so(known_run, frame, caplog):
    history, future = _split(frame)
    stale = _with_future_rows(frame)
    stale.loc[stale["y"].isna(), "fc"] += 3.0
    with caplog.at_level(logging.WARNING, logger="forecast.runs.predict_known"):
        table = known_run.predict(stale, future=future)
    assert f"replaces {3 * HORIZON} known value(s)" in caplog.text
    pd.testing.assert_frame_equal(table, known_run.predict(history, future=future))


@pytest.mark.slow
def test_the_forecast_is_the_nets_on_the_window_the_known_values_and_the_static(known_run,
                                                                                frame):
    """Rebuilt by hand from data.json: the scaled fc of the horizon then its calendar, and the
    stations' values standardised across the series."""
    history, future = _split(frame)
    trained = predict.load_run(known_run.dir)
    description = trained.description
    assert description["known"] == ["fc", "hour_sin", "hour_cos", "doy_sin", "doy_cos"]
    scaler = Scaler.from_dict(description["scaler"])
    times = pd.DatetimeIndex(sorted(future["time"].unique()))
    fc = future.pivot(index="series", columns="time", values="fc").to_numpy()[:, :, None]
    cal, _ = calendar(times, ["hour", "day_of_year"])
    known = np.concatenate([scaler.transform(fc, [description["features"].index("fc")]),
                            np.broadcast_to(cal, (3, *cal.shape))], axis=2)
    raw = STATIONS[["elevation", "coast"]].to_numpy()
    static = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    x = predict.last_window(predict_data.build_panel(
        history[["series", "time", "y", "fc"]], description, "test"), description,
        ["hour", "day_of_year"])
    with torch.no_grad():
        def net(s):
            out = trained.module(torch.from_numpy(x), torch.arange(3),
                                 torch.tensor(known, dtype=torch.float32),
                                 torch.tensor(s, dtype=torch.float32)).numpy()
            return scaler.inverse(out, [0])[..., 0].reshape(-1)
        want, other = net(static), net(-static)
    got = _values(known_run.predict(history, future=future))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(other - want).max() > 1e-4  # the static values matter to this net


# (b) static covariates from fit(static=DataFrame) ----------------------------------------------

@pytest.mark.slow
def test_a_static_frame_is_written_to_the_run_and_its_values_are_read(known_run, frame):
    saved = pd.read_parquet(known_run.dir / "static.parquet")
    pd.testing.assert_frame_equal(saved, STATIONS)
    assert known_run.config["data"]["static_path"] == str((known_run.dir /
                                                           "static.parquet").resolve())
    description = json.loads((known_run.dir / "checkpoints" / "data.json").read_text())
    assert description["static"]["names"] == ["elevation", "coast"]
    assert description["static"]["values"]["S1"] == [200.0, 0.0]

    history, future = _split(frame)
    trained = predict.load_run(known_run.dir)
    path = known_run.dir.parent / "history.parquet"
    history.to_parquet(path, index=False)
    future_path = known_run.dir.parent / "future.parquet"
    future.to_parquet(future_path, index=False)
    base, _ = predict.forecast_run(trained, {"path": str(path)}, future=str(future_path))
    trained.description["static"]["values"]["S1"] = [10.0, 1.0]  # S1 as if on the coast, low
    moved, _ = predict.forecast_run(trained, {"path": str(path)}, future=str(future_path))
    changed = (moved["forecast"] - base["forecast"]).abs().groupby(moved["series"]).max()
    assert changed["S1"] > 1e-4 and changed["S0"] == 0 and changed["S2"] == 0


@pytest.mark.slow
def test_static_columns_of_the_frame_are_not_needed_at_forecast_time(frame, tmp_path):
    stations = STATIONS.set_index("series")
    data = frame.assign(elevation=frame["series"].map(stations["elevation"]))
    run = forecast.fit(data, targets=["y"], lookback=LOOKBACK, horizon=HORIZON, known="fc",
                       static=["elevation"], overrides=FAST, run_dir=tmp_path / "run")
    description = json.loads((run.dir / "checkpoints" / "data.json").read_text())
    assert description["features"] == ["y", "fc"]
    assert description["static"]["values"] == {"S0": [10.0], "S1": [200.0], "S2": [50.0]}
    history, future = _split(data)
    with_column = run.predict(history, future=future)
    pd.testing.assert_frame_equal(run.predict(history.drop(columns="elevation"), future=future),
                                  with_column)


# (c) what is refused ---------------------------------------------------------------------------

@pytest.mark.slow
def test_a_missing_future_value_is_named_in_one_error(known_run, frame):
    history, future = _split(frame)
    gone = future.iloc[[4]]
    rest = future.drop(index=gone.index)
    with pytest.raises(ValueError) as err:
        known_run.predict(history, future=rest)
    message = str(err.value)
    assert f"fc at {gone['time'].iloc[0]} (series {gone['series'].iloc[0]})" in message
    assert "future (the DataFrame)" in message and "future.parquet" not in message
    assert message.count(" at ") == 1  # the one missing time, nothing else
    assert "future=<file>" in message

    with pytest.raises(ValueError, match="fc at ") as err:  # the run's own data: no future
        known_run.predict()
    last = frame["time"].max()
    assert all(f"{last + pd.Timedelta(hours=k)} (every series)" in str(err.value)
               for k in range(1, HORIZON + 1))


@pytest.mark.slow
def test_future_rows_of_an_unknown_series_are_refused(known_run, frame):
    history, future = _split(frame)
    extra = future.assign(series="S9")
    with pytest.raises(ValueError, match=r"future \(the DataFrame\): series \['S9'\]"):
        known_run.predict(history, future=pd.concat([future, extra]))


@pytest.mark.slow
def test_a_run_without_known_inputs_refuses_future_rows_and_future(plain_run, frame):
    history, future = _split(frame)
    with pytest.raises(ValueError, match=r"6 time step\(s\) after the last observed") as err:
        plain_run.predict(_with_future_rows(frame))
    assert "trained without data.known" in str(err.value)
    with pytest.raises(ValueError, match="reads no known inputs") as err:
        plain_run.predict(history, future=future)
    assert "future (the DataFrame)" in str(err.value)
    table = plain_run.predict(history)  # unchanged otherwise
    assert table["time"].min() == history["time"].max() + pd.Timedelta(hours=1)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"known": ["y"]}, r"known: \['y'\] are also targets"),
    ({"known": ["nope"]}, r"known: no column \['nope'\]"),
    ({"known": [3]}, r"known=\[3\]: give a column name"),
    ({"static": ["nope"]}, r"static: no column \['nope'\]"),
    ({"static": ["fc"], "known": ["fc"]}, r"static: \['fc'\] are also known"),
    ({"static": STATIONS.rename(columns={"series": "station"})}, r"static: .*no column 'series'"),
    ({"static": pd.concat([STATIONS, STATIONS])}, r"static: series .* more than one row"),
    ({"static": "fc"}, r"static: no file 'fc'.*static=\['fc'\]"),
    ({"overrides": ["data.known=[fc]"]}, r"sets fit's argument data.known; pass known="),
])
def test_fit_refuses_bad_known_and_static_by_name(frame, tmp_path, kwargs, match):
    args = {"targets": ["y"], "lookback": LOOKBACK, "horizon": HORIZON, "overrides": FAST,
            "run_dir": tmp_path / "run", **kwargs}
    with pytest.raises(ValueError, match=match):
        forecast.fit(frame, **args)
    assert not (tmp_path / "run").exists()


def test_known_inputs_are_refused_in_another_calendar():
    description = {"known": ["fc", "hour_sin", "hour_cos"], "features": ["y", "fc"],
                   "scaler": {"mean": [0.0, 1.0], "scale": [1.0, 2.0], "features": ["y", "fc"]}}
    times = pd.date_range("2024-01-01", periods=2, freq="h", tz="UTC")
    values = np.full((1, 2, 1), 3.0, np.float32)
    known = predict_known.known_inputs(values, times, description, ["hour"])
    np.testing.assert_allclose(known[0, :, 0], [1.0, 1.0])  # (3 - 1) / 2
    np.testing.assert_allclose(known[0, :, 1:], calendar(times, ["hour"])[0])
    with pytest.raises(ValueError, match="keep the run's data.calendar"):
        predict_known.known_inputs(values, times, description, ["hour", "day_of_year"])


def test_static_values_of_a_series_the_run_never_saw():
    description = {"static": {"names": ["elevation"], "mean": [100.0], "scale": [50.0],
                              "values": {"A": [150.0], "B": [50.0]}}}
    np.testing.assert_allclose(predict_known.static_inputs(description, ["B", "A"]),
                               [[-1.0], [1.0]])
    with pytest.raises(ValueError, match=r"series \['C'\] have no static values"):
        predict_known.static_inputs(description, ["A", "C"])
    assert predict_known.static_inputs({}, ["A"]) is None
