"""Everything fitted is fitted on the train span: data after the cutoff moves nothing before it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import inputs_of, target_values_of

from forecast.data.panel import to_panel
from forecast.data.prepared import prepare

L, H, SPLIT = 24, 6, (0.7, 0.1, 0.2)


def _change_after(df, cutoff_time, nan_every=7):
    """Rescale every value at or after `cutoff_time`, and blank a few of them."""
    df = df.copy()
    later = df["time"] >= cutoff_time
    df.loc[later, ["a", "b"]] = df.loc[later, ["a", "b"]] * 50.0 + 1e4
    blank = later & (np.arange(len(df)) % nan_every == 0)
    df.loc[blank, "a"] = np.nan
    return df


@pytest.mark.parametrize("targets", [["a"], "all"])
def test_data_after_the_train_cutoff_changes_nothing_before_it(long_df, panel, targets):
    prep = prepare(panel, L, H, targets, SPLIT)
    cutoff = prep.bounds["train"][1]
    changed = to_panel(_change_after(long_df, panel.times[cutoff]), "h")
    other = prepare(changed, L, H, targets, SPLIT)

    np.testing.assert_array_equal(other.scaler.mean, prep.scaler.mean)
    np.testing.assert_array_equal(other.scaler.scale, prep.scaler.scale)
    np.testing.assert_array_equal(inputs_of(other)[:, :cutoff], inputs_of(prep)[:, :cutoff])
    np.testing.assert_array_equal(target_values_of(other)[:, :cutoff],
                                  target_values_of(prep)[:, :cutoff])
    np.testing.assert_array_equal(other.indices["train"], prep.indices["train"])
    # the change did reach the model inputs after the cutoff (so the checks above could fail)
    assert not np.allclose(inputs_of(other)[:, cutoff:, :2], inputs_of(prep)[:, cutoff:, :2])


def test_scaler_holds_train_span_statistics(panel):
    prep = prepare(panel, L, H, ["a"], SPLIT)
    train = panel.values[:, : prep.bounds["train"][1]].astype(np.float64)
    np.testing.assert_allclose(prep.scaler.mean, train.mean(axis=(0, 1)), rtol=1e-9)
    np.testing.assert_allclose(prep.scaler.scale, train.std(axis=(0, 1)), rtol=1e-6)
    assert not np.allclose(prep.scaler.mean, panel.values.mean(axis=(0, 1)))  # not the full span
    # the model's first input columns are the features in z-scores of the train span
    np.testing.assert_allclose(inputs_of(prep)[..., :2],
                               (panel.values - prep.scaler.mean) / prep.scaler.scale, atol=1e-5)


def test_scaler_ignores_missing_values(long_df):
    df = long_df.copy()
    df.loc[df.index % 5 == 0, "a"] = np.nan
    p = to_panel(df, "h")
    prep = prepare(p, L, H, ["b"], SPLIT)
    train = p.values[:, : prep.bounds["train"][1], 0].astype(np.float64)
    assert prep.scaler.mean[0] == pytest.approx(np.nanmean(train), rel=1e-9)
    assert prep.scaler.scale[0] == pytest.approx(np.nanstd(train), rel=1e-6)


def test_gaps_in_inputs_are_filled_from_the_past(long_df):
    df = long_df.copy()
    t = ((df["time"] - df["time"].min()) / np.timedelta64(1, "h")).astype(int)
    df.loc[(df["series"] == "A") & t.between(40, 44), "b"] = np.nan
    prep = prepare(to_panel(df, "h"), L, H, ["a"], SPLIT)
    b = inputs_of(prep)[0, :, 1]
    np.testing.assert_array_equal(b[40:45], np.full(5, b[39]))
    assert b[45] != b[39]


def test_unknown_target_and_too_short_splits_raise(panel):
    with pytest.raises(ValueError, match="not among the data's features"):
        prepare(panel, L, H, ["temp"], SPLIT)
    with pytest.raises(ValueError, match="val split"):  # early stopping needs val windows
        prepare(panel, 10, 61, ["a"], SPLIT)  # the val span has 30 steps < horizon
    with pytest.raises(ValueError, match="test split"):
        prepare(panel, 10, 20, ["a"], (0.7, 0.25, 0.05))  # val 75 steps, test 15 < horizon
