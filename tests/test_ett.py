"""+experiment=ett: the rows, splits, window counts and scaler span of the ETT protocol, on a
small synthetic file of the same layout (a `date` column and numeric columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from forecast import config, train

ROWS, STEPS, L, H = 200, 150, 8, 4  # ETT: 17,420 rows, 14,400 used, L=96, H in {96, ...}


@pytest.fixture(scope="module")
def ett_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"date": pd.date_range("2016-07-01", periods=ROWS, freq="h"),
                          "HUFL": rng.normal(5, 2, ROWS), "OT": np.arange(ROWS, dtype=float)})
    path = tmp_path_factory.mktemp("ett") / "ETTsynth.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _prepared(path, *overrides):
    config.register()
    with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=ett", f"data.path={path}",
                                          f"lookback={L}", f"horizon={H}", *overrides])
    panel = train.load_panel(cfg.data, cfg.seed, cfg.targets, L + H)
    split = (cfg.data.split.train, cfg.data.split.val, cfg.data.split.test)
    return train.prepare(cfg, panel, split)


def test_ett_rows_splits_and_window_counts(ett_file):
    path, _ = ett_file
    prep = _prepared(path, f"data.steps={STEPS}")
    train_end, val_end = int(0.6 * STEPS), int(0.8 * STEPS)  # 8640, 11520 for 14,400 rows
    assert prep.bounds == {"train": (0, train_end), "val": (train_end, val_end),
                           "test": (val_end, STEPS)}
    assert prep.targets == ["HUFL", "OT"]  # every column a target
    # every window whose targets lie in its span; val/test inputs may reach into the span before
    counts = {k: len(v) for k, v in prep.indices.items()}
    assert counts == {"train": train_end - L - H + 1, "val": val_end - train_end - H + 1,
                      "test": STEPS - val_end - H + 1}  # ETTh1, H=96: 2,785 test windows
    test = prep.indices["test"]
    assert test[:, 1].min() + L == val_end and test[:, 1].max() + L + H == STEPS
    # rows from data.steps on are never a target nor an input
    assert (prep.indices["test"][:, 1] + L + H).max() <= STEPS


def test_ett_scaler_is_fitted_on_the_train_rows_only(ett_file):
    path, frame = ett_file
    prep = _prepared(path, f"data.steps={STEPS}")
    train_rows = frame.iloc[: int(0.6 * STEPS)]
    np.testing.assert_allclose(prep.scaler.mean, train_rows[["HUFL", "OT"]].mean(), rtol=1e-5)
    np.testing.assert_allclose(prep.scaler.scale, train_rows[["HUFL", "OT"]].std(ddof=0),
                               rtol=1e-4)


def test_data_steps_beyond_the_file_is_refused(ett_file):
    path, _ = ett_file
    with pytest.raises(ValueError, match=r"data.steps=999 must lie in \[1, 200\]"):
        _prepared(path, "data.steps=999")
