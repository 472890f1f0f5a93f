"""Shapley values of cooperative games: exact enumeration, sampling estimators, closed-form games.

A game on n players is given either as a *table* (numpy array whose first axis has length 2**n,
row k holding v(S) for the coalition S whose members are the set bits of k: player i is in S iff
bit i of k is 1; trailing axes are allowed, e.g. one utility per generated output) or as a *value
function* in shapiq's convention: it takes a boolean matrix [m, n] of coalitions and returns [m]
values. Exact enumeration is the reference; the estimators (permutation sampling with antithetic
pairs, KernelSHAP with paired sampling from shapiq) are for games too large to enumerate.

Shapley value: phi_i = sum_{S not containing i} |S|! (n-|S|-1)! / n! * (v(S + i) - v(S)).
"""

from __future__ import annotations

from math import comb, factorial
from typing import Callable

import numpy as np

ValueFunction = Callable[[np.ndarray], np.ndarray]

ESTIMATORS = ("exact", "permutation", "kernel", "regression")

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


# ---------------------------------------------------------------- coalitions as bit masks
def coalition_matrix(n: int) -> np.ndarray:
    """All 2**n coalitions as a boolean matrix [2**n, n]; row k has player i iff bit i of k is set."""
    k = np.arange(2**n)[:, None]
    return ((k >> np.arange(n)[None, :]) & 1).astype(bool)


def coalition_index(members, n: int | None = None) -> int:
    """Bit mask index of a coalition given as an iterable of player indices or a boolean vector."""
    members = np.asarray(list(members) if not isinstance(members, np.ndarray) else members)
    if members.dtype == bool:
        return int(np.sum(1 << np.flatnonzero(members)))
    return int(sum(1 << int(i) for i in set(members.tolist())))


def table_from_game(game: ValueFunction, n: int) -> np.ndarray:
    """Evaluate a value function on all 2**n coalitions, as a table indexed by bit mask."""
    return np.asarray(game(coalition_matrix(n)), dtype=float)


def game_from_table(table: np.ndarray) -> ValueFunction:
    """A shapiq-style value function that looks coalitions up in a table (first axis 2**n)."""
    table = np.asarray(table, dtype=float)
    n = int(round(np.log2(table.shape[0])))
    weights = 1 << np.arange(n)

    def game(coalitions: np.ndarray) -> np.ndarray:
        coalitions = np.atleast_2d(np.asarray(coalitions, dtype=bool))
        return table[coalitions.astype(np.int64) @ weights]

    return game


def _n_players(table: np.ndarray) -> int:
    size = table.shape[0]
    n = int(round(np.log2(size))) if size > 0 else -1
    if size < 1 or 2**n != size:
        raise ValueError(f"a game table needs 2**n rows (one per coalition), got {size}")
    return n


# ---------------------------------------------------------------- exact
def exact_shapley(table: np.ndarray) -> np.ndarray:
    """Exact Shapley values by enumerating all coalitions.

    table: [2**n, ...] values by bit mask (see module docstring). Returns [n, ...]: one value per
    player for each trailing index. Linear in the table, so it also maps per-term arrays (e.g. Monte
    Carlo terms of a likelihood) to per-term Shapley values.
    """
    table = np.asarray(table, dtype=float)
    n = _n_players(table)
    masks = np.arange(2**n)
    sizes = np.array([bin(m).count("1") for m in masks])
    weight = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) if s < n else 0.0 for s in sizes])
    phi = np.zeros((n,) + table.shape[1:])
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        w = weight[without].reshape((-1,) + (1,) * (table.ndim - 1))
        phi[i] = np.sum(w * (table[without | (1 << i)] - table[without]), axis=0)
    return phi


def leave_one_out(table: np.ndarray) -> np.ndarray:
    """Leave-one-out values v(N) - v(N - i) for every player i; [n, ...]."""
    table = np.asarray(table, dtype=float)
    n = _n_players(table)
    full = 2**n - 1
    return np.stack([table[full] - table[full & ~(1 << i)] for i in range(n)])


# ---------------------------------------------------------------- estimators
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


