"""Notebook 05, royalty shares: the main games, played over training seeds (Wang et al. 2024).

Games (typefaces as artists, digit classes as brands, or the reader's own folder) are built in
`copystudy.attribution.coalition_game`; an independent replicate of the full coalition's model generates
outputs for every owner's prompt, every coalition's model scores them (`copystudy.attribution.coalition_utility`),
and each prompt's outputs are paid by Shapley royalty share beside leave-one-out and a similarity baseline
(`copystudy.attribution.royalty`). Each function is one step of the notebook and returns data; the checks
that trivial attribution could not pass are in `checks`, the estimator game in `estimators`, metrics.json
and the verdicts in `summary`, the figures in `figures`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from copystudy import models
from copystudy.attribution import coalition_game, coalition_utility, royalty, shapley
from copystudy.common import parallel
from copystudy.common.data import digits, image_folder
from copystudy.common.glyphs import glyph_owners as render_glyph_owners
from copystudy.experiments.royalty_shares import folder_roles

DATASETS = ("typefaces", "digits")
# (metrics prefix, key of a payout dict, title) of every method that pays a prompt's outputs
METHODS = (("", "shares", "Shapley royalty share"), ("loo_", "loo_shares", "leave-one-out"),
           ("similarity_", "similarity", "similarity"))


def digit_game_data(digit_owners: list[int]):
    """Digit classes as brands: the listed classes are owners, the others public."""
    images, labels = digits()
    owners = {f"digit{c}": images[labels == c] for c in digit_owners}
    public = {f"digit{c}": images[labels == c] for c in range(10) if c not in digit_owners}
    return owners, public


def folder_game_data(data_dir: str, data_dir_public, n_folder_owners: int, image_size: int, pretrained: bool):
    """The reader's folder: the first n_folder_owners sub-folders are owners (or all but data_dir_public)."""
    folders = image_folder(data_dir, image_size, channels=3 if pretrained else 1)
    names = list(folders)
    owner_names, public_names = folder_roles(names, data_dir_public, n_folder_owners)
    unknown = [p for p in public_names if p not in folders]
    if unknown:
        raise ValueError(f"data_dir_public {unknown} are not sub-folders of {data_dir}; valid: {names}")
    if not owner_names or (not public_names and not pretrained):
        raise ValueError(f"data_dir needs owner and public sub-folders; got owners {owner_names}, public {public_names}")
    return {n: folders[n] for n in owner_names}, {n: folders[n] for n in public_names}


@dataclass
class GameData:
    """What the games are played on: the built-in data sets (typefaces, digits), or the reader's folder
    (data_dir: one sub-folder per owner, the rest public) with prompts from `prompt_template`."""

    datasets: list[str]
    image_size: int
    glyph_owners: list = field(default_factory=list)
    glyph_chars: str = ""
    digit_owners: list = field(default_factory=list)
    data_dir: str | None = None
    data_dir_public: list | None = None
    n_folder_owners: int = 5
    prompt_template: str = "a painting in the style of {owner}"


def build_games(data: GameData, model: dict, pretrain, finetune, cache) -> dict[str, coalition_game.CoalitionGame]:
    """Every game to play, by name: the built-in data sets, or one game "folder" on data_dir."""
    if model.get("family") != "diffusion":
        raise ValueError(f"model.family must be 'diffusion' in this notebook, got {model.get('family')!r}")
    pretrained = models.is_pretrained(model)
    if pretrained:  # a bad name_or_path fails here, before any data is rendered or any model trained
        from copystudy.models import loading

        loading.resolve(model["name_or_path"])
    shape = {"resolution": data.image_size} if pretrained else {"image_size": data.image_size, "channels": 1}
    games = {}
    for name in (["folder"] if data.data_dir is not None else list(data.datasets)):
        config = {**shape, **model}
        if name == "typefaces":
            owners, public = render_glyph_owners(data.glyph_owners, data.glyph_chars, data.image_size)
        elif name == "digits":
            owners, public = digit_game_data(data.digit_owners)
            config["image_size"] = 8
        else:
            owners, public = folder_game_data(data.data_dir, data.data_dir_public, data.n_folder_owners,
                                              data.image_size, pretrained)
        games[name] = coalition_game.build_game(owners, public, config, pretrain, finetune, cache,
                                                data.prompt_template)
    return games


def describe(name: str, game) -> str:
    return (f"{name}: {game.n} owners ({', '.join(game.owners)}), {sum(len(w) for w in game.works)} owned works; "
            f"{len(np.unique(game.public_labels))} public classes, {len(game.public_images)} public works; {2 ** game.n} coalition models")


@dataclass
class Outputs:
    images: np.ndarray  # [N, C, H, W], quantised to 8 bits
    labels: np.ndarray  # the prompt each was generated from
    prompt_owner: np.ndarray  # the index of the owner the prompt names; -1: no prompt
    generator_seed: int | None = None  # the fine-tune seed of the full-coalition model that made them


