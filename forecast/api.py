"""The Python API: `fit` a run from a long DataFrame or a file, `load_run` a run folder, and
`Run.predict` past the end of its data. A run from here leaves the same folder as forecast-train
(configs composed from the packaged ones with the same override strings), so either loads.

    import forecast
    run = forecast.fit(df, targets=["temp"], lookback=48, horizon=24,
                       overrides=["model=gru", "trainer.max_epochs=3"])
    run.metrics["model"]["mae"], run.forecasts.head()
    ahead = forecast.load_run(run.dir).predict()
    print(run)  # the summary: folder, model, data, scores against the best baseline, verdict

fit shows the score table and verdict on stdout unless the caller's logging takes the logger
forecast.scores (a handler on it, on forecast or on the root logger); train.log gets them either
way. A polars DataFrame or LazyFrame is read as pandas; a frame in the long format of
neuralforecast and statsforecast (unique_id, ds, y) is read as it is.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf, open_dict

from forecast import config
from forecast.report import tables
from forecast.runs import api_inputs, console, intent, runfolder

if TYPE_CHECKING:
    from forecast.models.network import RegLSTM

log = logging.getLogger(__name__)

INPUT = "input.parquet"  # a DataFrame given to fit, as the run reads it (in the run folder)
FUTURE = "future.parquet"  # a future= DataFrame given to Run.predict (in a temporary folder)
ARGUMENTS = {"lookback": "lookback", "horizon": "horizon", "targets": "targets", "data": "data",
             "data.path": "data", "data.known": "known", "data.static": "static",
             "data.static_path": "static"}  # fit's own arguments: config key -> argument
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's, as in train.log
# what fit shows the caller: the final scores (forecast-train's console lines) and fit's own
SHOWN = ("forecast.scores", __name__)
# the long format of neuralforecast and statsforecast: series, time and target columns
LONG_FORMAT = {"data.series_col": "unique_id", "data.time_col": "ds"}
LONG_TARGET = "y"


@dataclass(frozen=True)
class Run:
    """A finished run folder: its scores, test forecasts and model. `print(run)` (or
    `run.summary()`) says what was run and how it scored."""

    dir: Path

    def __repr__(self) -> str:
        try:
            return self.summary()
        except (OSError, ValueError, KeyError, TypeError) as error:  # a folder moved or broken
            return f"Run(dir={str(self.dir)!r}) ({type(error).__name__}: {error})"

    def summary(self) -> str:
        """A few lines: the run folder; the model, data, targets, lookback and horizon; the
        test MAE and RMSE of the model and of the best baseline (lowest MAE) in the data's
        units; the verdict."""
        metrics = self.metrics
        saved = self.config
        step = metrics.get("step_seconds")
        data = saved.get("data", {}).get("name", "?")
        if saved.get("data", {}).get("path"):
            data += f" ({saved['data']['path']})"
        lookback, horizon = metrics.get("lookback"), metrics.get("horizon")
        lines = [
            f"Run {self.dir}",
            f"  model {saved.get('model', {}).get('name', '?')} on {data}",
            f"  targets {', '.join(metrics.get('targets') or [])}; lookback {lookback} steps "
            f"({tables.duration(lookback, step)}), horizon {horizon} steps "
            f"({tables.duration(horizon, step)})",
        ]
        scores = f"  test, in {tables.unit_label(metrics) or 'data units'}: model " \
                 f"{_scores(metrics['model'])}"
        best = _best_baseline(metrics.get("baselines", {}))
        if best is None:
            return "\n".join([*lines, scores])
        scores += f"; best baseline {best} {_scores(metrics['baselines'][best])}"
        return "\n".join([*lines, scores, f"  {tables.verdict(metrics)}"])

    @property
    def metrics(self) -> dict:
        """metrics.json: {"model": scores, "baselines": {name: scores}, "windows", ...}."""
        return json.loads((self.dir / "metrics.json").read_text())

    @property
    def config(self) -> dict:
        """.hydra/config.yaml, the run's resolved config, as plain values."""
        return OmegaConf.to_container(OmegaConf.load(self.dir / ".hydra" / "config.yaml"))

    @cached_property
    def model(self) -> RegLSTM:
        """The trained network (checkpoints/best.ckpt) in eval mode, loaded on first use as
        forecast-predict loads it."""
        from forecast.runs import predict  # torch and the network: only when asked for

        return predict.load_run(self.dir).module

    @property
    def forecasts(self) -> pd.DataFrame:
        """forecasts.parquet: K test windows x H leads x n_targets rows (columns series, origin,
        lead, time, target, actual, forecast [, q0.1, ..., lower_80, upper_80, ...]), in data
        units."""
        return pd.read_parquet(self.dir / "forecasts.parquet")

    def predict(self, data: pd.DataFrame | str | os.PathLike | None = None,
                checkpoint: str = "best",
                future: pd.DataFrame | str | os.PathLike | None = None) -> pd.DataFrame:
        """Forecast the `horizon` steps after the last observed target of the run's own data
        (data=None) or of `data` (a long pandas or polars DataFrame, or a CSV/Parquet file, with
        the run's columns, frequency and series), as forecast-predict does; `future`: the known
        inputs' values over those steps (data.known), a DataFrame or file. A DataFrame goes
        through a temporary folder, removed after. -> table [series, time, target, forecast
        [, q0.1, ..., lower_80, upper_80, ...]] of N series x H steps x n_targets rows."""
        from forecast.runs import predict  # torch and the network: only when forecasting

        trained = predict.load_run(self.dir, checkpoint)
        with tempfile.TemporaryDirectory() as folder:
            frames: dict[str, str] = {}  # temporary path -> what the user gave
            paths = [api_inputs.as_path(_pandas(value), Path(folder) / name, argument, frames)
                     for value, name, argument in ((data, INPUT, "data"),
                                                   (future, FUTURE, "future"))]
            try:
                return predict.forecast_run(trained, {"path": paths[0]}, future=paths[1])[0]
            except ValueError as err:  # name what the user gave, not the temporary file
                message = str(err)
                for path, given in frames.items():
                    for named in (f"data.path '{path}'", f"future '{path}'", path):
                        message = message.replace(named, given)
                raise ValueError(message) from None


