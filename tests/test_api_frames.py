"""The Python API where its user is: fit shows the score table and verdict on stdout unless the
caller's logging takes them (once either way, and in train.log too); polars frames, and the
long format of neuralforecast and statsforecast (unique_id, ds, y), are read as they are."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout

import pandas as pd
import polars as pl
import pytest
from conftest import weather_frame
from omegaconf import OmegaConf

import forecast
from forecast import api

pytestmark = pytest.mark.usefixtures("one_thread")

LOOKBACK, HORIZON = 24, 6
TINY = ["trainer=fast", "trainer.max_epochs=1", "trainer.limit_train_batches=4",
        "model.hidden_size=8", "evaluate.plot_days=2"]
TABLE = "Test scores on"  # the first line of the table
VERDICT = "The model "  # every verdict starts so
NOTE = "unique_id as the series and ds as the time column, y as the target"


@pytest.fixture(scope="module")
def long_frame() -> pd.DataFrame:
    """[unique_id, ds, y, sun]: neuralforecast's long format and one more feature."""
    return weather_frame(3, 400, ("y", "sun"), series_col="unique_id", time_col="ds")


@contextmanager
def unconfigured() -> Iterator[None]:
    """The root logger without handlers (pytest's own capture handlers set aside), as in a
    script or notebook that configures no logging."""
    root = logging.getLogger()
    handlers, root.handlers = root.handlers, []
    try:
        yield
    finally:
        root.handlers = handlers