REPLICATE_OFFSET = 10_000  # the generator of training seed s's outputs is fine-tuned with seed s + this


def training_seeds(seed: int, n_seeds: int) -> list[int]:
    """The fine-tune seeds of the coalition models: seed, seed + 1, ..."""
    return [seed + i for i in range(n_seeds)]


def with_finetune_seed(game, seed: int):
    """The same game (same owners, works and base) whose fine-tunes use another seed."""
    return dataclasses.replace(game, finetune=dataclasses.replace(game.finetune, seed=seed), log=[])


def replicates(games: dict, seeds: list[int]) -> dict[int, dict]:
    """Every game once per training seed. The base is shared: it is pre-trained once, as the paper's
    Stable Diffusion is one fixed model, and only the coalitions' fine-tunes vary with the seed."""
    return {s: {name: with_finetune_seed(game, s) for name, game in games.items()} for s in seeds}


def _obtain_base(game) -> None:
    game.base_model()


def obtain_bases(games: dict) -> None:
    """Pre-train (or load) every game's base, one task each, so that two bases train side by side."""
    parallel.map_tasks(_obtain_base, list(games.values()), desc="base models")


def _replicate_outputs(item) -> Outputs:
    game, seed, samples_per_prompt, null_samples, sample_steps, guidance = item
    images, labels, owner = coalition_utility.generate_outputs(game, samples_per_prompt, seed=seed,
                                                               num_inference_steps=sample_steps, guidance=guidance)
    if null_samples:
        free, free_labels = coalition_utility.generate_unprompted(game, null_samples, seed=seed,
                                                                  num_inference_steps=sample_steps)
        images, labels = np.concatenate([images, free]), np.concatenate([labels, free_labels])
        owner = np.concatenate([owner, np.full(null_samples, -1)])
    return Outputs(images, labels, owner, game.finetune.seed)


def generate_replicates(seeded: dict, samples_per_prompt: int, null_samples: int, sample_steps, guidance: float):
    """{seed: {game: Outputs}}. The outputs scored by seed s's coalition models come from an independent
    replicate: a full-coalition model fine-tuned with seed s + REPLICATE_OFFSET, which no scored
    coalition model is. Each prompt gets `samples_per_prompt` outputs, and `null_samples` more have no
    prompt at all. One task per (seed, game)."""
    items = [(with_finetune_seed(game, s + REPLICATE_OFFSET), s, samples_per_prompt, null_samples, sample_steps,
              guidance) for s, games in seeded.items() for game in games.values()]
    results = iter(parallel.map_tasks(_replicate_outputs, items, desc="outputs of independent replicates"))
    return {s: {name: next(results) for name in games} for s, games in seeded.items()}


def independent(seeded: dict, outputs: dict) -> bool:
    """No output is scored by a set of models that includes the model that generated it."""
    return all(out.generator_seed is not None and out.generator_seed not in seeded
               and out.generator_seed != seeded[s][name].finetune.seed
               for s, by_game in outputs.items() for name, out in by_game.items())


def _bound_terms(images, labels, plan, batch_size, mask, model):
    from copystudy.compression.likelihood import vlb_terms

    return vlb_terms(model, images, labels, plan, batch_size=batch_size)


def utilities_by_seed(rounds: dict, outputs: dict, n_strata: int, n_decoder: int, batch_size: int,
                      desc: str = "coalition likelihoods") -> dict:
    """rounds {key: game}, outputs {key: Outputs} -> {key: VLBTerms [2**n, n_outputs]}: every coalition
    of every game scores its outputs, all in one stage of tasks; one noise plan per game, shared by its
    coalitions (common random numbers)."""
    from copystudy.compression.likelihood import VLBTerms

    plays = []
    for key, game in rounds.items():
        out = outputs[key]
        plan = game.noise_plan(len(out.images), n_strata, n_decoder, seed=game.finetune.seed + 1)
        plays.append((game, partial(_bound_terms, out.images, out.labels, plan, batch_size)))
    results = coalition_game.play(plays, desc=desc)
    return {key: VLBTerms.stack(terms) for key, terms in zip(rounds, results)}


def score(seeded: dict, outputs: dict, n_strata: int, n_decoder: int, batch_size: int) -> dict:
    """{seed: {game: VLBTerms [2**n, n_outputs]}}: every seed's coalitions score that seed's outputs."""
    rounds = {(s, name): game for s, games in seeded.items() for name, game in games.items()}
    terms = utilities_by_seed(rounds, {(s, name): outputs[s][name] for s, name in rounds}, n_strata, n_decoder,
                              batch_size)
    return {s: {name: terms[(s, name)] for name in games} for s, games in seeded.items()}


