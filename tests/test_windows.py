"""The split rule (a window belongs to the split holding its target span), counts, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import N_STEPS, inputs_of, target_values_of

from forecast.data.panel import split_points, to_panel
from forecast.data.prepared import datamodule, prepare
from forecast.data.windows import window_index

L, H = 10, 5
N, T = 2, 100
FRACTIONS = (0.6, 0.2, 0.2)


def _splits(observed, lookback=L, horizon=H, fractions=FRACTIONS):
    train_end, val_end = split_points(observed.shape[1], fractions)
    bounds = {"train": (0, train_end), "val": (train_end, val_end),
              "test": (val_end, observed.shape[1])}
    out = {name: window_index(observed, lookback, horizon, lo, hi) for name, (lo, hi) in
           bounds.items()}
    return bounds, out


def test_window_index_counts_and_target_spans_inside_bounds():
    bounds, out = _splits(np.ones((N, T), bool))
    assert bounds == {"train": (0, 60), "val": (60, 80), "test": (80, 100)}
    # train: starts 0..60-L-H; val/test: starts (lo-L)..(hi-L-H), per series
    expected = {"train": 60 - L - H + 1, "val": 20 - H + 1, "test": 20 - H + 1}
    for name, (index, dropped) in out.items():
        lo, hi = bounds[name]
        assert index.dtype == np.int64 and index.shape == (N * expected[name], 2)
        assert dropped == 0
        assert sorted(set(index[:, 0].tolist())) == [0, 1]
        target_start, target_end = index[:, 1] + L, index[:, 1] + L + H
        assert target_start.min() == max(lo, L) and target_end.max() == hi  # train: no step < 0
        assert (target_start >= lo).all() and (target_end <= hi).all()
        assert len({tuple(r) for r in index.tolist()}) == len(index)  # no window twice


def test_target_spans_of_splits_are_disjoint_and_complete():
    bounds, out = _splits(np.ones((N, T), bool))
    seen = {}
    for name, (index, _) in out.items():
        for s, start in index.tolist():
            for t in range(start + L, start + L + H):
                seen.setdefault((s, t), set()).add(name)
    assert all(len(names) == 1 for names in seen.values())  # no target in two splits
    # every window whose target span fits in one split is in that split and no other
    windows = {name: {tuple(r) for r in index.tolist()} for name, (index, _) in out.items()}
    for s in range(N):
        for start in range(T - L - H + 1):
            homes = [n for n, (lo, hi) in bounds.items() if lo <= start + L and start + L + H <= hi]
            holders = [n for n in windows if (s, start) in windows[n]]
            assert holders == homes


def test_val_and_test_inputs_reach_back_into_the_previous_split():
    bounds, out = _splits(np.ones((N, T), bool))
    val, test = out["val"][0], out["test"][0]
    assert val[:, 1].min() == bounds["val"][0] - L < bounds["val"][0]
    assert test[:, 1].min() == bounds["test"][0] - L < bounds["test"][0]


def test_windows_with_a_missing_target_are_dropped_and_counted():
    observed = np.ones((N, T), bool)
    observed[1, 70] = False  # inside the val span
    bounds, out = _splits(observed)
    full = _splits(np.ones((N, T), bool))[1]
    index, dropped = out["val"]
    # series 1 loses the windows whose target span [s+L, s+L+H) covers step 70: s in 56..60
    assert dropped == H
    lost = {tuple(r) for r in full["val"][0].tolist()} - {tuple(r) for r in index.tolist()}
    assert lost == {(1, s) for s in range(70 - L - H + 1, 70 - L + 1)}
    # the other splits are unaffected
    for name in ("train", "test"):
        np.testing.assert_array_equal(out[name][0], full[name][0])
        assert out[name][1] == 0


def test_missing_input_step_does_not_drop_a_window():
    observed = np.ones((N, T), bool)
    observed[0, 0:L] = False  # only inputs of the first train window
    index, dropped = window_index(observed, L, H, 0, 60)
    assert dropped == 0
    assert (0, 0) in {tuple(r) for r in index.tolist()}


def test_any_missing_target_column_drops_the_window():
    observed = np.ones((N, T, 2), bool)
    observed[0, 20, 1] = False  # second target only
    index, dropped = window_index(observed, L, H, 0, 60)
    assert dropped == H
    starts0 = set(index[index[:, 0] == 0, 1].tolist())
    assert starts0.isdisjoint(range(20 - L - H + 1, 20 - L + 1))


def test_stride_and_too_short_span():
    index, _ = window_index(np.ones((1, T), bool), L, H, 0, 60, stride=5)
    np.testing.assert_array_equal(index[:, 1], np.arange(0, 60 - L - H + 1, 5))
    empty, dropped = window_index(np.ones((1, T), bool), L, H, 0, L + H - 1)
    assert empty.shape == (0, 2) and dropped == 0


@pytest.mark.parametrize(("lookback", "horizon"), [(0, 5), (10, 0), (-1, 3)])
def test_lookback_and_horizon_must_be_positive(lookback, horizon):
    with pytest.raises(ValueError, match="must both be >= 1"):
        window_index(np.ones((N, T), bool), lookback, horizon, 0, 60)


# --- through prepare() on the synthetic panel ---------------------------------------------------

PL, PH = 24, 6  # lookback, horizon for the fixture panel (300 steps: 210 / 30 / 60)


@pytest.fixture
def prep(panel):
    return prepare(panel, PL, PH, ["a"], (0.7, 0.1, 0.2))


def test_prepare_window_counts_match_hand_count(prep):
    assert prep.bounds == {"train": (0, 210), "val": (210, 240), "test": (240, N_STEPS)}
    counts = {k: len(v) for k, v in prep.indices.items()}
    assert counts == {"train": 3 * (210 - PL - PH + 1), "val": 3 * (30 - PH + 1),
                      "test": 3 * (60 - PH + 1)}
    assert prep.dropped == {"train": 0, "val": 0, "test": 0}


def test_prepare_drops_windows_with_nan_targets_only(long_df):
    df = long_df.copy()
    t = ((df["time"] - df["time"].min()) / np.timedelta64(1, "h")).astype(int)
    df.loc[(df["series"] == "B") & (t == 250), "a"] = np.nan  # a target step in test
    df.loc[(df["series"] == "C") & (t == 100), "b"] = np.nan  # not a target: nothing dropped
    prep = prepare(to_panel(df, "h"), PL, PH, ["a"], (0.7, 0.1, 0.2))
    assert prep.dropped == {"train": 0, "val": 0, "test": PH}
    assert len(prep.indices["test"]) == 3 * (60 - PH + 1) - PH
    test_b = prep.indices["test"][prep.indices["test"][:, 0] == 1, 1] + PL
    assert not ((test_b <= 250) & (250 < test_b + PH)).any()
    assert np.isfinite(inputs_of(prep)).all()  # inputs are filled, the mask does not leak NaN


def test_batches_have_the_documented_shapes(prep):
    dm = datamodule(prep, batch_size=16)
    f_in = inputs_of(prep).shape[-1]
    assert prep.input_names[:2] == ["a", "b"] and len(prep.input_names) == f_in
    x, y, series = next(iter(dm.train_dataloader()))
    assert x.shape == (16, PL, f_in) and x.dtype == torch.float32
    assert y.shape == (16, PH, 1) and y.dtype == torch.float32
    assert series.shape == (16,) and series.dtype == torch.int64
    sizes = {split: [len(b[0]) for b in loader] for split, loader in
             [("train", dm.train_dataloader()), ("val", dm.val_dataloader()),
              ("test", dm.test_dataloader())]}
    for split, got in sizes.items():
        assert sum(got) == len(prep.indices[split])
        assert all(s == 16 for s in got[:-1]) and 0 < got[-1] <= 16


def test_train_loader_visits_every_window_once(prep):
    dm = datamodule(prep, batch_size=50)
    # the first input column is the scaled feature `a`, which encodes (series, step)
    firsts = torch.cat([x[:, 0, 0] for x, _, _ in dm.train_dataloader()]).numpy()
    index = prep.indices["train"]
    want = inputs_of(prep)[index[:, 0], index[:, 1], 0]
    np.testing.assert_array_equal(np.sort(firsts), np.sort(want))


def test_batch_items_are_the_right_slices(prep, expected):
    dm = datamodule(prep, batch_size=32)
    index = prep.indices["test"]
    seen = 0
    for x, y, series in dm.test_dataloader():  # sequential: batches follow the index
        for i in range(len(x)):
            s, start = index[seen + i]
            assert series[i].item() == s
            np.testing.assert_array_equal(x[i].numpy(), inputs_of(prep)[s, start:start + PL])
            np.testing.assert_array_equal(y[i].numpy(),
                                          target_values_of(prep)[s, start + PL:start + PL + PH])
            # and in data units they are the fixture's values of feature `a` at those steps
            units = prep.scaler.inverse(y[i].numpy(), prep.target_cols)[:, 0]
            np.testing.assert_allclose(units, expected[s, start + PL:start + PL + PH, 0],
                                       rtol=0, atol=1e-3)
        seen += len(x)
    assert seen == len(index)


def test_sampler_batches_are_int64_arrays_the_dataset_takes_as_they_are(prep):
    dm = datamodule(prep, batch_size=16)
    loader = dm.train_dataloader()
    batch = next(iter(loader.sampler))
    assert isinstance(batch, np.ndarray) and batch.dtype == np.int64 and batch.shape == (16,)
    ds = dm.dataset("train")
    for got, want in zip(ds[batch], ds[batch.tolist()], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    x, _, series = next(iter(loader))  # the loader hands the array to the dataset unchanged
    index = prep.indices["train"][batch]
    np.testing.assert_array_equal(series.numpy(), index[:, 0])
    np.testing.assert_array_equal(x[:, 0].numpy(), inputs_of(prep)[index[:, 0], index[:, 1]])


def test_batches_of_the_target_columns_alone_for_a_net_that_reads_only_those(panel):
    prep = prepare(panel, PL, PH, ["b", "a"], (0.7, 0.1, 0.2))
    assert prep.target_cols == [1, 0] and inputs_of(prep).shape[-1] > 2
    full, narrow = (datamodule(prep, batch_size=32, input_cols=cols) for cols in (None, [1, 0]))
    loaders = zip(full.test_dataloader(), narrow.test_dataloader(), strict=True)
    for (x, y, series), (x_t, y_t, series_t) in loaders:
        assert x_t.shape == (len(x), PL, 2)
        torch.testing.assert_close(x_t, x[..., [1, 0]], rtol=0, atol=0)  # the targets' order
        torch.testing.assert_close(y_t, y, rtol=0, atol=0)
        torch.testing.assert_close(series_t, series, rtol=0, atol=0)
    # feature columns other than the targets: the lookback read on its own
    x, y, _ = datamodule(prep, input_cols=[0]).dataset("val")[[0, 5]]
    index = prep.indices["val"][[0, 5]]
    steps = index[:, 1:] + np.arange(PL)  # (2, L)
    np.testing.assert_array_equal(x.numpy(), inputs_of(prep)[index[:, :1], steps][..., [0]])
    targets = target_values_of(prep)
    np.testing.assert_array_equal(y.numpy(), targets[index[:, :1], steps[:, :PH] + PL])


def test_batches_of_feature_columns_are_float32_and_contiguous_when_pinned(monkeypatch):
    from forecast.data import windows
    from forecast.data.inputs import ModelInputs

    features = np.random.default_rng(0).normal(size=(2, 30, 3)).astype(np.float32)
    index = np.array([[0, 0], [1, 14]])
    steps = index[:, 1:] + np.arange(15)  # (2, L+H): lookback 10, horizon 5

    def batch(array):
        inputs = ModelInputs(array, np.zeros((30, 0), np.float32), ["a", "b", "c"])
        return windows.WindowDataset(inputs, [2], index, 10, 5, input_cols=[2])[[0, 1]]

    x, y, _ = batch(features)
    assert not x.is_contiguous()  # views of the one read of L+H steps
    np.testing.assert_array_equal(x.numpy(), features[index[:, :1], steps[:, :10]][..., [2]])
    np.testing.assert_array_equal(y.numpy(), features[index[:, :1], steps[:, 10:]][..., [2]])
    x, y, _ = batch(features.astype(np.float64))
    assert x.dtype == torch.float32  # as ModelInputs batches: the net's weights are float32
    monkeypatch.setattr(windows, "pins_memory", lambda: True)
    x, y, _ = batch(features)
    assert x.is_contiguous() and y.is_contiguous()  # a pinned view would pin the whole read
    np.testing.assert_array_equal(y.numpy(), features[index[:, :1], steps[:, 10:]][..., [2]])


def test_single_item_access(prep):
    ds = datamodule(prep).dataset("val")
    s, start = prep.indices["val"][7]
    x, y, series = ds[7]
    assert x.shape == (PL, inputs_of(prep).shape[-1]) and y.shape == (PH, 1)
    assert series.item() == s
    np.testing.assert_array_equal(x.numpy(), inputs_of(prep)[s, start:start + PL])


def test_window_steps_are_the_lookback_then_the_horizon():
    from forecast.data.inputs import window_steps

    index = np.array([[0, 0], [2, 5]])
    assert window_steps(index, 0, 3).tolist() == [[0, 1, 2], [5, 6, 7]]  # lookback 3
    assert window_steps(index, 3, 2).tolist() == [[3, 4], [8, 9]]  # horizon 2 after it


@pytest.mark.parametrize("kind", ["array", "memmap", "strided", "calendar", "no calendar",
                                  "float64"])
def test_take_steps_is_the_two_axis_indexing_whatever_the_array(kind, tmp_path):
    from forecast.data.inputs import take_steps, window_steps

    rng = np.random.default_rng(0)
    array = rng.normal(size=(4, 30, 3)).astype(np.float32)
    if kind == "memmap":
        np.save(tmp_path / "a.npy", array)
        array = np.load(tmp_path / "a.npy", mmap_mode="r")
    elif kind == "strided":
        array = array[:, ::2]  # (4, 15, 3), not contiguous
    elif kind == "calendar":
        array = array[0]  # (T, C): the same steps for every series
    elif kind == "no calendar":
        array = array[0, :, :0]  # (T, 0): data.calendar=false
    elif kind == "float64":
        array = array.astype(np.float64)  # written into a float32 batch by conversion
    index = np.array([[3, 0], [0, 7], [3, 8], [1, 2]])
    rows, steps = index[:, 0:1], window_steps(index, 2, 5)
    expected = array[steps] if array.ndim == 2 else array[rows, steps]
    taken = take_steps(array, rows, steps)
    assert taken.shape == (4, 5, array.shape[-1])
    np.testing.assert_array_equal(taken.numpy(), expected)
    # written into the columns of a wider batch, the columns around them untouched
    batch = torch.full((4, 5, array.shape[-1] + 2), -1.0)
    take_steps(array, rows, steps, batch[..., 1:-1])
    np.testing.assert_array_equal(batch[..., 1:-1].numpy(), expected.astype(np.float32))
    assert (batch[..., [0, -1]] == -1).all()


# (width of the array, columns); else (4, [3, 0, -2]): any order, the targets'
COLUMNS = {"no columns": (4, []), "one column": (4, [2]), "one column by its view": (4, [-3]),
           "every column": (4, [0, 1, 2, 3]), "four of them shuffled": (4, [3, 1, -4, 2]),
           "four inside a wider span": (6, [4, 1, 2, 3]),  # rows of columns 1-4, then picked
           "four spread out": (10, [9, 0, 5, 2])}  # column by column


@pytest.mark.parametrize("kind", ["array", "memmap", "float64", "strided", "read-only",
                                  "no windows", "int32 index", *COLUMNS])
def test_feature_columns_gather_is_the_three_axis_indexing(kind, tmp_path, monkeypatch):
    from forecast.data import inputs
    from forecast.data.inputs import FeatureColumns, window_steps

    if kind == "one column by its view":  # as a column of more values than the threshold
        monkeypatch.setattr(inputs, "SINGLE_VALUES", 0)

    width, cols = COLUMNS.get(kind, (4, [3, 0, -2]))
    array = np.random.default_rng(1).normal(size=(3, 40, width)).astype(np.float32)
    if kind == "memmap":
        np.save(tmp_path / "a.npy", array)
        array = np.load(tmp_path / "a.npy", mmap_mode="r")
    elif kind == "float64":
        array = array.astype(np.float64)
    elif kind == "strided":
        array = np.random.default_rng(1).normal(size=(3, 80, 4)).astype(np.float32)[:, ::2]
    elif kind == "read-only":
        array.flags.writeable = False
    index = np.array([[2, 0], [0, 9], [2, 29], [1, 4]])[: 0 if kind == "no windows" else None]
    index = index.astype(np.int32) if kind == "int32 index" else index
    taken = FeatureColumns(array, cols).gather(index, 5, 6)
    steps = window_steps(index, 5, 6)[..., None]
    expected = array[index[:, 0:1, None], steps, cols]
    assert taken.shape == (len(index), 6, len(cols)) and taken.dtype == array.dtype
    np.testing.assert_array_equal(taken, expected)


def test_feature_columns_refuse_what_lies_outside_the_features():
    from forecast.data.inputs import FeatureColumns

    array = np.zeros((2, 30, 3), np.float32)
    with pytest.raises(IndexError, match="columns"):
        FeatureColumns(array, [3])