class Kept(logging.Handler):
    """A caller's own handler: keeps the messages."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def polars_run(tmp_path_factory, long_frame) -> tuple[forecast.Run, str, list]:
    """A polars LazyFrame in the unique_id, ds, y format, fitted with no column options and
    no logging configured -> (the run, what fit printed, the handlers it left behind)."""
    printed = io.StringIO()
    with unconfigured(), redirect_stdout(printed):
        run = forecast.fit(pl.from_pandas(long_frame).lazy(), lookback=LOOKBACK,
                           horizon=HORIZON, overrides=TINY,
                           run_dir=tmp_path_factory.mktemp("polars") / "run")
        left = [handler for name in (*api.SHOWN, "forecast", "")
                for handler in logging.getLogger(name).handlers]
    return run, printed.getvalue(), left


@pytest.fixture(scope="module")
def pandas_run(tmp_path_factory, long_frame) -> tuple[forecast.Run, str, list[str]]:
    """The same frame in pandas with the options spelled out, fitted by a caller whose own
    handler on the logger forecast takes fit's lines -> (the run, what fit printed, what the
    handler got)."""
    kept, package = Kept(), logging.getLogger("forecast")
    printed = io.StringIO()
    package.addHandler(kept)
    try:
        with unconfigured(), redirect_stdout(printed):
            run = forecast.fit(long_frame, targets="y", lookback=LOOKBACK, horizon=HORIZON,
                               overrides=[*TINY, "data.series_col=unique_id",
                                          "data.time_col=ds"],
                               run_dir=tmp_path_factory.mktemp("pandas") / "run")
    finally:
        package.removeHandler(kept)
    return run, printed.getvalue(), kept.messages


def test_fit_prints_the_table_and_verdict_once_when_logging_is_not_configured(polars_run):
    run, printed, left = polars_run
    assert printed.count(TABLE) == 1 and printed.count(VERDICT) == 1
    assert f"Run folder: {run.dir}" in printed
    assert printed.count(NOTE) == 1  # the long format, said once
    assert not printed.startswith("[")  # plain lines, as forecast-train's console shows them
    assert left == []  # nothing left behind for later calls
    log = (run.dir / "train.log").read_text()
    assert log.count(TABLE) == 1 and log.count(VERDICT) == 1 and log.count(NOTE) == 1


def test_a_callers_handler_takes_the_lines_and_nothing_is_printed(pandas_run):
    run, printed, messages = pandas_run
    assert TABLE not in printed and VERDICT not in printed
    assert sum(TABLE in m for m in messages) == 1
    assert sum(m.startswith(VERDICT) for m in messages) == 1
    assert not any(NOTE in m for m in messages)  # the options were given: no long format
    log = (run.dir / "train.log").read_text()
    assert log.count(TABLE) == 1 and log.count(VERDICT) == 1


def test_shown_prints_only_where_no_handler_takes_the_lines(caplog, capsys):
    scores = logging.getLogger("forecast.scores")
    with caplog.at_level(logging.INFO), api._shown():  # caplog's handler on the root
        scores.info("taken by the caller")
    assert "taken by the caller" in caplog.text and capsys.readouterr().out == ""
    with unconfigured(), api._shown():
        scores.setLevel(logging.INFO)
        try:
            scores.info("shown")
        finally:
            scores.setLevel(logging.NOTSET)
    assert capsys.readouterr().out == "shown\n" and not scores.handlers


def test_the_long_format_goes_through_the_options(polars_run):
    run, _, _ = polars_run
    saved = OmegaConf.load(run.dir / ".hydra" / "config.yaml")
    assert saved.data.series_col == "unique_id" and saved.data.time_col == "ds"
    assert list(saved.targets) == ["y"] and run.metrics["targets"] == ["y"]


def test_a_polars_run_equals_the_pandas_run(polars_run, pandas_run, long_frame):
    (from_polars, _, _), (from_pandas, _, _) = polars_run, pandas_run
    # the run read the frame it was given
    read = pd.read_parquet(from_polars.dir / api.INPUT)
    pd.testing.assert_frame_equal(read, long_frame, check_dtype=False)
    pd.testing.assert_frame_equal(from_polars.forecasts, from_pandas.forecasts)
    ahead = from_polars.predict(pl.from_pandas(long_frame))
    assert len(ahead) == 3 * HORIZON and set(ahead["target"]) == {"y"}
    pd.testing.assert_frame_equal(ahead, from_pandas.predict(long_frame))
    pd.testing.assert_frame_equal(ahead, from_polars.predict(pl.from_pandas(long_frame).lazy()))


def test_only_polars_objects_are_converted(long_frame):
    assert api._pandas(long_frame) is long_frame
    assert api._pandas("data.csv") == "data.csv"
    converted = api._pandas(pl.from_pandas(long_frame))
    assert isinstance(converted, pd.DataFrame) and list(converted.columns) == list(long_frame)


@pytest.mark.parametrize(("data", "kwargs", "message"), [
    (pl.Series("y", [1.0, 2.0]), {"targets": "y"},
     "a long DataFrame \\(pandas or polars\\) or a CSV/Parquet path, not Series"),
    (None, {}, "targets=None: give a column name"),  # a frame without unique_id, ds
    ("long", {"overrides": ["data.series_col=unique_id"]}, "targets=None"),  # options given
    ("long", {"overrides": ["data.time_col=ds"]}, "targets=None"),
])
def test_targets_are_implied_only_by_the_long_format(long_frame, tmp_path, data, kwargs,
                                                      message):
    if data is None:
        data = long_frame.rename(columns={"unique_id": "series", "ds": "time"})
    elif isinstance(data, str):
        data = long_frame
    with pytest.raises(ValueError, match=message):
        forecast.fit(data, lookback=LOOKBACK, horizon=HORIZON, run_dir=tmp_path / "run",
                     **kwargs)
    assert not (tmp_path / "run").exists()


def test_train_log_gets_the_lines_of_a_logger_that_does_not_propagate(tmp_path):
    """As under forecast-train's logging config: forecast.scores with its own handler and
    propagate=False still writes to the run's train.log."""
    scores, kept = logging.getLogger("forecast.scores"), Kept()
    scores.addHandler(kept)
    scores.propagate = False
    try:
        with api._train_log(tmp_path):
            scores.info("the verdict")
    finally:
        scores.propagate = True
        scores.removeHandler(kept)
    assert kept.messages == ["the verdict"] and not scores.handlers
    assert (tmp_path / "train.log").read_text().count("the verdict") == 1


def test_the_repr_of_a_run_whose_folder_is_gone_names_the_folder(tmp_path):
    assert repr(forecast.Run(tmp_path / "gone")).startswith(f"Run(dir='{tmp_path / 'gone'}')")
