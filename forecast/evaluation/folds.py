"""Rolling-origin backtest: the fold boundaries, and the mean (and spread) of the folds' scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forecast.data.panel import split_points
from forecast.evaluation.scores import Scores, scalars


def fold_ends(
    n_steps: int, split: Sequence[float], folds: int, horizon: int = 1
) -> list[tuple[int, int, int]]:
    """Rolling-origin backtest: the test span (the last `split[2]` of the time axis) is cut into
    `folds` consecutive blocks; fold i tests on block i, validates on the `split[1]` share just
    before it and trains on everything earlier (expanding window). -> [(train_end, val_end,
    test_end)] per fold."""
    if folds < 2:
        raise ValueError(f"evaluate.folds={folds}: a backtest needs at least 2 folds")
    _, val_end = split_points(n_steps, split)
    val_len = val_end - split_points(n_steps, split)[0]
    block = (n_steps - val_end) // folds
    if block < horizon:
        raise ValueError(
            f"evaluate.folds={folds}: test blocks of {block} steps are shorter than "
            f"horizon={horizon}; use at most {(n_steps - val_end) // horizon} folds"
        )
    ends = []
    for i in range(folds):
        test_start = val_end + i * block
        test_end = n_steps if i == folds - 1 else test_start + block
        ends.append((test_start - val_len, test_start, test_end))
    return ends


def _mean_of(parts: list[dict], with_std: bool) -> dict:
    out = {}
    keys = list(dict.fromkeys(k for p in parts for k in p))  # a series may miss in some folds
    for key in keys:
        values = [p[key] for p in parts if key in p]
        value = values[0]
        if isinstance(value, dict):
            out[key] = _mean_of(values, with_std=False)
        elif isinstance(value, list) and value and isinstance(value[0], float | int):
            out[key] = np.mean(np.asarray(values, dtype=float), axis=0).tolist()
        elif isinstance(value, float | int) and not isinstance(value, bool):
            out[key] = float(np.mean(values))
            if with_std:
                out[f"{key}_std"] = float(np.std(values))
        else:
            out[key] = value
    return out


def aggregate_folds(folds: Sequence[Scores]) -> Scores:
    """A backtest's scores from its folds' (each with its `ends` and `test_start`): the mean
    over folds of every score (breakdowns too), with `<score>_std` beside each overall score of
    the model and of each baseline; each fold's overall scores under `folds`; the mean
    validation loss; the window counts as lists, one value a fold; the seconds of fitting
    them all."""
    first = folds[0]
    return Scores(
        model=_mean_of([f.model for f in folds], with_std=True),
        baselines={n: _mean_of([f.baselines[n] for f in folds], with_std=True)
                   for n in first.baselines},
        space=first.space,
        folds=[{"ends": f.ends, "test_start": f.test_start, "model": scalars(f.model),
                "baselines": {n: scalars(b) for n, b in f.baselines.items()}} for f in folds],
        val_loss=float(np.mean([f.val_loss for f in folds])),
        windows={k: [f.windows[k] for f in folds] for k in ("train", "val", "test", "dropped")},
        seconds={"fit": sum(f.seconds["fit"] for f in folds)},
        units=first.units, step_seconds=first.step_seconds,
    )
