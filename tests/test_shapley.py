"""Shapley estimators against games with known values, and the axioms."""

import numpy as np
import pytest

from copystudy.attribution.closed_form_games import (
    airport_game, airport_shapley, glove_game, glove_shapley, weighted_majority_game, weighted_majority_shapley,
)
from copystudy.attribution.shapley import (
    coalition_index, coalition_matrix, estimate_shapley, exact_shapley, game_from_table, leave_one_out, table_from_game,
)
from copystudy.attribution.shapley_estimators import kernel_shapley, permutation_shapley


def test_coalition_layout():
    m = coalition_matrix(3)
    assert m.shape == (8, 3)
    assert m[5].tolist() == [True, False, True]
    assert coalition_index([0, 2]) == 5 and coalition_index(m[6]) == 6


@pytest.mark.parametrize("left,right", [(1, 1), (1, 2), (2, 3), (3, 3), (2, 5)])
def test_glove_game_exact_matches_closed_form(left, right):
    phi = exact_shapley(table_from_game(glove_game(left, right), left + right))
    np.testing.assert_allclose(phi, glove_shapley(left, right), atol=1e-12)


def test_glove_game_textbook_values():
    # one left glove, two right gloves: the scarce glove gets 2/3, each right glove 1/6
    np.testing.assert_allclose(glove_shapley(1, 2), [2 / 3, 1 / 6, 1 / 6])


def test_airport_game_exact_matches_littlechild_owen():
    costs = [1.0, 3.0, 3.0, 7.0, 10.0, 2.5]
    phi = exact_shapley(table_from_game(airport_game(costs), len(costs)))
    np.testing.assert_allclose(phi, airport_shapley(costs), atol=1e-12)
    # textbook numbers for costs 1, 3, 3, 7, 10 (segments shared by the players who need them)
    np.testing.assert_allclose(airport_shapley([1, 3, 3, 7, 10]), [0.2, 0.7, 0.7, 2.7, 5.7], atol=1e-12)


def test_weighted_majority_security_council():
    # UN Security Council: 5 permanent members (weight 7), 10 others (weight 1), quota 39.
    # Shapley-Shubik index: 0.1963 and 0.001865 (published values).
    weights = [7] * 5 + [1] * 10
    phi = exact_shapley(table_from_game(weighted_majority_game(weights, 39), 15))
    np.testing.assert_allclose(phi, weighted_majority_shapley(weights, 39), atol=1e-12)
    assert abs(phi[0] - 0.1963) < 5e-5 and abs(phi[5] - 0.001865) < 5e-7


def test_weighted_majority_small():
    # [3; 2, 1, 1]: the big player is pivotal in 4 of 6 orders
    np.testing.assert_allclose(weighted_majority_shapley([2, 1, 1], 3), [2 / 3, 1 / 6, 1 / 6])


def random_game(n, seed=0):
    rng = np.random.default_rng(seed)
    table = rng.normal(size=2**n)
    return table


def test_efficiency_symmetry_null_player():
    n = 5
    rng = np.random.default_rng(1)
    base = rng.normal(size=2**n)
    m = coalition_matrix(n)
    # make player 4 a null player (v(S + 4) = v(S)) and players 0, 1 symmetric
    table = base.copy()
    for k in range(2**n):
        members = set(np.flatnonzero(m[k]))
        canon = members - {4}
        if (0 in canon) != (1 in canon):  # swap 0 and 1 to a canonical representative
            canon = (canon - {0, 1}) | {0}
        table[k] = base[coalition_index(sorted(canon))]
    phi = exact_shapley(table)
    assert abs(phi.sum() - (table[-1] - table[0])) < 1e-12  # efficiency
    assert abs(phi[0] - phi[1]) < 1e-12  # symmetry
    assert abs(phi[4]) < 1e-12  # null player


def test_exact_is_linear_over_trailing_axes():
    tables = np.stack([random_game(4, s) for s in range(3)], axis=1)  # [16, 3]
    phi = exact_shapley(tables)
    for j in range(3):
        np.testing.assert_allclose(phi[:, j], exact_shapley(tables[:, j]))


def test_leave_one_out():
    table = table_from_game(airport_game([1, 2, 4]), 3)
    np.testing.assert_allclose(leave_one_out(table), [0, 0, 2])


def test_permutation_antithetic_converges_and_is_efficient():
    costs = np.array([1.0, 2.0, 2.0, 4.0, 6.0, 9.0, 9.5, 12.0])
    game = airport_game(costs)
    truth = airport_shapley(costs)
    phi = permutation_shapley(game, len(costs), budget=20000, seed=0)
    assert abs(phi.sum() - costs.max()) < 1e-9  # each permutation telescopes to v(N) - v(empty)
    np.testing.assert_allclose(phi, truth, atol=0.15)
    # with two players the antithetic pair (a, b), (b, a) gives the exact values
    np.testing.assert_allclose(permutation_shapley(glove_game(1, 1), 2, budget=4), [0.5, 0.5])


def test_antithetic_pairs_are_exact_for_additive_plus_symmetric_games():
    # for n = 3 every permutation and its reverse cover a player at positions k and n-1-k
    table = table_from_game(weighted_majority_game([2, 1, 1], 3), 3)
    errors = {}
    for anti in (True, False):
        est = [permutation_shapley(game_from_table(table), 3, budget=2 + 2 * 20, seed=s, antithetic=anti)
               for s in range(30)]
        errors[anti] = np.mean([np.abs(e - [2 / 3, 1 / 6, 1 / 6]).max() for e in est])
    assert errors[True] < errors[False]


def test_kernelshap_paired_matches_exact():
    weights = [4, 3, 2, 2, 1, 1, 1]
    game = weighted_majority_game(weights, 8)
    truth = weighted_majority_shapley(weights, 8)
    # full budget: exact (border trick enumerates everything)
    np.testing.assert_allclose(kernel_shapley(game, 7, budget=2**7), truth, atol=1e-6)
    phi = kernel_shapley(game, 7, budget=100, seed=0)
    assert abs(phi.sum() - 1.0) < 1e-6  # efficiency by construction
    assert np.abs(phi - truth).max() < 0.1


def test_estimate_shapley_dispatch_and_errors():
    table = table_from_game(glove_game(1, 2), 3)
    np.testing.assert_allclose(estimate_shapley(table), [2 / 3, 1 / 6, 1 / 6])
    np.testing.assert_allclose(estimate_shapley(table, estimator="kernel", budget=8), [2 / 3, 1 / 6, 1 / 6], atol=1e-9)
    with pytest.raises(ValueError, match="valid: exact, permutation, kernel"):
        estimate_shapley(table, estimator="banzhaf")
    with pytest.raises(ValueError, match="budget"):
        estimate_shapley(table, estimator="permutation")
    with pytest.raises(ValueError, match="2\\*\\*n rows"):
        exact_shapley(np.zeros(6))
