"""The royalty game's players and models: one diffusion model per coalition of copyright owners.

A base model is pre-trained on public data; the model of coalition S fine-tunes the base on the union
of S's works (the empty coalition is the base, or its control fine-tune). How each model is trained is
the game's recipe (`coalition_recipes`: the small UNet trained here, or LoRA on a pretrained
text-to-image model), chosen once per game from its model spec. `play` runs a function on every
coalition's model of one or more games as one stage of parallel tasks; `split_game` and
`copycat_game` derive the shell-company and copy-cat variants of a game.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from copystudy.attribution.coalition_recipes import LoraRecipe, TrainConfig, recipe_for

# TrainConfig is part of a game's description (its pretrain and finetune fields), so it is named here too
__all__ = ["CoalitionGame", "TrainConfig", "build_game", "copycat_game", "play", "split_game"]


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
