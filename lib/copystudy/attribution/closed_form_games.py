"""Games whose Shapley values are known in closed form (glove, airport, weighted majority): the
references the estimators and the exact enumeration are tested against."""

from __future__ import annotations

from math import comb, factorial

import numpy as np

from copystudy.attribution.shapley import ValueFunction


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
