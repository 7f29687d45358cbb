"""Long DataFrame -> Panel, causal filling and the chronological split points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import N_STEPS, START

from forecast.data.panel import fill_causal, split_points, to_panel

HOUR = pd.Timedelta(hours=1)


# --- to_panel -----------------------------------------------------------------------------------


def test_panel_shapes_order_and_grid(panel):
    assert panel.values.shape == (3, N_STEPS, 2)
    assert panel.values.dtype == np.float32
    assert panel.observed.shape == panel.values.shape
    assert panel.observed.dtype == bool
    assert panel.observed.all()
    assert list(panel.ids) == ["A", "B", "C"]  # sorted, although the rows come C, A, B
    assert panel.features == ["a", "b"]
    assert panel.n_series == 3 and panel.n_steps == N_STEPS
    assert len(panel.times) == N_STEPS
    assert panel.times[0] == START
    assert (panel.times[1:] - panel.times[:-1] == HOUR).all()
    assert panel.freq == "h"


def test_values_land_at_their_series_time_feature(panel, expected):
    np.testing.assert_array_equal(panel.values, expected)
    # spot checks, spelled out: series B (k=1) at step 17; series C (k=2) at step 299
    assert panel.values[1, 17, 0] == 1017.0
    assert panel.values[2, 299, 0] == 2299.0
    assert panel.values[2, 299, 1] == pytest.approx(-2.299)


@pytest.mark.parametrize("freq", ["h", None])
def test_unsorted_rows_give_the_same_panel(long_df, panel, freq):
    shuffled = long_df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert not shuffled["time"].is_monotonic_increasing
    other = to_panel(shuffled, freq=freq)
    np.testing.assert_array_equal(other.values, panel.values)
    np.testing.assert_array_equal(other.ids, panel.ids)
    assert other.times.equals(panel.times)
    assert other.freq == "h"


def test_missing_hours_are_nan_and_unobserved(long_df, expected):
    t = ((long_df["time"] - START) / HOUR).astype(int)
    gap_b = (long_df["series"] == "B") & t.between(10, 12)
    df = long_df[~gap_b].copy()
    df.loc[(df["series"] == "C") & (t == 50), "b"] = np.nan  # one feature missing
    df = df[t[df.index] != 100]  # step 100 absent from every series
    p = to_panel(df, freq="h")

    assert p.values.shape == (3, N_STEPS, 2)
    assert len(p.times) == N_STEPS and p.times[100] == START + 100 * HOUR
    missing = np.zeros(p.values.shape, bool)
    missing[1, 10:13, :] = True
    missing[2, 50, 1] = True
    missing[:, 100, :] = True
    np.testing.assert_array_equal(p.observed, ~missing)
    assert np.isnan(p.values[missing]).all()
    np.testing.assert_array_equal(p.values[~missing], expected[~missing])


def test_series_shorter_than_others_is_padded_with_nan(long_df):
    t = ((long_df["time"] - START) / HOUR).astype(int)
    df = long_df[~((long_df["series"] == "A") & (t >= 290))]
    p = to_panel(df, freq="h")
    assert p.n_steps == N_STEPS  # the grid runs to the last time of any series
    assert not p.observed[0, 290:].any() and p.observed[0, :290].all()
    assert p.observed[1:].all()


def test_duplicate_rows_are_averaged(long_df, expected):
    dup = long_df[(long_df["series"] == "A") & (long_df["time"] == START + 5 * HOUR)].copy()
    dup["a"] += 10.0
    dup["b"] -= 4.0
    p = to_panel(pd.concat([long_df, dup], ignore_index=True), freq="h")
    assert p.values.shape == (3, N_STEPS, 2)
    assert p.values[0, 5, 0] == pytest.approx(expected[0, 5, 0] + 5.0)
    assert p.values[0, 5, 1] == pytest.approx(expected[0, 5, 1] - 2.0)
    untouched = np.ones(p.values.shape[:2], bool)
    untouched[0, 5] = False
    np.testing.assert_array_equal(p.values[untouched], expected[untouched])


@pytest.mark.parametrize("freq", ["h", None])
def test_rows_off_the_grid_raise(long_df, freq):
    off = long_df.iloc[[0]].copy()
    off["time"] = off["time"] + pd.Timedelta(minutes=30)
    with pytest.raises(ValueError, match="not on the 'h' grid"):
        to_panel(pd.concat([long_df, off], ignore_index=True), freq=freq)


@pytest.mark.parametrize(("freq", "step"), [("30min", "30min"), ("h", "1h"), ("15min", "15min")])
def test_freq_is_inferred_when_none(make_long, freq, step):
    df = make_long(n_steps=50, freq=freq)
    p = to_panel(df, freq=None)
    assert p.freq == freq
    assert p.n_steps == 50
    assert (p.times[1:] - p.times[:-1] == pd.Timedelta(step)).all()


def test_inferred_freq_survives_gaps(long_df):
    # a few missing hours must not change the inferred step (the most common one)
    keep = ~long_df["time"].isin(START + HOUR * np.array([3, 7, 8, 40]))
    p = to_panel(long_df[keep], freq=None)
    assert p.freq == "h" and p.n_steps == N_STEPS


def test_non_fixed_freq_is_refused(long_df):
    with pytest.raises(ValueError, match="data.freq"):
        to_panel(long_df, freq="MS")


# --- fill_causal --------------------------------------------------------------------------------


def test_fill_causal_forward_fills_only():
    x = np.array([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan, np.nan], np.float32)
    got = fill_causal(x[None, :, None], before_first=-7.0)[0, :, 0]
    # the 4 after the gap never reaches back into steps 2-3; steps before the first value get -7
    np.testing.assert_array_equal(got, [-7.0, 1.0, 1.0, 1.0, 4.0, 4.0, 4.0])
    assert got.dtype == np.float32


def test_fill_causal_is_per_series_and_feature():
    x = np.full((2, 4, 2), np.nan, np.float32)
    x[0, 1, 0] = 5.0
    x[1, 0, 1] = 6.0
    x[1, 2, 1] = 7.0
    got = fill_causal(x, before_first=np.nan)
    np.testing.assert_array_equal(got[0, :, 0], [np.nan, 5.0, 5.0, 5.0])
    assert np.isnan(got[0, :, 1]).all()
    assert np.isnan(got[1, :, 0]).all()
    np.testing.assert_array_equal(got[1, :, 1], [6.0, 6.0, 7.0, 7.0])


def test_fill_causal_matches_pandas_ffill():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 80, 2)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = np.nan
    got = fill_causal(x, before_first=0.0)
    for n in range(3):
        want = pd.DataFrame(x[n]).ffill().fillna(0.0).to_numpy(np.float32)
        np.testing.assert_array_equal(got[n], want)


def test_fill_causal_never_uses_later_values():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 60, 2)).astype(np.float32)
    x[rng.random(x.shape) < 0.5] = np.nan
    base = fill_causal(x, before_first=0.0)
    for cut in (1, 10, 31, 59):
        changed = x.copy()
        later = rng.normal(100.0, 10.0, size=changed[:, cut:].shape).astype(np.float32)
        later[rng.random(later.shape) < 0.3] = np.nan
        changed[:, cut:] = later
        got = fill_causal(changed, before_first=0.0)
        np.testing.assert_array_equal(got[:, :cut], base[:, :cut])
        assert not np.array_equal(got[:, cut:], base[:, cut:])


# --- split_points -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_steps", "fractions", "points"),
    [(100, (0.7, 0.1, 0.2), (70, 80)), (300, (0.6, 0.2, 0.2), (180, 240)),
     (10, (1.0, 0.0, 0.0), (10, 10)), (8730, (0.7, 0.1, 0.2), (6111, 6984))],
)
def test_split_points(n_steps, fractions, points):
    assert split_points(n_steps, fractions) == points


@pytest.mark.parametrize(
    "fractions",
    [(0.7, 0.1, 0.1), (0.8, 0.3, -0.1), (0.0, 0.5, 0.5), (0.5, 0.5, 0.5), (0.7, 0.3)],
)
def test_bad_split_fractions_raise(fractions):
    with pytest.raises(ValueError):
        split_points(100, fractions)


def test_bad_split_message_names_the_setting():
    with pytest.raises(ValueError, match=r"data\.split=\[0\.7, 0\.1, 0\.1\]"):
        split_points(100, (0.7, 0.1, 0.1))