def estimate_shapley(game_or_table, n: int | None = None, estimator: str = "exact", budget: int | None = None,
                     seed: int = 0) -> np.ndarray:
    """One entry point for all estimators. game_or_table: a table [2**n] or a value function (then n)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
    if callable(game_or_table):
        if n is None:
            raise ValueError("n (number of players) is needed with a value function")
        game = game_or_table
        table = None
    else:
        table = np.asarray(game_or_table, dtype=float)
        n = _n_players(table)
        game = game_from_table(table)
    if estimator == "exact":
        return exact_shapley(table if table is not None else table_from_game(game, n))
    if estimator == "regression":
        if table is None:
            table = table_from_game(game, n)
        return regression_shapley({m: float(v) for m, v in enumerate(table) if np.isfinite(v)}, n)
    if budget is None:
        raise ValueError(f"estimator {estimator!r} needs a budget (number of value-function evaluations)")
    if estimator == "permutation":
        return permutation_shapley(game, n, budget, seed=seed)
    return kernel_shapley(game, n, budget, seed=seed)


# ---------------------------------------------------------------- games with known Shapley values
def glove_game(n_left: int, n_right: int) -> ValueFunction:
    """Glove game: players 0..L-1 hold a left glove, the rest a right glove; v(S) = number of pairs."""
    n = n_left + n_right

    def game(coalitions):
        c = np.atleast_2d(np.asarray(coalitions, dtype=bool))
        return np.minimum(c[:, :n_left].sum(1), c[:, n_left:n].sum(1)).astype(float)

    return game


def glove_shapley(n_left: int, n_right: int) -> np.ndarray:
    """Closed-form Shapley values of the glove game.

    A right-glove holder adds a pair exactly when, on its arrival in a uniformly random order, more
    left than right gloves are already present. Its arrival position k is uniform on 0..n-1 and its
    k predecessors a uniform k-subset of the others (hypergeometric), so
    phi_R = 1/n sum_k sum_{a > k-a} C(L,a) C(R-1,k-a) / C(n-1,k); symmetrically for left holders.
    """
    n = n_left + n_right

    def arrival_gain(same: int, other: int) -> float:
        # probability that a holder of one kind finds more of the other kind than of its own
        total = 0.0
        for k in range(n):
            for a in range(0, min(other, k) + 1):  # a holders of the other kind before it
                b = k - a  # holders of its own kind before it
                if b <= same - 1 and a > b:
                    total += comb(other, a) * comb(same - 1, b) / comb(n - 1, k)
        return total / n

    left = arrival_gain(n_left, n_right) if n_left else 0.0
    right = arrival_gain(n_right, n_left) if n_right else 0.0
    return np.array([left] * n_left + [right] * n_right)


def airport_game(costs) -> ValueFunction:
    """Airport (cost-sharing) game: v(S) = max cost of the members of S (the runway S needs)."""
    costs = np.asarray(costs, dtype=float)

    def game(coalitions):
        c = np.atleast_2d(np.asarray(coalitions, dtype=bool))
        return np.where(c, costs[None, :], 0.0).max(axis=1)

    return game


def airport_shapley(costs) -> np.ndarray:
    """Littlechild & Owen (1973): each runway segment is split equally among the players who need it.

    With costs sorted c_(1) <= ... <= c_(n) and c_(0) = 0, phi_(i) = sum_{k<=i} (c_(k) - c_(k-1)) / (n-k+1).
    """
    costs = np.asarray(costs, dtype=float)
    order = np.argsort(costs, kind="stable")
    sorted_costs = costs[order]
    n = len(costs)
    segments = np.diff(np.concatenate([[0.0], sorted_costs])) / (n - np.arange(n))
    phi = np.empty(n)
    phi[order] = np.cumsum(segments)
    return phi


def weighted_majority_game(weights, quota: float) -> ValueFunction:
    """Weighted majority (voting) game: v(S) = 1 if the weights of S reach the quota, else 0."""
    weights = np.asarray(weights, dtype=float)

    def game(coalitions):
        c = np.atleast_2d(np.asarray(coalitions, dtype=bool))
        return (c.astype(float) @ weights >= quota).astype(float)

    return game


def weighted_majority_shapley(weights, quota: int) -> np.ndarray:
    """Shapley-Shubik power index by generating functions (integer weights), without enumeration.

    phi_i = sum_k k!(n-k-1)!/n! * #{S not containing i: |S| = k, quota - w_i <= w(S) < quota}, where the
    counts by size and total weight come from a dynamic programme over the other players.
    """
    weights = [int(w) for w in weights]
    n, total = len(weights), sum(weights)
    phi = np.zeros(n)
    for i in range(n):
        count = np.zeros((n, total + 1))  # count[k, w]: subsets of the others of size k and weight w
        count[0, 0] = 1
        for j, wj in enumerate(weights):
            if j == i:
                continue
            count[1:, wj:] += count[:-1, : total + 1 - wj].copy()
        for k in range(n):
            swing = count[k, max(quota - weights[i], 0) : max(quota, 0)].sum()
            phi[i] += factorial(k) * factorial(n - k - 1) / factorial(n) * swing
    return phi
