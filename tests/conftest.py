"""Shared test data: `weather_frame`, the one generator of realistic synthetic series, and a
small long DataFrame whose values encode their position (`make_long` and the fixtures on it).

The position frame: series "C", "A", "B" (rows in that order, so sorting is visible) over N_STEPS
hourly steps from START. With k the position of the series in sorted order (A=0, B=1, C=2) and t
the step:
    a = 1000 * k + t        b = -(k + t / 1000)
so every value tells which (series, time, feature) cell it must land in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pytest

from forecast.config import DataConfig, NetOptions, TrainingOptions
from forecast.data import loader
from forecast.data.panel import to_panel
from forecast.models.forecaster import Forecaster
from forecast.models.network import RegLSTM
from forecast.models.options import SHAPES, shapes

START = pd.Timestamp("2021-03-01 00:00", tz="UTC")
N_STEPS = 300
IDS = ("C", "A", "B")  # row order in the frame; the panel sorts them


def weather_frame(n_series: int = 3, n_steps: int = 400,
                  columns: Sequence[str] | Mapping[str, tuple[float, float]] = ("temp",), *,
                  freq: str = "h", start: str | pd.Timestamp = "2024-01-01",
                  tz: str | None = "UTC", noise: float = 0.3, seed: int = 0,
                  series_col: str | None = "series", time_col: str = "time",
                  names: Sequence[str] | None = None) -> pd.DataFrame:
    """Long frame [series_col, time_col, *columns]: a daily cycle plus Gaussian noise.

    Column j of series i at time t (h = hours since midnight of the first day):
        level_j + amplitude_j * sin(2 pi (h + 5 i + 3 j) / 24) + N(0, noise)
    `columns` maps names to (level, amplitude); a plain sequence gives (10 j, j + 1). Series are
    named `names` (default S0, S1, ...), rows series by series in that order, times ascending;
    series_col=None gives one series without that column, tz=None naive times.
    """
    names = [f"S{i}" for i in range(n_series)] if names is None else list(names)
    if len(names) != n_series or (series_col is None and n_series != 1):
        raise ValueError(f"weather_frame: n_series={n_series}, names={names}, "
                         f"series_col={series_col!r} do not fit together")
    shapes = dict(columns) if isinstance(columns, Mapping) else {
        name: (10.0 * j, j + 1.0) for j, name in enumerate(columns)}
    times = pd.date_range(start, periods=n_steps, freq=freq, tz=tz)
    hours = ((times - times[0].normalize()) / pd.Timedelta(hours=1)).to_numpy()
    rng = np.random.default_rng(seed)
    frames = []
    for i, name in enumerate(names):
        frame = {} if series_col is None else {series_col: name}
        frame[time_col] = times
        for j, (column, (level, amplitude)) in enumerate(shapes.items()):
            # the noise drawn series by series, column by column: one seed, one fixed frame
            daily = np.sin(2 * np.pi * (hours + 5 * i + 3 * j) / 24)
            frame[column] = level + amplitude * daily + rng.normal(0, noise, n_steps)
        frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)


def _code_a(k, t):
    return 1000.0 * k + t


def _code_b(k, t):
    return -(k + t / 1000.0)


@pytest.fixture
def make_long():
    """Factory: long DataFrame [series, time, a, b] with the encoding above."""

    def make(ids=IDS, n_steps=N_STEPS, start=START, freq="h") -> pd.DataFrame:
        times = pd.date_range(start, periods=n_steps, freq=freq)
        t = np.arange(n_steps, dtype=np.float64)
        order = sorted(ids)
        frames = [
            pd.DataFrame({"series": name, "time": times,
                          "a": _code_a(order.index(name), t), "b": _code_b(order.index(name), t)})
            for name in ids
        ]
        return pd.concat(frames, ignore_index=True)

    return make


@pytest.fixture
def long_df(make_long) -> pd.DataFrame:
    return make_long()


@pytest.fixture
def expected() -> np.ndarray:
    """(N, T, F) values the panel built from `long_df` must hold, series in sorted order."""
    k = np.arange(len(IDS), dtype=np.float64)[:, None]
    t = np.arange(N_STEPS, dtype=np.float64)[None, :]
    return np.stack([_code_a(k, t), _code_b(k, t)], axis=2).astype(np.float32)


@pytest.fixture
def panel(long_df):
    return to_panel(long_df, freq="h")


@pytest.fixture(scope="module")
def one_thread():
    """Run a test module with one torch thread: tiny tensors go faster and time steadily on a
    busy CI machine. Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the loader's repairs, read as counts (forecast.data.repair_log) ------------------------------


def repairs_of(logged) -> dict:
    """The repairs in `caplog` (read from its records) or in a list of `Repair`s:
    {kind: count} for a repair of no one column, {(kind, column): count} for one of a column,
    so `found["duplicates"]` and `found["not_numbers", "temp"]`. Counts of the same key add up
    (a file read twice); a {column: n} count adds up per column."""
    records = getattr(logged, "records", None)
    found: dict = {}
    for repair in logged if records is None else (getattr(r, "repair", None) for r in records):
        if repair is None:
            continue
        key = repair.kind if repair.column is None else (repair.kind, repair.column)
        found[key] = _added(found.get(key), repair.count)
    return found


def _added(total, count):
    if total is None:
        return count
    if isinstance(count, dict):
        return {k: total.get(k, 0) + count.get(k, 0) for k in {**total, **count}}
    return total + count


# --- nets and modules from one mapping of shapes and options, as tests write them -------------


def build_net(**given) -> RegLSTM:
    """RegLSTM from the data's shapes and the network's options in one mapping."""
    net_shapes = {k: given.pop(k) for k in SHAPES if k in given}
    return RegLSTM(**net_shapes, options=NetOptions(**given))


def build_module(net: Mapping, **training) -> Forecaster:
    """Forecaster around build_net(**net), with TrainingOptions(**training)."""
    return Forecaster(build_net(**net), TrainingOptions(**training))


def net_kwargs(prep, options: Mapping) -> dict:
    """A prepared panel's shapes and the given network options, in one mapping."""
    return {**shapes(prep), **options}


def load_data(name: str = "nyc_weather", *, seed: int = 0, targets=None, min_steps: int = 0,
              **options) -> pd.DataFrame:
    """loader.load of a DataConfig with these data.* options."""
    return loader.load(DataConfig(name=name, **options), seed=seed, targets=targets,
                       min_steps=min_steps)


def inputs_of(prep) -> np.ndarray:
    """A prepared panel's whole (N, T, F_in) model inputs, as the batches join them: features,
    calendar, [observed mask]."""
    inputs = prep.model_inputs
    n = inputs.features.shape[0]
    parts = [np.asarray(inputs.features),
             np.broadcast_to(inputs.calendar, (n, *inputs.calendar.shape))]
    if inputs.mask_of is not None:
        parts.append(~np.isnan(inputs.mask_of))
    return np.concatenate(parts, axis=2, dtype=np.float32)


def target_values_of(prep) -> np.ndarray:
    """(N, T, n_targets) scaled targets of a prepared panel, NaN where missing."""
    return prep.scaler.transform(prep.panel.values[:, :, prep.target_cols], prep.target_cols)
