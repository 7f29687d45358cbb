"""The adaptive conformal walk (forecast.evaluation.adaptive): it starts at the split-conformal
offsets, reads no outcome before it is known, meets the nominal coverage when test is harder or
easier than validation (where fixed offsets miss it), and ends in the state forecast-predict
applies."""

from __future__ import annotations

import numpy as np
import pytest

from forecast.evaluation import adaptive, conformal

H, J = 4, 2


def _scores(n: int, spread: float, seed: int) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).normal(0, spread, (n, H, J)))


def _coverage(scores: np.ndarray, offsets: np.ndarray) -> float:
    return float(np.mean(scores <= offsets))


def test_the_first_origin_gets_the_split_offsets():
    val, test = _scores(500, 1.0, 0), _scores(60, 1.0, 1)
    offsets, _, _ = adaptive.walk(val, test, np.repeat(np.arange(20), 3), 0.8, 0.005)
    split = conformal.conformal_quantile(val, 0.8)
    for row in range(3):  # the three series at origin 0
        np.testing.assert_array_equal(offsets[row], split)


def test_offsets_at_reads_the_conformal_rank_and_stays_finite_past_the_largest():
    ordered, counts = adaptive.ordered_scores(np.arange(1.0, 11.0).reshape(10, 1, 1))
    assert adaptive.offsets_at(ordered, counts, np.array([[0.5]]))[0, 0] == 6.0  # ceil(11 * .5)
    assert adaptive.offsets_at(ordered, counts, np.array([[1.3]]))[0, 0] == 10.0
    assert adaptive.offsets_at(ordered, counts, np.array([[-0.2]]))[0, 0] == 1.0


def test_a_lead_h_outcome_moves_the_level_only_h_origins_later():
    val = _scores(999, 1.0, 2)
    test = np.full((30, H, J), 1e6)  # every test outcome far outside: the level only rises
    offsets, _, _ = adaptive.walk(val, test, np.arange(30), 0.8, 0.005)
    start = offsets[0]
    for lead in range(1, H + 1):
        column = offsets[:, lead - 1]
        # origin t knows lead h of the origins s <= t - h: nothing before t = h
        np.testing.assert_array_equal(column[:lead], np.broadcast_to(start[lead - 1], (lead, J)))
        assert (column[lead] > start[lead - 1]).all()
        assert (np.diff(column[lead:], axis=0) >= 0).all()


def test_no_outcome_enters_before_it_is_known():
    origins = np.repeat(np.arange(80), 2)  # two series
    val, test = _scores(400, 1.0, 3), _scores(len(origins), 2.0, 4)
    before, _, _ = adaptive.walk(val, test, origins, 0.8, 0.01)
    cut = 40
    unknown = origins[:, None] + np.arange(1, H + 1)[None, :] > cut  # (K, H): known after cut
    changed = test.copy()
    changed[unknown] = np.random.default_rng(5).uniform(0, 100, changed[unknown].shape)
    after, _, _ = adaptive.walk(val, changed, origins, 0.8, 0.01)
    upto = origins <= cut
    np.testing.assert_array_equal(before[upto], after[upto])
    assert not np.array_equal(before[~upto], after[~upto])
    # while one outcome known at the cut does move the offsets there (the check can fail)
    moved = test.copy()
    moved[origins == cut - 1, 0] = 1e6
    shifted, _, _ = adaptive.walk(val, moved, origins, 0.8, 0.01)
    assert not np.array_equal(before[origins == cut], shifted[origins == cut])


@pytest.mark.parametrize("test_spread", [1.4, 0.7])
@pytest.mark.parametrize("coverage", [0.8, 0.95])
def test_a_shift_between_validation_and_test_is_followed(test_spread, coverage):
    origins = np.repeat(np.arange(4000), 3)
    val, test = _scores(1500, 1.0, 6), _scores(len(origins), test_spread, 7)
    offsets, level, final = adaptive.walk(val, test, origins, coverage, 0.005)
    split = conformal.conformal_quantile(val, coverage)
    fixed = _coverage(test, split)
    assert abs(fixed - coverage) > 0.04  # split conformal misses it
    assert _coverage(test, offsets) == pytest.approx(coverage, abs=0.015)
    # the end state is the level reached and its offsets, further from nominal than the start
    np.testing.assert_array_equal(final, adaptive.offsets_at(*adaptive.ordered_scores(val), level))
    assert ((level > coverage) == (test_spread > 1)).all()


def test_missing_outcomes_do_not_count_as_misses():
    origins = np.arange(50)
    val, test = _scores(300, 1.0, 8), _scores(50, 1.0, 9)
    gappy = test.copy()
    gappy[10:30] = np.nan
    _, level, _ = adaptive.walk(val, gappy, origins, 0.8, 0.01)
    _, level_kept, _ = adaptive.walk(val, np.concatenate([test[:10], test[30:]]),
                                     np.concatenate([origins[:10], origins[30:]]), 0.8, 0.01)
    np.testing.assert_allclose(level, level_kept)


def test_the_level_turns_back_after_a_stretch_beyond_every_validation_score():
    """1,000 origins whose outcomes lie past every validation score, then ordinary ones: the
    level stays near 1 while the interval is ACI's unbounded one, and coverage returns."""
    val = _scores(500, 1.0, 10)
    wild = np.full((1000, H, J), 1e6)
    test = np.concatenate([wild, _scores(3000, 1.0, 11)])
    offsets, level, _ = adaptive.walk(val, test, np.arange(4000), 0.8, 0.005)
    assert (level <= 1 + 0.005 + 1e-9).all()
    assert _coverage(test[2000:], offsets[2000:]) == pytest.approx(0.8, abs=0.03)


def test_no_test_window_leaves_the_validation_level():
    val = _scores(200, 1.0, 13)
    offsets, level, final = adaptive.walk(val, np.empty((0, H, J)), np.empty(0, int), 0.8, 0.005)
    assert offsets.shape == (0, H, J)
    np.testing.assert_allclose(level, 0.8)
    np.testing.assert_array_equal(final, conformal.conformal_quantile(val, 0.8))