def noise_table(seeded: dict, terms: dict, outputs: dict) -> pd.DataFrame:
    """`utility_noise` per (seed, game) on the prompted outputs, one row each."""
    return pd.DataFrame([{"seed": s, **utility_noise(name, game, terms[s][name][:, keep], outputs[s][name])}
                         for s, games in seeded.items() for name, game in games.items()
                         for keep in [outputs[s][name].prompt_owner >= 0]])


def generate(games: dict, samples_per_prompt: int, sample_steps, guidance: float, seed: int = 0):
    """The full coalition's outputs for every owner's prompt, per game; and the seconds each took."""
    outputs, seconds = {}, {}
    for name, game in games.items():
        start = time.perf_counter()
        outputs[name] = Outputs(*coalition_utility.generate_outputs(game, samples_per_prompt, seed=seed,
                                                                    num_inference_steps=sample_steps, guidance=guidance))
        seconds[name] = time.perf_counter() - start
    return outputs, seconds


def utilities(game, outputs: Outputs, n_strata: int, n_decoder: int, batch_size: int, seed: int = 0):
    """Every coalition's bound terms on every output, with one noise plan (common random numbers)."""
    plan = game.noise_plan(len(outputs.images), n_strata, n_decoder, seed=seed + 1)
    return coalition_utility.utility_terms(game, outputs.images, outputs.labels, plan, batch_size=batch_size)


def utility_noise(name: str, game, terms, outputs: Outputs) -> dict:
    """Mean log-likelihoods of the full coalition and the base, and the Monte Carlo standard errors: of one
    utility, of the difference full - base, and of that difference had the draws been independent."""
    ll, se = terms.log_likelihood_bits(), terms.standard_error()
    full, empty = 2 ** game.n - 1, 0
    diff = terms.map(lambda v: v[full] - v[empty])
    return {"dataset": name, "pixels": int(np.prod(outputs.images.shape[1:])),
            "mean_loglik_full_bits": ll[full].mean(), "mean_loglik_base_bits": ll[empty].mean(),
            "median_se_utility_bits": np.median(se), "median_se_full_minus_base_bits": np.median(diff.standard_error()),
            "median_se_if_independent_bits": np.median(np.sqrt(se[full] ** 2 + se[empty] ** 2))}


def payouts(name: str, game, terms, outputs: Outputs, similarity_k: int):
    """Per prompt: Shapley values and royalty shares, leave-one-out, similarity; and one table row per
    (prompt, owner) with the Monte Carlo standard error of the Shapley value."""
    owner = outputs.prompt_owner
    pay = royalty.prompt_payouts(terms.log_likelihood_bits(), owner, game.n)
    phi_se = terms.map(shapley.exact_shapley).standard_error()  # [n, n_outputs]
    se = np.stack([np.sqrt((phi_se[:, owner == p] ** 2).sum(1)) / (owner == p).sum() for p in range(game.n)])
    pay["similarity"] = np.stack([royalty.similarity_shares(outputs.images[owner == p], game.works, k=similarity_k)
                                  for p in range(game.n)])
    pay["shapley_se"] = se
    rows = [{"dataset": name, "prompt": game.owners[p], "owner": o, "shapley_bits": pay["shapley"][p, i],
             "shapley_se_bits": se[p, i], "royalty_share": pay["shares"][p, i], "loo_bits": pay["loo"][p, i],
             "loo_share": pay["loo_shares"][p, i], "similarity_share": pay["similarity"][p, i]}
            for p in range(game.n) for i, o in enumerate(game.owners)]
    return pay, pd.DataFrame(rows)


def seed_payouts(name: str, seeded: dict, terms: dict, outputs: dict, similarity_k: int):
    """`payouts` for every training seed: ({seed: pay}, one table with a seed column)."""
    pays, tables = {}, []
    for s, games in seeded.items():
        pays[s], table = payouts(name, games[name], terms[s][name], outputs[s][name], similarity_k)
        tables.append(table.assign(seed=s))
    return pays, pd.concat(tables, ignore_index=True)


def mean_pay(pays: dict) -> dict:
    """Each payout array averaged over seeds (for the heat maps)."""
    return {key: np.mean([pay[key] for pay in pays.values()], axis=0) for key in next(iter(pays.values()))}


@dataclass
class Played:
    """The main games over training seeds, as `summary.summarize` reads them."""

    games: dict  # {game: CoalitionGame} as built (fine-tune seed `seed`)
    seeded: dict  # {seed: {game: CoalitionGame}}: `replicates`
    outputs: dict  # {seed: {game: Outputs}}: `generate_replicates`
    pays: dict  # {game: {seed: payout dict}}: `seed_payouts`
    noise: pd.DataFrame  # `noise_table`

    @property
    def seeds(self) -> list[int]:
        return list(self.seeded)
