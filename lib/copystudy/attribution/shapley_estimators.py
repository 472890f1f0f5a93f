"""Estimators of Shapley values for games too large to enumerate (value functions in shapiq's convention,
see `shapley`): permutation sampling with antithetic pairs, KernelSHAP with paired sampling, shapiq's
approximators, KernelSHAP's regression over the coalitions at hand; and the bookkeeping that holds
them to a budget of distinct coalitions (the models a real game must train).
"""

from __future__ import annotations

from math import comb
from typing import Callable

import numpy as np

from copystudy.attribution.shapley import ValueFunction

# shapiq's Shapley-value approximators compared in the estimator study: name -> (class name, options).
# The regression and Monte Carlo ones count distinct coalitions and are exact at a budget of 2**n; the
# sampling ones count calls, repeats included (see `at_distinct_budget`).
SHAPIQ_APPROXIMATORS = {
    "KernelSHAP": ("KernelSHAP", {"pairing_trick": True}),
    "UnbiasedKernelSHAP": ("UnbiasedKernelSHAP", {"pairing_trick": True}),
    "SVARM": ("SVARM", {}),
    "StratifiedSamplingSV": ("StratifiedSamplingSV", {}),
    "PermutationSamplingSV": ("PermutationSamplingSV", {}),
    "OwenSamplingSV": ("OwenSamplingSV", {}),
}


def permutation_shapley(game: ValueFunction, n: int, budget: int, seed: int = 0, antithetic: bool = True) -> np.ndarray:
    """Permutation sampling (Castro et al. 2009), by default with antithetic pairs.

    Each sampled permutation is walked player by player; the marginal contribution of each player
    on arrival is one sample of its Shapley value. With antithetic=True every permutation is followed
    by its reverse, which makes early and late arrivals cancel (Mitchell et al. 2022). budget counts
    value-function evaluations: v(empty) and v(N) once, then n-1 per permutation. Every permutation
    telescopes to v(N) - v(empty), so the estimate satisfies efficiency exactly.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    rng = np.random.default_rng(seed)
    per_perm = max(n - 1, 1)
    n_perm = max((budget - 2) // per_perm, 2 if antithetic else 1)
    if antithetic:
        n_perm = max(2, n_perm - n_perm % 2)
    perms = []
    while len(perms) < n_perm:
        p = rng.permutation(n)
        perms.append(p)
        if antithetic and len(perms) < n_perm:
            perms.append(p[::-1].copy())
    perms = np.array(perms)
    # prefixes of length 1..n-1 of every permutation, evaluated in one batch
    prefixes = np.zeros((n_perm, n - 1, n), dtype=bool)
    for j in range(n - 1):
        prefixes[np.arange(n_perm), j:, perms[:, j]] = True
    ends = np.asarray(game(np.stack([np.zeros(n, bool), np.ones(n, bool)])), dtype=float)
    inner = np.asarray(game(prefixes.reshape(-1, n)), dtype=float).reshape(n_perm, n - 1) if n > 1 else np.zeros((n_perm, 0))
    values = np.concatenate([np.full((n_perm, 1), ends[0]), inner, np.full((n_perm, 1), ends[1])], axis=1)
    marginals = np.diff(values, axis=1)  # [n_perm, n]: contribution of perms[:, j]
    phi = np.zeros(n)
    np.add.at(phi, perms.ravel(), marginals.ravel())
    return phi / n_perm


def kernel_shapley(game: ValueFunction, n: int, budget: int, seed: int = 0, paired: bool = True) -> np.ndarray:
    """KernelSHAP (Lundberg & Lee 2017) with paired (complement) sampling, via shapiq.

    shapiq's implementation also uses the border trick: coalition sizes whose every coalition fits
    in the budget are enumerated, so with budget >= 2**n it is exact. Efficiency holds by
    construction (constrained regression). budget counts distinct coalitions.
    """
    from shapiq.approximator import KernelSHAP

    approximator = KernelSHAP(n=n, pairing_trick=paired, random_state=seed)
    result = approximator.approximate(budget=min(int(budget), 2**n), game=game)
    return np.array([result[(i,)] for i in range(n)], dtype=float)


def shapiq_shapley(name: str, game: ValueFunction, n: int, budget: int, seed: int = 0) -> np.ndarray:
    """First-order Shapley values (index "SV") from one of shapiq's approximators (`SHAPIQ_APPROXIMATORS`),
    with shapiq's own meaning of budget (the number of calls it may make to the game)."""
    import warnings

    from shapiq import approximator as approximators

    if name not in SHAPIQ_APPROXIMATORS:
        raise ValueError(f"unknown shapiq approximator {name!r}; valid: {', '.join(SHAPIQ_APPROXIMATORS)}")
    cls_name, options = SHAPIQ_APPROXIMATORS[name]
    cls = getattr(approximators, cls_name)
    kwargs = {"index": "SV"} if "index" in cls.__init__.__code__.co_varnames else {}
    approximator = cls(n=n, random_state=seed, **kwargs, **options)
    with warnings.catch_warnings():  # shapiq warns when a budget is too small to be exact; that is the point
        warnings.simplefilter("ignore")
        result = approximator.approximate(budget=int(budget), game=game)
    return np.array([result[(i,)] for i in range(n)], dtype=float)


