"""Estimators for many owners: every estimator against closed-form 8- and 10-player games, budgets
counted in distinct coalitions, and the n-owner digits game's construction."""

from types import SimpleNamespace

import numpy as np
import pytest

from copystudy.attribution import closed_form_games, coalition_game, royalty, shapley, shapley_estimators
from copystudy.experiments.royalty_shares import estimators as est
from copystudy.experiments.royalty_shares import summary as royalty_summary
from copystudy.experiments.royalty_shares import steps as royalty_shares

AIRPORT_COSTS = [1.0, 2.0, 2.0, 4.0, 5.0, 7.0, 8.0, 12.0]  # 8 players
MAJORITY = ([5, 4, 3, 3, 2, 2, 1, 1, 1, 1], 12)  # 10 players, quota 12 of 23
GAMES = {
    "airport8": (closed_form_games.airport_game(AIRPORT_COSTS), closed_form_games.airport_shapley(AIRPORT_COSTS), 8),
    "glove8": (closed_form_games.glove_game(3, 5), closed_form_games.glove_shapley(3, 5), 8),
    "majority10": (closed_form_games.weighted_majority_game(*MAJORITY), closed_form_games.weighted_majority_shapley(*MAJORITY), 10),
}


def mean_share_error(name, game, exact, n, fraction, seeds=range(6)):
    budget = est.budget_of(fraction, n)
    errs = [np.abs(royalty.royalty_shares(est.run_estimator(name, game, n, budget, s)[0])
                   - royalty.royalty_shares(exact)).sum() for s in seeds]
    return float(np.mean(errs))


@pytest.mark.parametrize("game_name", list(GAMES))
@pytest.mark.parametrize("name", list(est.ESTIMATORS))
def test_every_estimator_approaches_the_closed_form_values(name, game_name):
    game, exact, n = GAMES[game_name]
    even = np.abs(royalty.royalty_shares(exact) - 1 / n).sum()  # what paying everyone the same scores
    small, large = (mean_share_error(name, game, exact, n, f) for f in (0.10, 0.50))
    # half the coalitions buys a payout closer to the truth than an even split ...
    assert large < even, (large, even)
    # ... and closer than a tenth of them (on average over seeds)
    assert large < small, (small, large)


@pytest.mark.parametrize("name", ["KernelSHAP (paired, ours)", "shapiq UnbiasedKernelSHAP", "shapiq SVARM"])
def test_regression_and_monte_carlo_estimators_are_exact_with_every_coalition(name):
    game, exact, n = GAMES["airport8"]
    phi, distinct, _ = est.run_estimator(name, game, n, 2**n, seed=3)
    assert distinct == 2**n
    np.testing.assert_allclose(phi, exact, atol=1e-5)  # shapiq's solver leaves ~1e-6 of rounding


@pytest.mark.parametrize("name", list(est.ESTIMATORS))
@pytest.mark.parametrize("fraction", [0.10, 0.25, 0.50])
def test_the_budget_counts_every_distinct_coalition_the_game_is_asked(name, fraction):
    inner, _, n = GAMES["airport8"]
    asked = []

    def game(coalitions):  # the real game (a model per coalition): record everything it is asked
        c = np.atleast_2d(coalitions)
        asked.extend(map(tuple, c))
        return inner(c)

    budget = est.budget_of(fraction, n)
    phi, distinct, calls = est.run_estimator(name, game, n, budget, seed=1)
    assert len(set(asked)) == distinct <= budget
    if est.ESTIMATORS[name][1]:  # counts calls: no room left for one more antithetic pair (2(n-1) coalitions)
        assert distinct > budget - 2 * (n - 1) and calls >= distinct
    else:
        assert distinct == calls == budget


def test_sampling_estimators_get_more_calls_when_they_repeat_coalitions():
    game, _, n = GAMES["airport8"]
    _, distinct, calls = est.run_estimator("permutation (antithetic, ours)", game, n, 128, seed=0)
    assert distinct <= 128 < calls  # prefixes of size 1 and n-1 repeat across permutations


