"""Royalty shares, baselines, the shell-company split, glyph rendering and the coalition-model cache."""

import numpy as np
import pytest

from copystudy.attribution import coalition_game, coalition_recipes
from copystudy.common import model_cache
from copystudy.common.glyphs import glyph_owners, render_glyph, typefaces
from copystudy.attribution.royalty import (
    leave_one_out_shares, prompt_payouts, prompted_owner_metrics, royalty_shares, shapley_royalty_shares,
    similarity_shares,
)
from copystudy.attribution.closed_form_games import airport_game, glove_game
from copystudy.attribution.shapley import table_from_game


def test_royalty_shares_clip_and_normalise():
    np.testing.assert_allclose(royalty_shares([2.0, -1.0, 6.0]), [0.25, 0.0, 0.75])
    np.testing.assert_allclose(royalty_shares([-1.0, -2.0]), [0.0, 0.0])  # nobody added anything
    m = royalty_shares(np.array([[1.0, 1.0], [3.0, 1.0]]), axis=1)
    np.testing.assert_allclose(m, [[0.5, 0.5], [0.75, 0.25]])


def test_shapley_shares_average_over_outputs_before_clipping():
    # two outputs: player 0 adds +3 then -1 (mean +1); player 1 adds +1 both times
    table = np.zeros((4, 2))
    table[1] = [3, -1]
    table[2] = [1, 1]
    table[3] = table[1] + table[2]
    phi, shares = shapley_royalty_shares(table)
    np.testing.assert_allclose(phi, [1.0, 1.0])
    np.testing.assert_allclose(shares, [0.5, 0.5])


def test_leave_one_out_differs_from_shapley_on_glove_game():
    table = table_from_game(glove_game(1, 2), 3)
    loo, shares = leave_one_out_shares(table)
    np.testing.assert_allclose(loo, [1, 0, 0])  # each right glove is redundant given the other
    np.testing.assert_allclose(shares, [1, 0, 0])
    _, srs = shapley_royalty_shares(table)
    np.testing.assert_allclose(srs, [2 / 3, 1 / 6, 1 / 6])


def test_prompt_payouts_and_metrics():
    # 2 prompts x 2 outputs; prompt p's outputs are explained by owner p only
    table = np.zeros((4, 4))
    table[1, :2] = table[3, :2] = 5  # owner 0 raises prompt 0's outputs
    table[2, 2:] = table[3, 2:] = 7  # owner 1 raises prompt 1's outputs
    pay = prompt_payouts(table, np.array([0, 0, 1, 1]), 2)
    np.testing.assert_allclose(pay["shares"], np.eye(2))
    np.testing.assert_allclose(pay["shapley"], [[5, 0], [0, 7]])
    metrics = prompted_owner_metrics(pay["shares"])
    assert metrics == {"prompted_owner_top_share_rate": 1.0, "mean_prompted_share": 1.0}
    half = prompted_owner_metrics(np.array([[0.2, 0.8], [0.1, 0.9]]))
    assert half["prompted_owner_top_share_rate"] == 0.5 and abs(half["mean_prompted_share"] - 0.55) < 1e-12
    # shells: owners 0 and 1 together are the prompted owner of prompt 0
    summed = prompted_owner_metrics(np.array([[0.3, 0.3, 0.4]]), prompted_owner=[[0, 1]])
    assert summed["prompted_owner_top_share_rate"] == 1.0 and abs(summed["mean_prompted_share"] - 0.6) < 1e-12


def test_similarity_shares_vote_by_nearest_works():
    a = np.zeros((5, 1, 2, 2))
    b = np.ones((5, 1, 2, 2))
    shares = similarity_shares(np.full((2, 1, 2, 2), 0.1), [a, b], k=5)
    np.testing.assert_allclose(shares, [1.0, 0.0])
    shares = similarity_shares(np.stack([np.full((1, 2, 2), 0.1), np.full((1, 2, 2), 0.9)]), [a, b], k=5)
    np.testing.assert_allclose(shares, [0.5, 0.5])


def test_shell_companies_change_shapley_in_a_known_game():
    # airport game: the owner of the costliest need splits into two shells with the same need. By
    # Littlechild-Owen, before: phi = (1/3, 5/6, 17/6); after: (1/4, 7/12, 19/12, 19/12), so the shells
    # take 19/24 of the total instead of 17/24.
    costs = [1.0, 2.0, 4.0]
    _, before = shapley_royalty_shares(table_from_game(airport_game(costs), 3))
    _, after = shapley_royalty_shares(table_from_game(airport_game(costs + [4.0]), 4))
    np.testing.assert_allclose(before, [1 / 12, 5 / 24, 17 / 24])
    np.testing.assert_allclose(after, [1 / 16, 7 / 48, 19 / 48, 19 / 48])
    assert after[2] + after[3] > before[2]


