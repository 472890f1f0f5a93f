"""Intervals for numbers that depend on chance: training seeds, sampled documents, counted successes.

The study's rule: a number that depends on training noise is the mean over at least 3 seeds with a
95% interval (Student's t over the seeds); a rate of successes gets a Wilson interval; an
association gets a permutation p-value; a verdict that compares two numbers says whether their
intervals separate. `summarize_seeds` turns one metrics dict per seed into the mean and
`<key>_ci = [low, high]` that metrics.json holds.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

LEVEL = 0.95


def mean_ci(values, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and Student-t interval of the mean: (mean, low, high). One value gives (v, v, v) -- no
    spread can be estimated, which `summarize_seeds` records as n_seeds = 1."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def wilson(successes: int, n: int, level: float = LEVEL) -> tuple[float, float, float]:
    """A rate k/n and its Wilson score interval (sound at 0/n and n/n, unlike the normal interval)."""
    if n <= 0:
        raise ValueError(f"wilson needs n > 0 trials, got {n}")
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return p, (0.0 if successes == 0 else lo), (1.0 if successes == n else hi)  # exact at the ends


def bootstrap_ci(values, statistic=np.mean, n_boot: int = 2000, level: float = LEVEL,
                 seed: int = 0) -> tuple[float, float, float]:
    """The statistic of `values` and its percentile bootstrap interval (resampling the values)."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    boots = np.array([statistic(x[rng.integers(0, x.size, x.size)]) for _ in range(n_boot)])
    lo, hi = np.quantile(boots, [0.5 - level / 2, 0.5 + level / 2])
    return float(statistic(x)), float(lo), float(hi)


def separated(a, b) -> bool:
    """Do two intervals [low, high] not overlap?"""
    return bool(a[1] < b[0] or b[1] < a[0])


def compare(name_a: str, ci_a, name_b: str, ci_b, unit: str = "") -> str:
    """A verdict sentence on two intervals: which is lower, and whether the intervals separate."""
    lower, higher = (name_a, name_b) if (ci_a[0] + ci_a[1]) <= (ci_b[0] + ci_b[1]) else (name_b, name_a)
    if separated(ci_a, ci_b):
        return f"{lower} is lower than {higher}, and their 95% intervals separate"
    return f"{lower} is lower than {higher} on average, but their 95% intervals overlap: no separation{unit}"


def permutation_test(x, y, n_perm: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Spearman correlation of x and y and its two-sided permutation p-value (y shuffled n_perm
    times; p counts the observed ordering too, so it is never 0)."""
    x = stats.rankdata(np.asarray(x, dtype=float))
    y = stats.rankdata(np.asarray(y, dtype=float))
    if x.size != y.size or x.size < 3:
        raise ValueError(f"permutation_test needs two samples of equal size >= 3, got {x.size} and {y.size}")

    def rho(a, b):
        a, b = a - a.mean(), b - b.mean()
        d = math.sqrt((a * a).sum() * (b * b).sum())
        return float((a * b).sum() / d) if d else 0.0

    observed = rho(x, y)
    rng = np.random.default_rng(seed)
    hits = sum(abs(rho(x, rng.permutation(y))) >= abs(observed) - 1e-12 for _ in range(n_perm))
    return observed, (hits + 1) / (n_perm + 1)


def summarize_seeds(per_seed: list[dict], keys, level: float = LEVEL) -> dict:
    """One metrics dict per seed -> {key: mean, key + '_ci': [low, high], 'n_seeds': n} for each
    numeric key (and keys missing from the per-seed dicts are an error, not silently dropped)."""
    if not per_seed:
        raise ValueError("summarize_seeds needs the metrics of at least one seed")
    out = {"n_seeds": len(per_seed)}
    for key in keys:
        missing = [i for i, m in enumerate(per_seed) if key not in m]
        if missing:
            raise KeyError(f"{key} is missing from the metrics of seed(s) {missing}")
        mean, lo, hi = mean_ci([m[key] for m in per_seed], level)
        out[key], out[f"{key}_ci"] = mean, [lo, hi]
    return out