class CountingGame:
    """A value function that remembers what it was asked: `calls` (coalitions asked, repeats included)
    and `distinct` (different coalitions asked: the models a real game must train). Repeats are answered
    from memory, as a model cache would; `masks` lists the distinct coalitions' bit masks in first-asked order."""

    def __init__(self, game: ValueFunction, n: int):
        self.game, self.n, self.calls = game, n, 0
        self._values = np.full(2**n, np.nan)
        self._seen = np.zeros(2**n, bool)
        self._order: list[np.ndarray] = []
        self._weights = 1 << np.arange(n)

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        coalitions = np.atleast_2d(np.asarray(coalitions, dtype=bool))
        masks = coalitions.astype(np.int64) @ self._weights
        self.calls += len(masks)
        unique, first = np.unique(masks, return_index=True)
        fresh = ~self._seen[unique]
        if fresh.any():
            rows = np.sort(first[fresh])  # first-asked order
            self._values[masks[rows]] = np.asarray(self.game(coalitions[rows]), dtype=float)
            self._seen[masks[rows]] = True
            self._order.append(masks[rows])
        return self._values[masks]

    @property
    def distinct(self) -> int:
        return int(self._seen.sum())

    @property
    def masks(self) -> list[int]:
        return [int(m) for m in np.concatenate(self._order)] if self._order else []


def at_distinct_budget(estimator: Callable, game: ValueFunction, n: int, budget: int, max_doubling: int = 3):
    """Run `estimator(game, n, call_budget)` with the largest call budget whose *distinct* coalitions fit
    in `budget`, so that an estimator that counts repeated calls gets the same number of models as one
    that does not. The call budget is found on a game that is 0 everywhere (bisection between `budget`
    and budget * 2**max_doubling calls), so `game` itself is only asked for the coalitions of the final
    run: valid for estimators whose choice of coalitions does not depend on the values (all sampling
    estimators here). Returns (values, distinct coalitions evaluated, calls made)."""
    def distinct(calls: int) -> int:
        counted = CountingGame(_zero_game, n)
        estimator(counted, n, calls)
        return counted.distinct

    if distinct(budget) > budget:
        raise ValueError(f"the estimator asks for {distinct(budget)} distinct coalitions at a budget of {budget} calls")
    lo, hi = budget, budget * 2 ** max_doubling
    if distinct(hi) <= budget:
        lo = hi
    while hi - lo > max(1, lo // 16):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if distinct(mid) <= budget else (lo, mid)
    counted = CountingGame(game, n)
    return estimator(counted, n, lo), counted.distinct, counted.calls


def _zero_game(coalitions: np.ndarray) -> np.ndarray:
    return np.zeros(len(np.atleast_2d(coalitions)))


def planned_coalitions(estimator: Callable, n: int, budget: int) -> list[int]:
    """The coalitions (bit masks, in the order first asked) that `estimator(game, n, budget)` evaluates.
    Valid for estimators whose choice of coalitions does not depend on the values (all sampling
    estimators here): it runs the estimator on a game that is 0 everywhere."""
    counted = CountingGame(_zero_game, n)
    estimator(counted, n, budget)
    return counted.masks


class MissingCoalitions(ValueError):
    """The coalitions given do not determine the estimate; `needed` lists bit masks that would."""

    def __init__(self, message: str, needed: list[int]):
        super().__init__(message)
        self.needed = needed


def shapley_kernel_weight(n: int, size: int) -> float:
    """KernelSHAP's weight of a coalition of `size` players: (n - 1) / (C(n, size) size (n - size))."""
    return (n - 1) / (comb(n, size) * size * (n - size))


def regression_shapley(values: dict[int, float], n: int) -> np.ndarray:
    """KernelSHAP's weighted least squares over exactly the coalitions given (bit mask -> value).

    Fits v(S) - v(empty) ~ sum_{i in S} phi_i with Shapley-kernel weights under the efficiency constraint
    sum phi = v(N) - v(empty); with every coalition it is the exact Shapley value (Charnes et al. 1988),
    with fewer it is the regression restricted to the coalitions at hand (no reweighting for how they
    were chosen). Needs the empty and full coalitions and enough others to tell every owner apart;
    otherwise raises MissingCoalitions naming coalitions that would do.
    """
    full = 2**n - 1
    absent = [m for m in (0, full) if m not in values]
    if absent:
        raise MissingCoalitions("the regression estimator needs the empty and the full coalition", absent)
    if n == 1:
        return np.array([values[full] - values[0]])
    inner = sorted(m for m in values if 0 < m < full)
    total = values[full] - values[0]

    def design(masks):
        z = ((np.array(masks, dtype=np.int64)[:, None] >> np.arange(n)) & 1).astype(float)
        return z[:, :-1] - z[:, -1:]  # phi_last = total - sum of the others

    rank = np.linalg.matrix_rank(design(inner)) if inner else 0
    if rank < n - 1:
        needed, have = [], list(inner)
        for m in [1 << i for i in range(n)] + [full & ~(1 << i) for i in range(n)]:
            if rank == n - 1:
                break
            if m not in values and np.linalg.matrix_rank(design(have + [m])) > rank:
                needed.append(m)
                have.append(m)
                rank += 1
        raise MissingCoalitions(f"the regression estimator needs coalitions that tell all {n} owners apart "
                                f"(the {len(inner)} between empty and full have rank "
                                f"{np.linalg.matrix_rank(design(inner)) if inner else 0} of the {n - 1} needed)",
                                needed)
    z, w = design(inner), np.array([shapley_kernel_weight(n, bin(m).count("1")) for m in inner])
    y = np.array([values[m] - values[0] for m in inner]) - ((np.array(inner) >> (n - 1)) & 1) * total
    sw = np.sqrt(w)
    beta = np.linalg.lstsq(z * sw[:, None], y * sw, rcond=None)[0]
    return np.concatenate([beta, [total - beta.sum()]])
