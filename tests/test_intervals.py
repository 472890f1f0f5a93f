"""Intervals: against closed forms and simulation."""

import numpy as np
import pytest
from scipy import stats

from copystudy.common import intervals


def test_mean_ci_matches_the_t_interval():
    x = [1.0, 2.0, 4.0]
    mean, lo, hi = intervals.mean_ci(x)
    half = stats.t.ppf(0.975, 2) * np.std(x, ddof=1) / np.sqrt(3)
    assert mean == pytest.approx(7 / 3) and lo == pytest.approx(mean - half) and hi == pytest.approx(mean + half)
    assert intervals.mean_ci([5.0]) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError):
        intervals.mean_ci([])


def test_mean_ci_covers_the_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(2000):
        _, lo, hi = intervals.mean_ci(rng.normal(3.0, 1.0, size=3))
        covered += lo <= 3.0 <= hi
    assert 0.93 < covered / 2000 < 0.97


def test_wilson_interval():
    p, lo, hi = intervals.wilson(0, 10)
    assert p == 0 and lo == 0 and 0.25 < hi < 0.35  # the Wilson upper bound at 0/10 is 0.278
    p, lo, hi = intervals.wilson(10, 10)
    assert p == 1 and hi == 1 and 0.70 < lo < 0.75
    p, lo, hi = intervals.wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)


def test_permutation_test_finds_an_association_and_not_a_null():
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    rho, p = intervals.permutation_test(x, x + 0.3 * rng.normal(size=40), n_perm=2000)
    assert rho > 0.8 and p < 0.001
    rho, p = intervals.permutation_test(x, rng.normal(size=40), n_perm=2000)
    assert p > 0.05


def test_separated_and_summarize_seeds():
    assert intervals.separated([0, 1], [1.5, 2]) and not intervals.separated([0, 1], [0.5, 2])
    out = intervals.summarize_seeds([{"a": 1.0}, {"a": 2.0}, {"a": 3.0}], ["a"])
    assert out["n_seeds"] == 3 and out["a"] == 2.0 and out["a_ci"][0] < 2.0 < out["a_ci"][1]
    with pytest.raises(KeyError):
        intervals.summarize_seeds([{"a": 1.0}, {}], ["a"])


def test_bootstrap_ci_brackets_the_statistic():
    stat, lo, hi = intervals.bootstrap_ci(np.arange(20.0), n_boot=500)
    assert lo < stat == 9.5 < hi
