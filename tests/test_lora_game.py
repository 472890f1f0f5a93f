"""The paper's LoRA game on a text-to-image pipeline that has learned something: a tiny Stable Diffusion
trained here on public typefaces, then the royalty game on three typeface owners through the same
functions a paper-scale run calls (build_games on a data_dir, generate, utilities, payouts)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from copystudy.attribution import coalition_game, coalition_recipes
from copystudy.common import glyphs
from copystudy.experiments.royalty_shares import steps as experiment
from copystudy.models.tiny_pipeline import glyph_pipeline, train_tiny_pipeline

# three owners of clearly different styles (sans, bold serif, italic), chosen before any run
OWNERS = ("DejaVuSans", "DejaVuSerif-Bold", "STIXGeneralItalic")
# public folders of the game (null LoRA and the empty coalition's control); the pipeline saw them too
GAME_PUBLIC = ("DejaVuSerif", "cmr10", "cmss10")
TEMPLATE = "a glyph by {owner}"
SIZE = 16


def glyph_folder(root, faces, size: int = SIZE):
    """root/<typeface>/<i>.png: white ink on black, 8-bit RGB, as a reader's folder is laid out."""
    from PIL import Image

    for face in faces:
        (root / face).mkdir(parents=True, exist_ok=True)
        for i, g in enumerate(glyphs.render_typeface(face, size=size)[:, 0]):
            Image.fromarray(np.round(g * 255).astype(np.uint8)).convert("RGB").save(root / face / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the trained weights are reproducible, and two threads on a busy 2-core machine
    run many times slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained_pipeline(tmp_path_factory):
    """The tiny pipeline trained on every usable typeface but the default owners (once per session)."""
    start = time.perf_counter()
    folder = glyph_pipeline(tmp_path_factory.mktemp("tiny-sd") / "glyph-sd", exclude=glyphs.DEFAULT_OWNERS,
                            template=TEMPLATE)
    return folder, time.perf_counter() - start


def test_tiny_pipeline_is_deterministic_and_cached(tmp_path):
    """Same seed, same weights; a folder trained with the same settings is reused, not retrained."""
    import torch
    from safetensors.torch import load_file

    works = {"a": glyphs.render_typeface("cmr10", "AB", SIZE), "b": glyphs.render_typeface("cmss10", "AB", SIZE)}
    kw = dict(vae_steps=3, unet_steps=3, batch_size=4)
    one, two = train_tiny_pipeline(tmp_path / "one", works, **kw), train_tiny_pipeline(tmp_path / "two", works, **kw)
    a, b = (load_file(f / "unet" / "diffusion_pytorch_model.safetensors") for f in (one, two))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    stamp = (one / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert train_tiny_pipeline(one, works, **kw) == one
    assert (one / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_lora_game_on_a_trained_pipeline_pays_the_prompted_owner(trained_pipeline, tmp_path, monkeypatch):
    """The prompted owner gets the largest Shapley royalty share for at least 2 of the 3 prompts, with
    LoRA fine-tunes of a fixed number of epochs and a control fine-tune for the empty coalition."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder, pipeline_seconds = trained_pipeline
    data_dir = glyph_folder(tmp_path / "glyphs", OWNERS + GAME_PUBLIC)
    start = time.perf_counter()
    # the re-implementation's recipe where it transfers: LoRA rank 8 / alpha 8, batch 4, 10 epochs, 20 outputs
    # per prompt, 64 strata; the learning rate is that of the tiny pipeline's scale (1e-3, not SD's 1e-4)
    model = {"family": "diffusion", "name_or_path": str(folder), "device": "cpu", "lora_rank": 8, "lora_alpha": 8}
    pretrain = coalition_game.TrainConfig(0, 4, 1e-3, seed=0)  # no null LoRA: the pipeline's pre-training is public
    finetune = coalition_game.TrainConfig(0, 4, 1e-3, seed=0, epochs=10)
    data = experiment.GameData([], SIZE, data_dir=str(data_dir), data_dir_public=list(GAME_PUBLIC), n_folder_owners=3,
                               prompt_template=TEMPLATE)
    games = experiment.build_games(data, model, pretrain, finetune, tmp_path / "cache")
    game = games["folder"]
    assert game.owners == sorted(OWNERS) and game.pretrained
    # guidance 3 (the small-UNet game's): at SD's 7.5 this tiny model's bold-serif outputs saturate to blocks
    outputs, _ = experiment.generate(games, samples_per_prompt=20, sample_steps=25, guidance=3.0, seed=0)
    out = outputs["folder"]
    terms = experiment.utilities(game, out, n_strata=64, n_decoder=4, batch_size=64, seed=0)
    pay, table = experiment.payouts("folder", game, terms, out, similarity_k=10)
    seconds = time.perf_counter() - start
    shares = pay["shares"]
    print(f"\npipeline {pipeline_seconds:.0f} s, game {seconds:.0f} s; owners {game.owners}\nshares (row = prompt)\n"
          f"{np.round(shares, 3)}\nShapley bits\n{np.round(pay['shapley'], 2)}")
    # the fine-tunes: epochs, so the full coalition trains three times as long as one owner; a control
    steps = {e["coalition"] for e in game.log if e["kind"] == "finetune" and e["trained"]}
    assert () in steps and len(steps) == 2 ** 3
    assert game.finetune.steps_for(len(game.works[0]) * 3) == 3 * game.finetune.steps_for(len(game.works[0]))
    # the outputs are not all one image, and some coalition explains them better than the control
    assert len({o.tobytes() for o in out.images}) == len(out.images)
    assert shares.sum() > 0 and np.isfinite(table["shapley_bits"]).all()
    on_top = [shares[p, p] > np.delete(shares[p], p).max() for p in range(3)]  # strictly: an all-0 row is a miss
    assert sum(on_top) >= 2, shares


def test_epochs_set_the_steps_and_leave_step_configs_unchanged():
    """steps = ceil(epochs x works / batch); without epochs the settings (and so the pixel game's cache keys)
    are exactly the old ones."""
    fixed = coalition_game.TrainConfig(150, 32, 2e-3, 0.25, 0, embed_lr_scale=30.0, public_replay=0.5)
    assert "epochs" not in fixed.as_dict() and fixed.steps_for(0) == fixed.steps_for(500) == 150
    by_epochs = coalition_game.TrainConfig(0, 4, epochs=10)
    assert [by_epochs.steps_for(n) for n in (1, 30, 62, 120)] == [3, 75, 155, 300]
    assert by_epochs.as_dict()["epochs"] == 10


def test_the_empty_coalition_is_a_control_fine_tune_that_a_split_keeps():
    """With public data the empty coalition is a LoRA on it, as long as an average owner's fine-tune, and a
    shell-company split keeps that length (so both games share the control); without public data it is the base."""
    works = {"a": np.zeros((6, 3, 16, 16), np.float32), "b": np.ones((2, 3, 16, 16), np.float32)}
    public = {"p": np.full((5, 3, 16, 16), 0.5, np.float32)}
    cfg = coalition_game.TrainConfig(0, 4, epochs=10)
    game = coalition_game.build_game(works, public, {"name_or_path": "somewhere"}, cfg, cfg, "unused")
    recipe = game.recipe
    assert isinstance(recipe, coalition_recipes.LoraRecipe) and not recipe.empty_is_base(game)
    assert game.control_works == 4.0 and recipe.control_steps(game) == 10  # ceil(10 x 4 / 4)
    split = coalition_game.split_game(game, 0)
    assert split.n == 3 and recipe.control_steps(split) == recipe.control_steps(game)
    alone = coalition_game.build_game(works, {}, {"name_or_path": "somewhere"}, cfg, cfg, "unused")
    assert recipe.empty_is_base(alone)