def test_counting_game_remembers_and_counts():
    seen = []
    counted = shapley_estimators.CountingGame(lambda c: seen.append(len(c)) or np.atleast_2d(c).sum(1).astype(float), 3)
    c = shapley.coalition_matrix(3)[[1, 3, 1, 7]]
    np.testing.assert_array_equal(counted(c), [1, 2, 1, 3])
    np.testing.assert_array_equal(counted(c[:2]), [1, 2])
    assert counted.calls == 6 and counted.distinct == 3 and counted.masks == [1, 3, 7] and seen == [3]


def test_regression_is_exact_on_the_full_table_and_names_what_it_lacks():
    game, exact, n = GAMES["glove8"]
    table = shapley.table_from_game(game, n)
    np.testing.assert_allclose(shapley_estimators.regression_shapley(dict(enumerate(table)), n), exact, atol=1e-10)
    with pytest.raises(shapley_estimators.MissingCoalitions) as err:
        shapley_estimators.regression_shapley({m: table[m] for m in range(1, 2**n)}, n)
    assert err.value.needed == [0]
    few = {0: table[0], 2**n - 1: table[-1], 1: table[1], 3: table[3]}
    with pytest.raises(shapley_estimators.MissingCoalitions) as err:
        shapley_estimators.regression_shapley(few, n)
    # the coalitions it names are enough: with them the system is solvable
    shapley_estimators.regression_shapley({**few, **{m: table[m] for m in err.value.needed}}, n)


def test_planned_coalitions_are_the_ones_the_estimator_asks():
    game, _, n = GAMES["airport8"]
    for name in est.ESTIMATORS:
        fn = est.ESTIMATORS[name][0]
        plan = shapley_estimators.planned_coalitions(lambda g, m, b: fn(g, m, b, 5), n, 40)
        asked = shapley_estimators.CountingGame(game, n)
        fn(asked, n, 40, 5)
        assert asked.masks == plan, name


# ---------------------------------------------------------------- the n-owner digits game
MODEL = {"family": "diffusion", "block_channels": [8, 16], "layers_per_block": 1, "attention": False,
         "num_train_timesteps": 20}


def configs(steps=2):
    return (coalition_game.TrainConfig(steps, 8, seed=0),
            coalition_game.TrainConfig(steps, 8, seed=0, public_replay=0.5))


def test_parts_per_class():
    assert est.parts_per_class(8, 5) == [2, 2, 2, 1, 1]
    assert est.parts_per_class(10, 5) == [2] * 5 and est.parts_per_class(11, 5) == [3, 2, 2, 2, 2]
    with pytest.raises(ValueError):
        est.parts_per_class(4, 5)


