"""How the royalty game's models are trained: the training settings and the two recipes.

- `PixelRecipe`, the small UNet trained here. Conditioning ids are laid out as
    0 .. P-1      public classes (public typefaces, public digit classes),
    P .. P+m-1    one prompt per style/brand (what a prompt names; an owner's works carry it),
    P+m           "null": no prompt.
  A fraction of every training set is repeated with the null id (classifier-free-guidance style), and
  after pre-training every prompt embedding is set to the null embedding. So a coalition that lacks
  the owner a prompt names answers that prompt as its unconditional model of public + S's works:
  owners with similar works still raise the likelihood of an output, as in the text-to-image setting.
- `LoraRecipe`, a pretrained text-to-image model (Stable Diffusion): prompts come from a template
  ("a painting in the style of {owner}"), the base is the pretrained model (plus, if there is public
  data and pretrain.steps > 0, a "null" LoRA trained on it), and coalition S is the base with a LoRA
  adapter fine-tuned on S's works (a fixed number of epochs when finetune.epochs is set); with public
  data the empty coalition is a control LoRA fine-tuned on it. Only the adapters are cached.

Every model comes from the content-addressed cache (`copystudy.common.model_cache`), keyed by its data,
settings and the recipe's declared version. The game that uses them is `coalition_game`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from copystudy import models
from copystudy.common.model_cache import canonical_order, fingerprint, load_or_train
from copystudy.models.diffusion import DiffusionModel

if TYPE_CHECKING:
    from copystudy.attribution.coalition_game import CoalitionGame


@dataclass
class TrainConfig:
    """How a model is trained (pre-training or one coalition's fine-tune)."""

    steps: int
    batch_size: int = 32
    lr: float = 1e-3
    uncond_fraction: float = 0.25  # share of works repeated with the null id
    seed: int = 0
    embed_lr_scale: float = 1.0  # learning rate of the prompt embeddings, as a multiple of lr
    public_replay: float = 0.0  # fine-tunes: share of every batch drawn from the public data
    epochs: float | None = None  # LoRA recipe: train this many epochs of the data instead of `steps`

    def as_dict(self) -> dict:
        """The settings that key the cache (epochs only when set, so keys made before it existed hold)."""
        return {k: v for k, v in self.__dict__.items() if k != "epochs" or v is not None}

    def steps_for(self, n_works: float) -> int:
        """Training steps for n_works works: ceil(epochs x n_works / batch_size) with epochs, else `steps`.
        With epochs, a coalition with more data trains longer (the re-implementation's fixed 10 epochs)."""
        if self.epochs is None:
            return int(self.steps)
        return max(1, math.ceil(self.epochs * n_works / self.batch_size))


def with_null_repeats(images, labels, null_id: int, uncond_fraction: float, seed: int):
    """Canonically ordered works plus a seeded subset repeated with the null id."""
    order = canonical_order(images, labels)
    images, labels = np.asarray(images)[order], np.asarray(labels)[order]
    rng = np.random.default_rng(seed)
    n_null = int(round(uncond_fraction * len(images)))
    pick = np.sort(rng.choice(len(images), size=n_null, replace=False)) if n_null else np.zeros(0, np.int64)
    return (np.concatenate([images, images[pick]]),
            np.concatenate([labels, np.full(len(pick), null_id, labels.dtype)]))


class PixelRecipe:
    """The small UNet trained here: pre-trained on public data, every coalition a full fine-tune of it
    (with the same share of public data replayed in every batch, the empty coalition included)."""

    version = "pixel-1"  # bump when a change alters the models this recipe trains

    def labels(self, game_name: str, index: int, n: int, template: str) -> np.ndarray:
        return np.full(n, index, np.int64)

    def base_key(self, game: "CoalitionGame") -> str:
        return fingerprint("base", game.public_images, game.public_labels, game.num_classes, game.model_config,
                           game.pretrain.as_dict(), game.prompt_ids(), self.version)

    def base(self, game: "CoalitionGame"):
        def make():
            cfg = game.pretrain
            model = models.build({"family": "diffusion", **game.model_config}, num_classes=game.num_classes, seed=cfg.seed)
            start = time.perf_counter()
            images, labels = with_null_repeats(game.public_images, game.public_labels, game.null_id,
                                               cfg.uncond_fraction, cfg.seed)
            model.fit(images, cfg.steps, cfg.batch_size, cfg.lr, labels=labels, seed=cfg.seed, progress_bar=False,
                      embed_lr_scale=cfg.embed_lr_scale)
            with torch.no_grad():
                emb = model.unet.class_embedding.weight
                for p in game.prompt_ids():
                    emb[p] = emb[game.null_id]
            return model, {"train_seconds": time.perf_counter() - start, "n_works": int(len(game.public_images))}

        return load_or_train(self.base_key(game), game.cache, make, "base", DiffusionModel.load)

    def empty_is_base(self, game: "CoalitionGame") -> bool:
        return game.finetune.public_replay <= 0

    def finetune(self, game: "CoalitionGame", members: tuple, images, labels):
        order = canonical_order(images, labels)
        cfg = game.finetune
        key = fingerprint("finetune", game.base_key(), images[order], labels[order], cfg.as_dict(), self.version)

        def make():
            model = game.base_model().clone()
            start = time.perf_counter()
            data = with_null_repeats(images, labels, game.null_id, cfg.uncond_fraction, cfg.seed)
            public = with_null_repeats(game.public_images, game.public_labels, game.null_id, cfg.uncond_fraction,
                                       cfg.seed)
            model.fit(data[0], cfg.steps, cfg.batch_size, cfg.lr, labels=data[1], seed=cfg.seed, progress_bar=False,
                      replay=public, replay_share=cfg.public_replay, embed_lr_scale=cfg.embed_lr_scale)
            return model, {"train_seconds": time.perf_counter() - start, "n_works": int(len(images)),
                           "owners": [game.owners[i] for i in members]}

        return load_or_train(key, game.cache, make, "finetune", DiffusionModel.load)

    def model_shape(self, model) -> tuple:
        return model.image_shape


_PRETRAINED: dict = {}  # the last pretrained pipeline this process loaded, by its spec


def pretrained_model(model_config: dict):
    """The pretrained text-to-image model of a spec, loaded once per process (a Dask worker that runs
    many coalitions of one game loads it once)."""
    key = repr(sorted(model_config.items()))
    if key not in _PRETRAINED:
        _PRETRAINED.clear()
        _PRETRAINED[key] = models.build({"family": "diffusion", **model_config})
    return _PRETRAINED[key]


class LoraRecipe:
    """A pretrained text-to-image model; every coalition is one LoRA adapter on it (the re-implementation's).

    Fine-tunes train `finetune.steps_for(n)` steps on a coalition's n works: with `finetune.epochs` set, a
    fixed number of epochs, so a coalition with more data trains longer, as in the re-implementation.
    The empty coalition, when there is public data, is a control fine-tune: a LoRA trained from the same
    base on the public works (with their own prompts) for `control_steps` steps, the steps of an
    average single owner's fine-tune. Every other coalition's model differs from the base by its works
    *and* by having been fine-tuned at all; the control removes the second difference (as the pixel
    game's empty coalition gets its replay-only fine-tune), so v(S) - v(empty) measures what S's works
    add, not what any LoRA fine-tune of this length on this kind of data adds. An average owner's
    length (rather than 0 steps, or epochs over all the public data) makes the step from the empty
    coalition to a one-owner coalition change the data and not the amount of training.
    """

    version = "lora-2"  # lora-2: epochs, and the empty coalition's control fine-tune

    def labels(self, name: str, index: int, n: int, template: str) -> np.ndarray:
        return np.array([template.format(owner=name)] * n, dtype=object)

    def base_key(self, game: "CoalitionGame") -> str:
        where = {k: v for k, v in game.model_config.items() if k not in ("device", "family")}
        return fingerprint("pretrained-base", game.public_images, game.public_labels, where,
                           game.pretrain.as_dict(), self.version)

    def base(self, game: "CoalitionGame"):
        """The pretrained model, plus a "null" LoRA on the public data when there is any and
        pretrain.steps > 0 (or pretrain.epochs > 0)."""
        if game.loaded_base is None:
            game.loaded_base = pretrained_model(game.model_config)
        pretrained, cfg = game.loaded_base, game.pretrain
        if not len(game.public_images) or (cfg.epochs if cfg.epochs is not None else cfg.steps) <= 0:
            return pretrained, {"train_seconds": 0.0}, False

        def make():
            model = pretrained.clone()
            start = time.perf_counter()
            model.fit(game.public_images, cfg.steps_for(len(game.public_images)), cfg.batch_size, cfg.lr,
                      labels=game.public_labels, seed=cfg.seed, desc="null LoRA on public data")
            return model, {"train_seconds": time.perf_counter() - start, "n_works": int(len(game.public_images))}

        return load_or_train(self.base_key(game), game.cache, make, "base", pretrained.load_adapter)

    def empty_is_base(self, game: "CoalitionGame") -> bool:
        return not len(game.public_images)

    def control_steps(self, game: "CoalitionGame") -> int:
        """Steps of the empty coalition's control fine-tune: those of an average single owner's fine-tune
        (of the game as built: a shell-company split keeps its control, so the empty coalition is a cache hit)."""
        return game.finetune.steps_for(game.control_works)

    def finetune(self, game: "CoalitionGame", members: tuple, images, labels):
        base, cfg = game.base_model(), game.finetune
        if members:
            steps = cfg.steps_for(len(images))
        else:  # the control: public works with their own prompts
            images, labels, steps = game.public_images, game.public_labels, self.control_steps(game)
        order = canonical_order(images, labels)
        key = fingerprint("lora", game.base_key(), images[order], labels[order], cfg.as_dict(), steps, self.version)

        def make():
            model = base.clone()
            start = time.perf_counter()
            model.fit(images[order], steps, cfg.batch_size, cfg.lr, labels=labels[order], seed=cfg.seed,
                      progress_bar=False)
            return model, {"train_seconds": time.perf_counter() - start, "n_works": int(len(images)), "steps": steps,
                           "owners": [game.owners[i] for i in members]}

        return load_or_train(key, game.cache, make, "finetune", base.load_adapter)

    def model_shape(self, model) -> tuple:
        return model.latent_shape


def recipe_for(model_config: dict):
    """LoRA on a pretrained model when the spec names one (name_or_path), else the small UNet."""
    return LoraRecipe() if models.is_pretrained(model_config) else PixelRecipe()
