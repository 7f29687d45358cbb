"""Adaptive conformal inference over the test windows (Gibbs & Candes, 2021), with the delay a
multi-step forecast has: the outcome of lead h of the window at origin s is known from origin
s + h on, and only then moves the level.

Split conformal (conformal.py) reads its offsets off the validation windows and keeps them; when
the test period is harder or easier than validation (autumn validation, early-winter test on the
default data; the reverse on ETTh1) the promised coverage is missed. Here the conformity scores
are still the validation windows' only, but the level at which they are read follows the misses
of the forecasts already resolved: for every (lead, target)

    alpha_t = alpha + rate * sum over resolved origins s of (alpha - miss_s),

miss_s the share of the series whose outcome fell outside the interval at origin s. An interval
that has covered too little widens, one that has covered too much narrows. A level past what
the n validation scores can give (above n / (n + 1), below 1 / (n + 1)) is ACI's unbounded
(empty) interval: reported at the largest (smallest) score, but counted as covering (missing)
so that the level turns back, as in the paper, whose bound (the average miss rate over T
origins within (1 + rate) / (rate * T) of alpha, for outcomes resolved one origin later) holds
for the counted misses, not for the finite band reported there. Only outcomes resolved by a
window's origin enter its interval: the information the model's own inputs have.

Origins are the windows' start steps (index of the first input step): a window at origin t reads
steps [t, t + lookback) and forecasts lead h at step t + lookback + h - 1, known at origin
t + h. numpy only (forecast-predict imports conformal.py, which imports this).
"""

from __future__ import annotations

import numpy as np

TOL = 1e-9


def ordered_scores(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validation scores (n, H, n_targets) sorted along windows (NaN last) and their non-NaN
    counts (H, n_targets): what `offsets_at` reads any level from."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.sort(scores, axis=0), np.sum(~np.isnan(scores), axis=0)


def rank(counts: np.ndarray, level: np.ndarray) -> np.ndarray:
    """k = ceil((n + 1) * level): the 1-based rank of the conformal quantile of n scores."""
    return np.ceil((counts + 1) * np.asarray(level, dtype=np.float64) - TOL).astype(np.int64)


def offsets_at(ordered: np.ndarray, counts: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The conformal quantile of the sorted scores at a level per (lead, target): the k-th
    smallest of n, k = ceil((n + 1) * level), clipped to [1, n]: past the largest score the
    interval stays at the largest (ACI's unbounded interval, kept finite), below the smallest
    at the smallest (its empty one); +inf with no score."""
    pick = np.clip(rank(counts, level), 1, np.maximum(counts, 1)) - 1
    value = np.take_along_axis(ordered, pick[None, ...], axis=0)[0]
    return np.where(counts == 0, np.inf, value)


def _misses(scores: np.ndarray, offsets: np.ndarray, rank: np.ndarray,
            counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The share of the windows (g, H, n_targets) outside their interval per (lead, target), 0
    where none was observed, and whether any was. Where the level asks for more than the
    largest score (rank > n) the interval counts as the unbounded one ACI gives, which misses
    nothing, and below the smallest (rank < 1) as the empty one, which misses all: so the level
    stays within [-rate, 1 + rate] of where the finite offsets would let it run away."""
    observed = ~np.isnan(scores)
    outside = np.where(observed, scores > offsets, False)
    outside = np.where(rank > counts, False, np.where(rank < 1, observed, outside))
    seen = observed.sum(axis=0)
    return outside.sum(axis=0) / np.maximum(seen, 1), seen > 0


def walk(val_scores: np.ndarray, test_scores: np.ndarray, origins: np.ndarray,
         coverage: float, rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The adaptive offsets of every test window, in the units of the scores.

    val_scores (n, H, n_targets): the validation windows' conformity scores, the only scores
    offsets are read from; test_scores (K, H, n_targets): the test windows', each used only once
    its outcome is known (see the module's docstring); origins (K,): the start step of each test
    window. Returns (offsets (K, H, n_targets), level (H, n_targets) and offsets (H, n_targets)
    once every test outcome is known: what forecast-predict applies past the data's end).
    """
    ordered, counts = ordered_scores(val_scores)
    steps, position = np.unique(np.asarray(origins), return_inverse=True)
    horizon = val_scores.shape[1]
    leads = np.arange(1, horizon + 1)
    alpha = 1.0 - coverage
    # running sums over origins in time order: misses and how many origins had an outcome
    missed = np.zeros((len(steps) + 1, *val_scores.shape[1:]))
    resolved = np.zeros(missed.shape, dtype=np.int32)
    lead_axis = np.arange(horizon)

    def level(known: np.ndarray) -> np.ndarray:  # known (H,): origins resolved per lead
        n, miss = resolved[known, lead_axis], missed[known, lead_axis]
        return 1.0 - (alpha + rate * (n * alpha - miss))

    out = np.empty(test_scores.shape, dtype=np.float64)
    by_origin = np.split(np.argsort(position, kind="stable"),
                         np.cumsum(np.bincount(position, minlength=len(steps)))[:-1])
    by_origin = by_origin[:len(steps)]  # no test window: np.split still gives one empty part
    for i, (step, rows) in enumerate(zip(steps, by_origin, strict=True)):
        known = np.searchsorted(steps, step - leads, side="right")
        now = level(known)
        offsets = offsets_at(ordered, counts, now)
        out[rows] = offsets
        share, seen = _misses(test_scores[rows], offsets, rank(counts, now), counts)
        missed[i + 1] = missed[i] + share
        resolved[i + 1] = resolved[i] + seen
    final_level = level(np.full(horizon, len(steps)))
    return out, final_level, offsets_at(ordered, counts, final_level)