def load_run(path: str | os.PathLike) -> Run:
    """The run in a folder written by forecast-train or `fit`; refuses one that is missing or
    has not finished (see forecast-predict's allow_incomplete)."""
    path = Path(path)
    if not (path / "metrics.json").is_file() or not runfolder.is_complete(path):
        raise FileNotFoundError(f"'{path}' holds no finished run (no metrics.json or "
                                "complete.json); give the folder a run was written to")
    return Run(path)


def fit(data: pd.DataFrame | str | os.PathLike, *, targets: str | Sequence[str] | None = None,
        lookback: int, horizon: int, overrides: Sequence[str] = (),
        run_dir: str | os.PathLike | None = None, known: str | Sequence[str] | None = None,
        static: Sequence[str] | pd.DataFrame | str | os.PathLike | None = None) -> Run:
    """Train, test and score one run, as `forecast-train data=csv data.path=<file>` does, and
    show its score table and verdict as the command does: on stdout, unless the caller's
    logging takes the logger forecast.scores (then there only); train.log gets them either way.

    data: a long pandas or polars DataFrame (a polars LazyFrame is collected; columns series,
        time and the features; other names through the overrides data.series_col=... and
        data.time_col=...) or the path of a CSV/Parquet file. A frame with the columns
        unique_id and ds and neither override is read in that long format (neuralforecast's,
        statsforecast's): data.series_col=unique_id, data.time_col=ds, and targets y when none
        are given. A DataFrame is written to <run_dir>/input.parquet, which the run reads (and
        forecast-predict reads again); nothing outside the run folder is written.
    targets: the column(s) to forecast, or "all" (None only for a unique_id, ds, y frame).
    lookback, horizon: input steps L and forecast steps H of every window.
    overrides: forecast-train's override strings, e.g. ["model=gru", "trainer.max_epochs=3"].
    run_dir: the run folder; default outputs/<date>/<time> (the CLI's hydra.run.dir).
    known: columns known over the horizon at the origin (data.known; forecasts, schedules).
    static: per-series constants: columns of `data` (data.static), a DataFrame with one row per
        series keyed by the series column (-> <run_dir>/static.parquet), or such a file's path.
    -> the finished Run. Bad arguments raise ValueError naming the argument or column.
    """
    data, static = _pandas(data), _pandas(static)
    implied, targets, note = _long_format(data, targets, overrides)
    _check_arguments(data, targets, lookback, horizon, overrides)
    cfg, folder = _compose([*implied, *overrides], run_dir)
    cfg.targets, cfg.lookback, cfg.horizon = _target_list(targets), lookback, horizon
    cfg.data.known = api_inputs.known_columns(known, data, cfg.targets)
    cfg.data.static, table = api_inputs.static_option(static, data, cfg.data.known,
                                                          cfg.targets, cfg.data.series_col)
    from forecast.runs import (
        loggers,
        train,  # Lightning: imported only for a run
    )

    train.model_options(cfg.model, lookback)  # refusals that cost no data and write nothing
    loggers.require(cfg.logger)
    problem = runfolder.unusable(folder)
    if problem:
        raise ValueError(f"run_dir: {problem}")
    if isinstance(data, pd.DataFrame):
        _check_frame(data, cfg)
    if isinstance(data, pd.DataFrame) or isinstance(table, pd.DataFrame):
        earlier = runfolder.holds_a_run(folder)
        if earlier:  # checked before the input files of that run would be replaced
            raise ValueError(f"run_dir '{folder}' holds an earlier run ({', '.join(earlier[:3])})"
                             "; give fit another run_dir")
        folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, pd.DataFrame):
        data.to_parquet(folder / INPUT, index=False)
        cfg.data.path = str((folder / INPUT).resolve())
    else:
        cfg.data.path = str(api_inputs.existing(data).resolve())
    if table is not None:
        cfg.data.static_path = str(api_inputs.write_static(table, folder)
                                   if isinstance(table, pd.DataFrame) else table.resolve())
    console.quiet()
    with _shown(), _train_log(folder):  # _shown first: it asks whether the caller has handlers
        if note:
            log.info(note)
        train.run(cfg, folder)
    return Run(folder)


