"""Shapley values of cooperative games: coalitions as bit masks, exact enumeration, one entry point.

A game on n players is given either as a *table* (numpy array whose first axis has length 2**n,
row k holding v(S) for the coalition S whose members are the set bits of k: player i is in S iff
bit i of k is 1; trailing axes are allowed, e.g. one utility per generated output) or as a *value
function* in shapiq's convention: it takes a boolean matrix [m, n] of coalitions and returns [m]
values. Exact enumeration is the reference; the estimators for games too large to enumerate are in
`shapley_estimators`, games with closed-form values in `closed_form_games`.

Shapley value: phi_i = sum_{S not containing i} |S|! (n-|S|-1)! / n! * (v(S + i) - v(S)).
"""

from __future__ import annotations

from math import factorial
from typing import Callable

import numpy as np

ValueFunction = Callable[[np.ndarray], np.ndarray]

ESTIMATORS = ("exact", "permutation", "kernel", "regression")


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


def n_players(table: np.ndarray) -> int:
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
    n = n_players(table)
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
    n = n_players(table)
    full = 2**n - 1
    return np.stack([table[full] - table[full & ~(1 << i)] for i in range(n)])


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
        n = n_players(table)
        game = game_from_table(table)
    if estimator == "exact":
        return exact_shapley(table if table is not None else table_from_game(game, n))
    from copystudy.attribution.shapley_estimators import kernel_shapley, permutation_shapley, regression_shapley

    if estimator == "regression":
        if table is None:
            table = table_from_game(game, n)
        return regression_shapley({m: float(v) for m, v in enumerate(table) if np.isfinite(v)}, n)
    if budget is None:
        raise ValueError(f"estimator {estimator!r} needs a budget (number of value-function evaluations)")
    if estimator == "permutation":
        return permutation_shapley(game, n, budget, seed=seed)
    return kernel_shapley(game, n, budget, seed=seed)
