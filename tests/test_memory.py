"""What a run keeps per (series, step): the panel's values and the scaled features, nothing else;
the parts are joined per batch into exactly the arrays the network saw before."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from forecast import mapped
from forecast.panel import Panel, Scaler, calendar, fill_causal, scaled_filled, to_panel
from forecast.pipeline import datamodule, prepare
from forecast.windows import gather

L, H = 24, 6


@pytest.fixture
def gappy_panel(long_df):
    """The conftest panel with holes in both features, a target gap included."""
    df = long_df.copy()
    rng = np.random.default_rng(0)
    df.loc[rng.random(len(df)) < 0.05, "b"] = np.nan
    df.loc[rng.random(len(df)) < 0.01, "a"] = np.nan
    return to_panel(df.drop(index=df.index[7:9]), "h")


def test_observed_is_derived_from_the_values_not_stored(gappy_panel):
    assert "observed" not in {f.name for f in dataclasses.fields(Panel)}
    values = gappy_panel.values
    np.testing.assert_array_equal(gappy_panel.observed, ~np.isnan(values))
    assert not gappy_panel.observed.all() and gappy_panel.observed.dtype == bool


def _explicit_inputs(panel, scaler, parts, with_mask):
    """The old (N, T, F_in) array: features, the calendar copied into every series, the mask."""
    cal, _ = calendar(panel.times, parts)
    columns = [fill_causal(scaler.transform(panel.values)),
               np.broadcast_to(cal, (panel.n_series, *cal.shape))]
    if with_mask:
        columns.append((~np.isnan(panel.values)).astype(np.float32))
    return np.concatenate(columns, axis=2)


@pytest.mark.parametrize("with_mask", [False, True])
def test_batches_equal_gathers_over_the_concatenated_array(gappy_panel, with_mask):
    parts = ("hour", "day_of_year")
    prep = prepare(gappy_panel, L, H, ["a"], calendar=parts, mask_features=with_mask)
    whole = _explicit_inputs(gappy_panel, prep.scaler, parts, with_mask)
    targets = np.nan_to_num(prep.scaler.transform(gappy_panel.values[:, :, [0]], [0]))
    assert prep.model_inputs.shape == whole.shape
    dm = datamodule(prep)
    for split in ("train", "val", "test"):
        index = prep.indices[split]
        pick = np.linspace(0, len(index) - 1, 7).astype(int).tolist()
        x, y, series = dm.dataset(split)[pick]
        np.testing.assert_array_equal(x.numpy(), gather(whole, index[pick], 0, L))
        np.testing.assert_array_equal(y.numpy(), gather(targets, index[pick], L, H))
        np.testing.assert_array_equal(series.numpy(), index[pick, 0])
    np.testing.assert_array_equal(prep.inputs, whole)


def test_a_run_keeps_two_raw_arrays_per_series_and_step(gappy_panel):
    prep = prepare(gappy_panel, L, H, ["a"], mask_features=True)
    raw = gappy_panel.values.nbytes
    assert prep.model_inputs.nbytes_per_series * gappy_panel.n_series == raw
    per_step = [f.name for f in dataclasses.fields(prep)
                if isinstance(getattr(prep, f.name), np.ndarray)]
    assert per_step == []  # Prepared holds arrays only through the panel and the inputs


@pytest.mark.parametrize("n_features", [2, 5])
def test_scaler_by_blocks_equals_the_one_pass_fit(monkeypatch, n_features):
    rng = np.random.default_rng(n_features)
    values = (rng.normal(size=(9, 500, n_features)) * rng.uniform(0.1, 500, n_features)
              + rng.uniform(-300, 300, n_features)).astype(np.float32)
    values[rng.random(values.shape) < 0.05] = np.nan
    values[:, :, 0] = 3.0  # a constant feature gets scale 1
    names = [f"f{i}" for i in range(n_features)]
    monkeypatch.setattr(mapped, "BLOCK_BYTES", 500 * n_features * 4 * 2)  # two series a block
    one, blocks = Scaler.fit(values, names), Scaler.fit_blocks(values, names)
    np.testing.assert_array_equal(blocks.mean, one.mean)
    np.testing.assert_array_equal(blocks.scale, one.scale)


def test_scaled_features_in_a_scratch_file_equal_those_in_memory(gappy_panel, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr(mapped, "BLOCK_BYTES", gappy_panel.values[:1].nbytes)  # one series
    scaler = Scaler.fit(gappy_panel.values[:, :200], gappy_panel.features)
    in_memory = scaled_filled(gappy_panel.values, scaler)
    on_disk = scaled_filled(gappy_panel.values, scaler, str(tmp_path))
    assert isinstance(on_disk, np.memmap) and not list(tmp_path.iterdir())  # unnamed file
    np.testing.assert_array_equal(on_disk, in_memory)
    np.testing.assert_array_equal(in_memory, fill_causal(scaler.transform(gappy_panel.values)))
