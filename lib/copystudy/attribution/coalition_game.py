"""The royalty game's players and models: one diffusion model per coalition of copyright owners.

A base model is pre-trained on public data; the model of coalition S fine-tunes the base on the union
of S's works (the empty coalition is the base). Two recipes build these models, chosen once per game:

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
settings and the recipe's declared version.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from copystudy import models
from copystudy.common.model_cache import canonical_order, fingerprint, load_or_train
from copystudy.models.diffusion import DiffusionModel


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


@dataclass
class CoalitionGame:
    """Owners' works and the public data of one royalty game, plus how its models are built."""

    owners: list[str]
    works: list[np.ndarray]  # per owner [n_i, C, H, W] in [0, 1]
    work_labels: list[np.ndarray]  # per owner: the prompt (conditioning id or text) of each work
    public_images: np.ndarray
    public_labels: np.ndarray
    num_classes: int  # public classes + prompts + 1 (null); 0 for a text-conditioned model
    model_config: dict
    pretrain: TrainConfig
    finetune: TrainConfig
    cache: Path
    log: list[dict] = field(default_factory=list)  # one entry per model obtained: trained or loaded
    loaded_base: object = field(default=None, repr=False)  # a pretrained base, loaded once per game
    control_works: float = 0.0  # LoRA recipe: the empty coalition's control trains as on this many works
    _base: object = field(default=None, init=False, repr=False)  # the empty coalition's model, once obtained

    @property
    def recipe(self):
        return recipe_for(self.model_config)

    @property
    def pretrained(self) -> bool:
        """A pretrained text-to-image model with LoRA fine-tunes, rather than a small UNet trained here."""
        return isinstance(self.recipe, LoraRecipe)

    @property
    def null_id(self) -> int:
        return self.num_classes - 1

    @property
    def n(self) -> int:
        return len(self.owners)

    def base_key(self) -> str:
        return self.recipe.base_key(self)

    def prompt_ids(self) -> list[int]:
        return sorted({int(v) for labels in self.work_labels for v in np.unique(labels)})

    def prompts(self) -> list:
        """The prompt of each owner: what its works carry and what its outputs are generated from."""
        return [labels[0] for labels in self.work_labels]

    def base_model(self):
        """The model of the empty coalition (obtained once per game; every coalition fine-tunes a clone)."""
        if self._base is None:
            self._base, meta, trained = self.recipe.base(self)
            self.log.append({"kind": "base", "coalition": (), "trained": trained,
                             "train_seconds": meta["train_seconds"]})
        return self._base

    def coalition_data(self, members) -> tuple[np.ndarray, np.ndarray]:
        members = sorted(members)
        if not members:
            return (np.zeros((0, *self.works[0].shape[1:]), np.float32), np.zeros(0, self.work_labels[0].dtype))
        return np.concatenate([self.works[i] for i in members]), np.concatenate([self.work_labels[i] for i in members])

    def model(self, members):
        """The model of coalition `members` (owner indices): the base fine-tuned on their works."""
        members = tuple(sorted({int(i) for i in members}))
        if not members and self.recipe.empty_is_base(self):
            return self.base_model()
        model, meta, trained = self.recipe.finetune(self, members, *self.coalition_data(members))
        self.log.append({"kind": "finetune", "coalition": members, "trained": trained,
                         "train_seconds": meta["train_seconds"]})
        return model

    def noise_plan(self, n_images: int, n_strata: int, n_decoder: int, seed: int):
        """Common random numbers for the bound, in the model's own space (pixels, or VAE latents)."""
        from copystudy.compression.likelihood import NoisePlan

        base = self.base_model()
        return NoisePlan.make(n_images, self.recipe.model_shape(base), base.scheduler.config.num_train_timesteps,
                              n_strata=n_strata, n_decoder=n_decoder, seed=seed)

    def for_each_coalition(self, fn, desc: str = "coalitions"):
        """fn(mask, model) for every coalition mask 0..2**n-1 (bit i = owner i); returns the results.
        One game's round of `play`."""
        return play([(self, fn)], desc)[0]

    def __getstate__(self):
        """Pickled for a worker without the models it holds: the worker loads the base from the
        cache (or the pretrained model from its folder or hub id) itself."""
        return {**self.__dict__, "loaded_base": None, "_base": None}

    def training_summary(self) -> dict:
        trained = {e["coalition"] for e in self.log if e["trained"] and e["kind"] == "finetune"}
        finetunes = {e["coalition"]: e["train_seconds"] for e in self.log if e["kind"] == "finetune"}
        return {"models_trained": sum(e["trained"] for e in self.log),
                "finetunes_trained": len(trained),
                "finetune_seconds_mean": float(np.mean(list(finetunes.values()))) if finetunes else 0.0,
                "finetune_seconds_total": float(np.sum(list(finetunes.values()))) if finetunes else 0.0}


