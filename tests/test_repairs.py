"""forecast.data.repair_log: a repair is logged as before and carried as a record; `collect` lists
the repairs of a block at any logger level, in memory and in data.memmap's streamed reading
alike."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from conftest import load_data, repairs_of

from forecast.data import largepanel, loader, repair_log

log = logging.getLogger("forecast.test_repairs")


def test_note_logs_the_message_with_the_repair_attached(caplog):
    caplog.set_level(logging.INFO, logger="forecast")
    made = repair_log.note(log, logging.INFO, "sentinels", {"temp": np.int64(2)}, "%s: %s", "f.csv",
                        "two", source="f.csv")
    (record,) = caplog.records
    assert record.getMessage() == "f.csv: two" and record.repair is made
    assert made == repair_log.Repair("sentinels", "f.csv", None, {"temp": 2})
    assert type(made.count["temp"]) is int  # JSON-safe


def test_collect_lists_info_repairs_even_when_the_logger_drops_them(caplog):
    logger = logging.getLogger("forecast")
    level = logger.level
    logger.setLevel(logging.WARNING)  # as when a run is started from Python
    try:
        with repair_log.collect() as outer:
            repair_log.note(log, logging.INFO, "out_of_order", np.int64(3), "sorted")
            with repair_log.collect() as inner:
                repair_log.note(log, logging.INFO, "one_hot", 2, "encoded", column="sky")
                repair_log.note(log, logging.INFO, "compass_points", 0, "degrees only")
    finally:
        logger.setLevel(level)
    assert not caplog.records
    assert repairs_of(inner) == {("one_hot", "sky"): 2}  # a count of 0 is not listed
    assert repairs_of(outer) == {"out_of_order": 3, ("one_hot", "sky"): 2}
    assert json.loads(json.dumps(repair_log.as_json(outer)))[0] == {
        "kind": "out_of_order", "source": None, "column": None, "count": 3}
    repair_log.note(log, logging.INFO, "duplicates", 1, "outside")  # no collection open: fine
    assert len(outer) == 2


def test_every_run_lists_its_naive_times_though_the_warning_is_said_once(tmp_path):
    path = tmp_path / "obs.csv"
    pd.DataFrame({"time": pd.date_range("2022-01-01", periods=3, freq="h").strftime(
        "%Y-%m-%d %H:%M"), "temp": [1.0, 2.0, 3.0]}).to_csv(path, index=False)
    for _ in range(2):
        with repair_log.collect() as repaired:
            load_data("csv", path=str(path), series_col=None)
            load_data("csv", path=str(path), series_col=None)  # the same file again
        assert [r for r in repaired if r.kind == "naive_time"] == [
            repair_log.Repair("naive_time", str(path), "time", 1)]


def test_data_memmap_lists_its_repairs_when_built_and_when_reused(tmp_path):
    n = 30
    frame = pd.DataFrame({"station": "a", "time": pd.date_range("2022-01-01", periods=n, freq="h",
                                                                tz="UTC"),
                          "temp": np.arange(n, dtype=float), "wind_dir": np.full(n, 90.0)})
    frame.loc[[3, 4], "temp"] = -9999.0
    frame.loc[5, "wind_dir"] = 400.0
    frame.to_parquet(tmp_path / "obs.parquet")
    data = {"name": "csv", "path": str(tmp_path / "obs.parquet"), "series_col": "station",
            "time_col": "time", "features": None, "freq": None, "tz": "UTC",
            "na_values": [-9999], "duplicates": "mean", "time_parts": None, "direction_cols": [],
            "trace_cols": [], "max_categories": 10, "thousands": None, "valid_range": {},
            "memmap": str(tmp_path / "maps")}
    listed = []
    for _ in range(2):  # built, then found in data.memmap
        with repair_log.collect() as repaired:
            largepanel.load(loader.as_config(data), ["temp"], 10)
        listed.append(repairs_of(repaired))
    assert listed[0] == listed[1]
    assert listed[0]["sentinels", "temp"] == 2 and listed[0]["bad_directions", "wind_dir"] == 1
    assert listed[0]["gaps"] == {"temp": 2, "wind_dir_sin": 1, "wind_dir_cos": 1}