def test_game_construction_invariants(tmp_path):
    pretrain, finetune = configs()
    game = est.build_game([0, 1, 2, 3, 4], 8, MODEL, pretrain, finetune, tmp_path)
    data = royalty_shares.GameData(["digits"], 16, digit_owners=[0, 1, 2, 3, 4])
    digits = royalty_shares.build_games(data, MODEL, pretrain, finetune, tmp_path)["digits"]
    assert game.n == 8 and len(set(game.owners)) == 8
    assert game.owners[:2] == ["digit0-light", "digit0-bold"] and game.owners[-1] == "digit4"
    # same public data, model and base as the digits game: its base model is a cache hit
    assert game.base_key() == digits.base_key()
    np.testing.assert_array_equal(game.public_images, digits.public_images)
    # each class's parts partition its works, lighter strokes first, and keep its prompt
    for k, cls_works in enumerate(digits.works):
        mine = [i for i, p in enumerate(game.prompts()) if p == digits.prompts()[k]]
        together = np.concatenate([game.works[i] for i in mine])
        assert sorted(map(bytes, together)) == sorted(map(bytes, cls_works))
        inks = [game.works[i].reshape(len(game.works[i]), -1).sum(1) for i in mine]
        assert all(a.max() <= b.min() for a, b in zip(inks, inks[1:]))
        assert all(len(game.works[i]) >= len(cls_works) // len(mine) for i in mine)
    assert list(est.prompts(game)) == [int(p) for p in digits.prompts()]
    np.testing.assert_array_equal(est.owner_prompt(game), [0, 0, 1, 1, 2, 2, 3, 4])
    twin = est.with_finetune_seed(game, 7)
    assert twin.finetune.seed == 7 and game.finetune.seed == 0 and twin.base_key() == game.base_key()


def test_small_game_end_to_end(tmp_path):
    """3 owners from 2 classes (8 coalitions, 2-step fine-tunes): tables, exact payouts, errors, metrics."""
    pretrain, finetune = configs()
    game = est.build_game([0, 1], 3, MODEL, pretrain, finetune, tmp_path)
    images, labels, index = est.generate(game, 2, sample_steps=4, guidance=1.0, seed=0)
    assert images.shape == (4, 1, 8, 8) and list(index) == [0, 0, 1, 1]
    tables = est.utility_tables(game, images, labels, index, n_strata=4, n_decoder=2)
    assert tables.shape == (2, 8) and np.isfinite(tables).all()
    pay = est.exact_payouts(game, tables)
    np.testing.assert_allclose(pay["shares"].sum(1)[pay["shares"].sum(1) > 0], 1.0)
    errors = est.estimator_errors(tables, fractions=[0.75, 1.0], repeats=3)
    assert (errors.distinct_coalitions <= errors.budget).all()
    summary = est.error_table(errors)
    m = est.metrics(est.Estimated(game, pay, tables, summary, [0.75, 1.0]))
    assert m["estimator_game_n_owners"] == 3 and m["outputs_from_independent_replicate"] is True
    for name in est.ESTIMATORS:
        key = f"estimator_share_l1_error_{est.metric_key(name)}_100pct"
        lo, hi = m[f"{key}_ci"]
        assert 0 <= lo <= hi  # an L1 error, and its interval, are not negative
        assert m[f"estimator_mean_distinct_coalitions_{est.metric_key(name)}_100pct"] <= 8
    assert m["estimator_share_l1_error_kernelshap_100pct"] < 1e-5  # exact with every coalition
    # metrics.json keeps what the verdicts need: the table read back from it is the table
    back = est.table_from_metrics(m).sort_values(["estimator", "fraction"])
    summary = summary.sort_values(["estimator", "fraction"])
    np.testing.assert_allclose(back.share_l1_error, summary.share_l1_error)
    np.testing.assert_allclose(back.mean_distinct_coalitions, summary.mean_distinct_coalitions)
    assert any("best" in line or "exact" in line for line in royalty_summary.estimator_verdicts(m))


def test_summary_and_verdicts_on_a_known_table():
    """An additive game plus noise on 4 players: at 100% the regression estimators are exact and the
    verdict says so instead of comparing rounding errors; intervals hold their means and stay >= 0."""
    n, rng = 4, np.random.default_rng(0)
    c = shapley.coalition_matrix(n).astype(float)
    tables = np.stack([c @ rng.normal(size=n) + rng.normal(scale=0.3, size=2**n) for _ in range(3)])
    summary = est.error_table(est.estimator_errors(tables, [0.5, 1.0], repeats=3))
    assert (summary.share_l1_error_low >= 0).all()  # an error's t interval is cut at 0
    game = SimpleNamespace(n=n, owners=list("abcd"))
    pay = {"prompted_class_share": np.array([0.5]), "even_class_share": np.array([0.25]),
           "prompted_class_top": np.array([1.0])}
    m = est.metrics(est.Estimated(game, pay, tables, summary, [0.5, 1.0]))
    lines = royalty_summary.estimator_verdicts(m)
    full = next(line for line in lines if line.startswith("[100%"))
    assert "exact" in full and "KernelSHAP (paired, ours)" in full
    assert "a real game" in lines[0]