def _compose(overrides: list[str], run_dir) -> tuple[DictConfig, Path]:
    """forecast-train's config with data=csv and the overrides; the run folder."""
    config.register()
    overrides = intent.overrides(overrides)  # a key outside the schema refused by name
    with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
        try:
            cfg = compose("train", overrides=["data=csv", *overrides], return_hydra_config=True)
        except ConfigCompositionException as error:  # its cause names the key and the schema
            cause = f" ({error.__cause__})" if error.__cause__ else ""
            raise ValueError(f"overrides: {error}{cause}".replace("\n", " ")) from None
    folder = Path(run_dir if run_dir is not None else cfg.hydra.run.dir)
    with open_dict(cfg):
        del cfg["hydra"]  # the task's config only, as Hydra hands it to forecast-train
    return cfg, folder


def _pandas(data: Any) -> Any:
    """A polars DataFrame (or LazyFrame, collected) as a pandas one; anything else as it is.
    polars is imported only when `data` is one of its objects."""
    if not type(data).__module__.startswith("polars"):
        return data
    import polars

    if isinstance(data, polars.LazyFrame):
        data = data.collect()
    return data.to_pandas() if isinstance(data, polars.DataFrame) else data


def _long_format(data: Any, targets, overrides: Sequence[str]) -> tuple[list[str], Any, str]:
    """The overrides a unique_id, ds[, y] frame implies when the caller set neither key column
    (-> overrides, targets, the line saying so); none for any other data."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides if isinstance(o, str)}
    if not isinstance(data, pd.DataFrame) or not set(LONG_FORMAT.values()) <= set(data.columns) \
            or keys & set(LONG_FORMAT):
        return [], targets, ""
    implied = [f"{key}={column}" for key, column in LONG_FORMAT.items()]
    read, chosen = "unique_id as the series and ds as the time column", list(implied)
    if targets is None and LONG_TARGET in data.columns:
        targets = [LONG_TARGET]
        read += f", {LONG_TARGET} as the target"
        chosen.append(f"targets=[{LONG_TARGET}]")
    return implied, targets, f"data: the long format unique_id, ds, y: {read} " \
                             f"({', '.join(chosen)})"


def _check_arguments(data, targets, lookback, horizon, overrides) -> None:
    if not isinstance(data, pd.DataFrame | str | os.PathLike):
        raise ValueError(f"data: a long DataFrame (pandas or polars) or a CSV/Parquet path, not "
                         f"{type(data).__name__}")
    names = [targets] if isinstance(targets, str) else targets
    if not isinstance(names, Sequence) or not names or \
            not all(isinstance(t, str) for t in names):
        raise ValueError(f"targets={targets!r}: give a column name, a list of them, or 'all'")
    for name, value in (("lookback", lookback), ("horizon", horizon)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r}: a whole number of steps >= 1")
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise ValueError(f"overrides={overrides!r}: a list of override strings, e.g. "
                         "['model=gru', 'trainer.max_epochs=3']")
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in ARGUMENTS:
            raise ValueError(f"overrides: '{override}' sets fit's argument {key}; pass "
                             f"{ARGUMENTS[key]}=... to fit (data.<option>=... overrides are "
                             "fine)")


def _target_list(targets: str | Sequence[str]) -> str | list[str]:
    return targets if targets == "all" else [targets] if isinstance(targets, str) \
        else list(targets)


def _check_frame(df: pd.DataFrame, cfg: DictConfig) -> None:
    """The key and target columns a DataFrame must have, named with the option that sets them."""
    keys = {"data.series_col": cfg.data.series_col, "data.time_col": cfg.data.time_col}
    for option, column in keys.items():
        if column is not None and column not in df.columns:
            raise ValueError(f"data: no column '{column}' ({option}); the DataFrame has "
                             f"{list(df.columns)}; rename it or override {option}=<column>")
    wanted = [] if cfg.targets == "all" else list(cfg.targets)
    missing = [t for t in wanted if t not in df.columns]
    if missing:
        raise ValueError(f"targets: no column {missing} in the DataFrame (columns "
                         f"{list(df.columns)})")


def _scores(scores: dict) -> str:
    """'MAE 1.234, RMSE 2.345' ('undefined' where a score is)."""
    def value(key):
        number = scores.get(key)
        return "undefined" if number is None else f"{number:.3f}"
    return f"MAE {value('mae')}, RMSE {value('rmse')}"


def _best_baseline(baselines: dict) -> str | None:
    """The baseline of lowest test MAE (None when none has one)."""
    scored = {name: m["mae"] for name, m in baselines.items() if m.get("mae") is not None}
    return min(scored, key=scored.get) if scored else None


@contextmanager
def _shown() -> Iterator[None]:
    """fit's lines (SHOWN's loggers: the score table, the verdict) on stdout for the length of
    a fit, for a caller whose logging takes none of them: a plain handler on each logger with
    no handler of its own or above it, removed after; a caller's handler gets them alone."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    bare = [logging.getLogger(name) for name in SHOWN
            if not logging.getLogger(name).hasHandlers()]
    for logger in bare:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in bare:
            logger.removeHandler(handler)
        handler.close()


@contextmanager
def _train_log(folder: Path) -> Iterator[None]:
    """<run>/train.log, the log Hydra keeps for forecast-train, for the length of the run."""
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "train.log")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    # the root's handler, and that of a shown logger whose lines stop short of the root
    # (propagate=False there or above, as under forecast-train's own logging config)
    takers = [root, *(logging.getLogger(name) for name in SHOWN
                      if not _reaches_root(logging.getLogger(name)))]
    for logger in takers:
        logger.addHandler(handler)
    level = root.level
    root.setLevel(min(level, logging.INFO))
    try:
        yield
    finally:
        root.setLevel(level)
        for logger in takers:
            logger.removeHandler(handler)
        handler.close()


def _reaches_root(logger: logging.Logger) -> bool:
    """Whether the logger's records propagate up to the root logger."""
    while logger.parent is not None:
        if not logger.propagate:
            return False
        logger = logger.parent
    return True