def test_glyphs_render_every_typeface():
    faces = typefaces("Ag")
    assert "DejaVuSans" in faces and "cmex10" not in faces and len(faces) >= 10
    g = render_glyph(faces["DejaVuSans"], "A", size=16)
    assert g.shape == (16, 16) and 0 <= g.min() and g.max() <= 1 and g.sum() > 5
    # a serif and a sans A differ, the same one twice does not
    assert np.abs(g - render_glyph(faces["DejaVuSerif"], "A", size=16)).sum() > 1
    np.testing.assert_array_equal(g, render_glyph(faces["DejaVuSans"], "A", size=16))
    owners, public = glyph_owners(["DejaVuSans", "cmtt10"], chars="Ab1", size=8)
    assert set(owners) == {"DejaVuSans", "cmtt10"} and not set(owners) & set(public)
    assert owners["cmtt10"].shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="valid:"):
        glyph_owners(["NoSuchFont"], chars="A")


def tiny_game(cache, seed=0):
    rng = np.random.default_rng(seed)
    owners = {f"o{i}": rng.random((4, 1, 4, 4)).astype(np.float32) for i in range(2)}
    public = {"p": rng.random((6, 1, 4, 4)).astype(np.float32)}
    config = {"image_size": 4, "block_channels": [8, 16], "attention": False, "num_train_timesteps": 10}
    return coalition_game.build_game(owners, public, config, coalition_game.TrainConfig(2, 4), coalition_game.TrainConfig(2, 4), cache)


def test_coalition_cache_second_run_trains_nothing(tmp_path):
    game = tiny_game(tmp_path)
    results = game.for_each_coalition(lambda mask, model: model.n_params)
    assert len(results) == 4
    assert game.training_summary()["models_trained"] == 4  # base + 3 fine-tunes
    again = tiny_game(tmp_path)
    again.for_each_coalition(lambda mask, model: None)
    assert again.training_summary()["models_trained"] == 0
    # the same model comes back
    a, b = game.model([0, 1]), again.model([0, 1])
    for pa, pb in zip(a.unet.parameters(), b.unet.parameters()):
        assert np.array_equal(pa.detach().numpy(), pb.detach().numpy())
    # a different seed is a different model: retrained
    other = coalition_game.build_game({f"o{i}": w for i, w in enumerate(game.works)}, {"p": game.public_images}, game.model_config,
                         coalition_game.TrainConfig(2, 4, seed=1), coalition_game.TrainConfig(2, 4, seed=1), tmp_path)
    other.model([0])
    assert other.training_summary()["models_trained"] == 2


def test_split_game_partitions_one_owners_works(tmp_path):
    game = tiny_game(tmp_path)
    split = coalition_game.split_game(game, 0, seed=1)
    assert split.owners == ["o0-shell1", "o0-shell2", "o1"]
    halves = np.concatenate([split.works[0], split.works[1]])
    assert len(split.works[0]) == len(split.works[1]) == 2  # every work in exactly one half
    assert sorted(map(bytes, halves)) == sorted(map(bytes, game.works[0]))
    np.testing.assert_array_equal(split.works[2], game.works[1])
    assert all((labels == game.work_labels[0][0]).all() for labels in split.work_labels[:2])  # the prompt stays
    with pytest.raises(ValueError, match="fewer than 2 works"):
        coalition_game.split_game(coalition_game.split_game(split, 0), 0)


def test_shell_split_reuses_cached_models(tmp_path):
    game = tiny_game(tmp_path)
    game.for_each_coalition(lambda mask, model: None)
    split = coalition_game.split_game(game, 0, seed=0)
    split.for_each_coalition(lambda mask, model: None)
    # 8 coalitions; those with both shells or neither are the 4 old ones: only 4 are trained
    assert split.training_summary()["finetunes_trained"] == 4