def play(rounds: list[tuple[CoalitionGame, object]], desc: str = "coalitions") -> list[list]:
    """fn(mask, model) for every coalition of every (game, fn) round; one list of results per round.

    Every (round, coalition) is one task of a single stage (`copystudy.common.parallel.map_tasks`): here in
    turn, or on a Dask cluster's workers, which load each base from the model cache (bases are obtained
    here first, so no two workers train one). Models are dropped after use; each game's log gets the
    entries of its own coalitions, in order."""
    from copystudy.common import parallel

    for game, _ in rounds:
        game.base_model()
    items = [(game, fn, mask) for game, fn in rounds for mask in range(2**game.n)]
    results = parallel.map_tasks(_coalition_task, items, desc=desc)
    out, k = [], 0
    for game, _ in rounds:
        chunk, k = results[k: k + 2**game.n], k + 2**game.n
        for _, entries in chunk:
            game.log += entries
        out.append([value for value, _ in chunk])
    return out


def _coalition_task(item):
    """One coalition: its model (trained or loaded) and fn(mask, model); returns the value and the
    game's log entries the model added (taken out of `game.log`, which the caller extends in order)."""
    game, fn, mask = item
    start = len(game.log)
    value = fn(mask, game.model([i for i in range(game.n) if mask >> i & 1]))
    entries = game.log[start:]
    del game.log[start:]
    return value, entries


def build_game(owner_works: dict[str, np.ndarray], public: dict[str, np.ndarray], model_config: dict,
               pretrain: TrainConfig, finetune: TrainConfig, cache: Path,
               prompt_template: str = "a painting in the style of {owner}") -> CoalitionGame:
    """A game with one prompt per owner: public classes get ids 0..P-1, owner i the prompt id P+i.

    With a pretrained model (model_config has name_or_path) the prompts are text from
    `prompt_template`, and public data (for an optional null LoRA) may be empty."""
    recipe = recipe_for(model_config)
    pretrained = isinstance(recipe, LoraRecipe)
    bad = [name for name in owner_works if "+" in name]
    if bad:
        raise ValueError(f"owner names may not contain '+' (the coalition separator): {bad}")
    if not owner_works:
        raise ValueError("a royalty game needs at least one owner")
    if not public and not pretrained:
        raise ValueError("a royalty game needs public data for the base model")
    if pretrained and "{owner}" not in prompt_template:
        raise ValueError(f"prompt_template must contain {{owner}}, got {prompt_template!r}")
    P = len(public)
    owners = list(owner_works)
    works = [np.asarray(owner_works[o], np.float32) for o in owners]
    if public:
        public_images = np.concatenate([np.asarray(v, np.float32) for v in public.values()])
        public_labels = np.concatenate([recipe.labels(k, j, len(v), prompt_template)
                                        for j, (k, v) in enumerate(public.items())])
    else:
        public_images, public_labels = np.zeros((0, *works[0].shape[1:]), np.float32), np.zeros(0, object)
    work_labels = [recipe.labels(o, P + i, len(w), prompt_template) for i, (o, w) in enumerate(zip(owners, works))]
    return CoalitionGame(owners, works, work_labels, public_images, public_labels,
                         0 if pretrained else P + len(owners) + 1, dict(model_config), pretrain, finetune, Path(cache),
                         control_works=float(np.mean([len(w) for w in works])))


def split_game(game: CoalitionGame, owner: int, seed: int = 0) -> CoalitionGame:
    """Shell companies: owner `owner`'s works split at random between two owners (same prompt, same
    base). Coalitions holding both halves or neither train on the same works as before: cache hits."""
    works = game.works[owner]
    if len(works) < 2:
        raise ValueError(f"owner {game.owners[owner]!r} has fewer than 2 works to split")
    perm = np.random.default_rng(seed).permutation(len(works))
    halves = [np.sort(perm[: len(works) // 2]), np.sort(perm[len(works) // 2:])]
    owners, new_works, new_labels = [], [], []
    for i, o in enumerate(game.owners):
        parts = [(f"{o}-shell{j}", half) for j, half in enumerate(halves, start=1)] if i == owner else [(o, None)]
        for name, half in parts:
            owners.append(name)
            new_works.append(game.works[i] if half is None else works[half])
            new_labels.append(game.work_labels[i] if half is None else game.work_labels[i][half])
    return dataclasses.replace(game, owners=owners, works=new_works, work_labels=new_labels, log=[])


def copycat_game(game: CoalitionGame, owner: int, noise: float = 0.03, seed: int = 0) -> CoalitionGame:
    """A copy-cat joins: a new last owner whose works are near-duplicates of owner `owner`'s (each work
    plus Gaussian pixel noise of standard deviation `noise`, clipped to [0, 1]) sold under the same prompt.
    It adds no work of its own. Coalitions without it train on exactly the works they trained on before:
    cache hits."""
    works = game.works[owner]
    rng = np.random.default_rng(seed)
    copies = np.clip(works + rng.normal(0.0, noise, works.shape), 0.0, 1.0).astype(np.float32)
    return dataclasses.replace(game, owners=[*game.owners, f"{game.owners[owner]}-copycat"], works=[*game.works, copies],
                               work_labels=[*game.work_labels, game.work_labels[owner].copy()], log=[])
