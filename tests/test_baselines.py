"""Baselines on series whose right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import weather_frame

from forecast.data.panel import season_phase
from forecast.data.windows import gather, window_index
from forecast.evaluation import baselines as bl


def _all_windows(n_series, n_steps, lookback, horizon, start=0):
    index, _ = window_index(np.ones((n_series, n_steps), bool), lookback, horizon, start, n_steps)
    return index


def test_persistence_repeats_the_last_input_on_a_step_function():
    t = np.arange(100)
    history = np.stack([np.where(t < 50, 0.0, 5.0), np.full(100, 3.0)])[..., None]  # (2, 100, 1)
    lookback, horizon = 10, 4
    index = _all_windows(2, 100, lookback, horizon)
    got = bl.persistence(history, index, lookback, horizon)
    assert got.shape == (len(index), horizon, 1)
    last_input = index[:, 1] + lookback - 1
    want = np.where((index[:, 0] == 0) & (last_input < 50), 0.0,
                    np.where(index[:, 0] == 0, 5.0, 3.0))
    np.testing.assert_array_equal(got[..., 0], np.repeat(want[:, None], horizon, axis=1))
    # the window whose last input is step 49 forecasts 0 although its targets are already 5
    k = np.flatnonzero((index[:, 0] == 0) & (last_input == 49))[0]
    assert (got[k] == 0).all()
    assert (gather(history, index[k:k + 1], lookback, horizon) == 5).all()


@pytest.mark.parametrize("horizon", [6, 24, 36, 60])
def test_seasonal_naive_is_exact_on_a_periodic_series(horizon):
    season, lookback, n_steps = 24, 48, 400
    rng = np.random.default_rng(0)
    pattern = rng.normal(size=(2, season, 2))
    history = np.tile(pattern, (1, n_steps // season + 1, 1))[:, :n_steps]  # (2, T, 2)
    index = _all_windows(2, n_steps, lookback, horizon)
    got = bl.seasonal_naive(history, index, lookback, horizon, season)
    truth = gather(history, index, lookback, horizon)
    assert got.shape == truth.shape == (len(index), horizon, 2)
    np.testing.assert_array_equal(got, truth)


def test_seasonal_naive_reads_only_the_past():
    season, lookback, horizon, n_steps = 24, 48, 60, 300
    t = np.arange(n_steps)
    history = np.sin(2 * np.pi * t / season)[None, :, None] + 0.0
    index = np.array([[0, 100]], np.int64)
    blind = history.copy()
    blind[:, 100 + lookback:] = np.nan  # hide everything from the first target on
    got = bl.seasonal_naive(blind, index, lookback, horizon, season)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, gather(history, index, lookback, horizon), atol=1e-12)
    # lead h uses the value whole seasons before it: lead 30 (0-based) comes from 48 steps back
    history2 = np.arange(n_steps, dtype=float)[None, :, None]
    got2 = bl.seasonal_naive(history2, index, lookback, horizon, season)[0, :, 0]
    target_steps = 100 + lookback + np.arange(horizon)
    back = season * (np.arange(horizon) // season + 1)
    np.testing.assert_array_equal(got2, target_steps - back)
    assert (got2 < 100 + lookback).all()


def _hourly_values(n_steps, seed=0):
    """Times (T,) and values (2, T, 1) of two hourly series, a tenth of the values missing."""
    frame = weather_frame(2, n_steps, start="2021-06-01 05:00", noise=0.5, seed=seed)
    times = pd.DatetimeIndex(frame["time"].iloc[:n_steps])
    values = frame["temp"].to_numpy(copy=True).reshape(2, n_steps, 1)
    values[np.random.default_rng(seed + 1).random(values.shape) < 0.1] = np.nan
    return times, values


def _climatology(values, phase, train_end, index, lookback, horizon):
    return bl.climatology(bl.climatology_means(values, phase, train_end), phase, index, lookback,
                          horizon)


def test_climatology_is_the_train_mean_per_hour_of_day():
    n_steps, train_end, lookback, horizon = 24 * 20, 300, 24, 30
    times, values = _hourly_values(n_steps)
    phase = season_phase(times)
    np.testing.assert_array_equal(phase, times.hour)  # hourly UTC data: phase = hour of day
    index = _all_windows(2, n_steps, lookback, horizon, start=train_end)
    got = _climatology(values, phase, train_end, index, lookback, horizon)
    assert got.shape == (len(index), horizon, 1)

    # the same means computed independently, with pandas, from the train span only
    for s in range(2):
        frame = pd.DataFrame({"hour": times.hour[:train_end], "v": values[s, :train_end, 0]})
        means = frame.groupby("hour")["v"].mean()  # skips NaN
        rows = index[:, 0] == s
        target_hours = times.hour.to_numpy()[index[rows, 1:2] + lookback + np.arange(horizon)]
        np.testing.assert_allclose(got[rows, :, 0], means.loc[target_hours.ravel()].to_numpy()
                                   .reshape(target_hours.shape), rtol=1e-5)


def test_climatology_uses_only_the_train_span():
    n_steps, train_end, lookback, horizon = 24 * 20, 300, 24, 30
    times, values = _hourly_values(n_steps, seed=1)
    index = _all_windows(2, n_steps, lookback, horizon, start=train_end)
    got = _climatology(values, season_phase(times), train_end, index, lookback, horizon)
    later = values.copy()
    later[:, train_end:] = 1e6
    later[:, train_end::5] = np.nan
    again = _climatology(later, season_phase(times), train_end, index, lookback, horizon)
    np.testing.assert_array_equal(again, got)
    changed = values.copy()
    changed[:, :train_end] += 1.0  # ...while the train span does move it
    np.testing.assert_allclose(
        _climatology(changed, season_phase(times), train_end, index, lookback, horizon),
        got + 1.0, rtol=1e-5)


@pytest.mark.parametrize("n, p, m", [(400, 20, 3), (300, 60, 1), (90, 120, 5)])
def test_block_ridge_is_ridgecv_read_in_blocks(n, p, m):
    """The penalty chosen by leave-one-out and the fitted map equal scikit-learn's RidgeCV
    (intercept unpenalised), with rows read in blocks of 37, also when p > n."""
    from sklearn.linear_model import RidgeCV

    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, p)) * rng.uniform(0.2, 3.0, p) + rng.normal(size=p)
    y = x @ rng.normal(size=(p, m)) * 0.2 + 3.0 * rng.normal(size=(n, m)) + 5.0
    alphas = np.geomspace(0.01, 1000.0, 25)
    reference = RidgeCV(alphas=alphas).fit(x, y)
    ridge = bl.BlockRidge(alphas).fit(lambda: ((x[i:i + 37], y[i:i + 37])
                                               for i in range(0, n, 37)))
    assert ridge.alpha_ == reference.alpha_
    assert alphas[0] < ridge.alpha_ < alphas[-1]  # an inner choice, not an end of the grid
    np.testing.assert_allclose(ridge.predict(x), reference.predict(x).reshape(n, m),
                               rtol=1e-8, atol=1e-8)


def test_ridge_recovers_a_linear_ar_process():
    a, b = 0.6, -0.3  # x_t = a x_{t-1} + b x_{t-2} + e_t
    n_series, n_steps, lookback, horizon = 2, 8000, 5, 2
    rng = np.random.default_rng(0)
    x = np.zeros((n_series, n_steps))
    noise = rng.normal(size=x.shape)
    for t in range(2, n_steps):
        x[:, t] = a * x[:, t - 1] + b * x[:, t - 2] + noise[:, t]
    series = x[..., None].astype(np.float32)  # (N, T, 1): inputs and targets
    observed = np.ones((n_series, n_steps), bool)
    train, _ = window_index(observed, lookback, horizon, 0, 6000)
    test, _ = window_index(observed, lookback, horizon, 6000, n_steps)
    ridge = bl.RidgeBaseline().fit(series, series, train, lookback, horizon)
    got = ridge.predict(series, test, lookback)
    assert got.shape == (len(test), horizon, 1)

    last = series[test[:, 0], test[:, 1] + lookback - 1, 0]
    before = series[test[:, 0], test[:, 1] + lookback - 2, 0]
    lead1 = a * last + b * before  # conditional means: the best any forecaster can do
    lead2 = a * lead1 + b * last
    np.testing.assert_allclose(got[:, 0, 0], lead1, atol=0.2)
    np.testing.assert_allclose(got[:, 1, 0], lead2, atol=0.2)
    for lead, want in enumerate([lead1, lead2]):
        assert np.sqrt(np.mean((got[:, lead, 0] - want) ** 2)) < 0.05
    coef = ridge.model.coef_  # (H, L): the lead-1 row is [0, 0, 0, b, a]
    np.testing.assert_allclose(coef[0], [0, 0, 0, b, a], atol=0.04)
    np.testing.assert_allclose(coef[1], [0, 0, 0, a * b, a * a + b], atol=0.04)


def test_ridge_is_fitted_on_the_given_train_windows_only():
    rng = np.random.default_rng(2)
    series = rng.normal(size=(1, 600, 1)).astype(np.float32)
    observed = np.ones((1, 600), bool)
    train, _ = window_index(observed, 8, 3, 0, 400)
    test, _ = window_index(observed, 8, 3, 400, 600)
    first = bl.RidgeBaseline().fit(series, series, train, 8, 3).predict(series, test, 8)
    later = series.copy()
    later[:, 400:] = rng.normal(5.0, 3.0, size=later[:, 400:].shape)
    refit = bl.RidgeBaseline().fit(later, later, train, 8, 3)
    np.testing.assert_allclose(refit.predict(series, test, 8), first, rtol=1e-5, atol=1e-6)


def _ar_channels(n_steps: int = 6000, a: float = 0.8, seed: int = 0) -> np.ndarray:
    """Two columns of one AR(1) process around different, drifting levels: (1, T, 2)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n_steps, 2))
    for t in range(1, n_steps):
        x[t] = a * x[t - 1] + rng.normal(size=2)
    level = np.stack([np.linspace(0, 40, n_steps), np.linspace(10, -30, n_steps)], axis=1)
    return (x + level)[None].astype(np.float32)