def test_copycat_game_adds_near_duplicates_and_reuses_cached_models(tmp_path):
    game = tiny_game(tmp_path)
    game.for_each_coalition(lambda mask, model: None)
    copy = coalition_game.copycat_game(game, 0, noise=0.02, seed=0)
    assert copy.owners == ["o0", "o1", "o0-copycat"]
    diff = copy.works[2] - game.works[0]
    assert 0 < np.abs(diff).max() < 0.1 and copy.works[2].min() >= 0 and copy.works[2].max() <= 1
    np.testing.assert_array_equal(copy.work_labels[2], game.work_labels[0])  # sold under the same prompt
    copy.for_each_coalition(lambda mask, model: None)
    # 8 coalitions; the 4 without the copy-cat are the old ones: only the 4 with it are trained
    assert copy.training_summary()["finetunes_trained"] == 4


def test_outputs_come_from_an_independent_replicate(tmp_path):
    """No output is scored by the model that generated it, nor by any coalition model of any scored seed."""
    from copystudy.experiments.royalty_shares import steps as rs

    games = {"g": tiny_game(tmp_path)}
    seeded = rs.replicates(games, rs.training_seeds(0, 2))
    assert [g["g"].finetune.seed for g in seeded.values()] == [0, 1]
    assert all(g["g"].base_key() == games["g"].base_key() for g in seeded.values())  # one shared base
    outputs = rs.generate_replicates(seeded, samples_per_prompt=2, null_samples=1, sample_steps=2, guidance=1.0)
    for s, by_game in outputs.items():
        out = by_game["g"]
        assert out.generator_seed == s + rs.REPLICATE_OFFSET
        assert list(out.prompt_owner) == [0, 0, 1, 1, -1] and out.images.shape == (5, 1, 4, 4)
    assert rs.independent(seeded, outputs)
    # the replicate is a different model from the scored full coalition
    full = seeded[0]["g"].model([0, 1])
    replicate = rs.with_finetune_seed(games["g"], rs.REPLICATE_OFFSET).model([0, 1])
    assert any(not np.array_equal(a.detach().numpy(), b.detach().numpy())
               for a, b in zip(full.unet.parameters(), replicate.unet.parameters()))
    # outputs scored by their own generator's seed are caught
    outputs[0]["g"].generator_seed = 1
    assert not rs.independent(seeded, outputs)


def test_unprompted_composition_counts_what_outputs_look_like(tmp_path):
    from copystudy.experiments.royalty_shares import checks as royalty_checks

    game = tiny_game(tmp_path)
    # two outputs equal to o0's works, one to o1's, one to a public work: o0 2/4, o1 1/4, public pays nobody
    images = np.stack([game.works[0][0], game.works[0][1], game.works[1][0], game.public_images[0]])
    np.testing.assert_allclose(royalty_checks.composition(images, game, k=1), [0.5, 0.25])


def test_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("COPYSTUDY_CACHE", str(tmp_path / "c"))
    assert model_cache.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    assert model_cache.cache_dir(tmp_path / "d") == tmp_path / "d"


def test_build_game_rejects_plus_in_owner_names(tmp_path):
    with pytest.raises(ValueError, match=r"may not contain '\+'"):
        coalition_game.build_game({"a+b": np.zeros((1, 1, 4, 4))}, {"p": np.zeros((1, 1, 4, 4))}, {}, coalition_game.TrainConfig(1),
                     coalition_game.TrainConfig(1), tmp_path)


def test_public_replay_fine_tunes_the_empty_coalition_too(tmp_path):
    game = tiny_game(tmp_path)
    game.finetune = coalition_game.TrainConfig(2, 4, public_replay=0.5, embed_lr_scale=10.0)
    base = game.base_model()
    empty = game.model([])
    assert empty is not base
    assert any(not np.array_equal(a.detach().numpy(), b.detach().numpy())
               for a, b in zip(base.unet.parameters(), empty.unet.parameters()))
    game.for_each_coalition(lambda mask, model: None)
    assert game.training_summary()["finetunes_trained"] == 4  # empty, {0}, {1}, {0, 1}
    # prompt embeddings start at the null embedding in the base
    emb = base.unet.class_embedding.weight.detach().numpy()
    np.testing.assert_array_equal(emb[1], emb[game.null_id])
    np.testing.assert_array_equal(emb[2], emb[game.null_id])


def test_cache_keys_come_from_data_settings_and_the_recipe_version(tmp_path, monkeypatch):
    """Not from source text: a docstring edit retrains nothing, a recipe change bumps its version."""
    game = tiny_game(tmp_path)
    key = game.base_key()
    assert tiny_game(tmp_path).base_key() == key
    assert tiny_game(tmp_path, seed=1).base_key() != key  # other works
    monkeypatch.setattr(coalition_recipes.PixelRecipe, "version", "pixel-2")
    assert game.base_key() != key