def test_rlinear_learns_one_map_shared_by_the_columns():
    series = _ar_channels()
    observed = np.ones(series.shape[:2], bool)
    lookback, horizon = 8, 3
    train, _ = window_index(observed, lookback, horizon, 0, 4000)
    val, _ = window_index(observed, lookback, horizon, 4000, 5000)
    test, _ = window_index(observed, lookback, horizon, 5000, 6000)
    linear = bl.LinearBaseline().fit(series, train, val, lookback, horizon)
    got = linear.predict(series, test, lookback)
    assert got.shape == (len(test), horizon, 2)
    # both columns follow the same dynamics around their own level: the map is shared, and the
    # window normalisation removes the levels, which a map of the raw lookback cannot
    actual = gather(series, test, lookback, horizon)
    errors = np.sqrt(np.mean((got - actual) ** 2, axis=(0, 1)))  # per column
    assert np.all(errors < 1.45), errors  # noise alone: 1.0, 1.28, 1.45 at leads 1-3
    assert linear.model.coef_.shape == (horizon, lookback)
    persistence = bl.persistence(series, test, lookback, horizon)
    assert np.mean((got - actual) ** 2) < np.mean((persistence - actual) ** 2)


def test_rlinear_chooses_its_normalisation_on_the_validation_windows():
    series = _ar_channels(3000, seed=1)
    observed = np.ones(series.shape[:2], bool)
    train, _ = window_index(observed, 12, 4, 0, 2000)
    val, _ = window_index(observed, 12, 4, 2000, 3000)
    actual = gather(series, val, 12, 4)
    errors = {}
    for kind in bl.LinearBaseline.KINDS:
        only = bl.LinearBaseline()
        only.KINDS = (kind,)
        forecast = only.fit(series, train, val, 12, 4).predict(series, val, 12)
        errors[kind] = float(np.mean((forecast - actual) ** 2))
    assert len(set(errors.values())) == 3  # the choice matters
    chosen = bl.LinearBaseline().fit(series, train, val, 12, 4).kind
    assert chosen == min(errors, key=errors.get), errors


def test_rlinear_reads_no_test_window():
    series = _ar_channels(2000, seed=3)
    observed = np.ones(series.shape[:2], bool)
    train, _ = window_index(observed, 8, 3, 0, 1200)
    val, _ = window_index(observed, 8, 3, 1200, 1500)
    test, _ = window_index(observed, 8, 3, 1500, 2000)
    first = bl.LinearBaseline().fit(series, train, val, 8, 3).predict(series, test, 8)
    later = series.copy()
    later[:, 1500:] = np.random.default_rng(4).normal(5.0, 3.0, size=later[:, 1500:].shape)
    refit = bl.LinearBaseline().fit(later, train, val, 8, 3)
    np.testing.assert_allclose(refit.predict(series, test, 8), first, rtol=1e-5, atol=1e-5)
