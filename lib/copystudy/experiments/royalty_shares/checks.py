"""Notebook 05's tests that trivial attribution could not pass: what Shapley royalty shares do, beside
leave-one-out and pixel similarity, when

(a) two owners' works serve one prompt (one owner split at random into two "shell companies", each
    holding half of its works under the same prompt): the payment should split between them;
(b) a copy-cat joins, whose works are near-duplicates of one owner's, sold under the same prompt: it
    adds nothing the original did not already supply;
(c) an output has no prompt at all: the payment should follow what the output is made of.

Every check runs per training seed on that seed's outputs (from the independent replicate), and its
numbers are means over seeds with a 95% interval; `summary` says what they show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from copystudy.attribution import coalition_game, royalty
from copystudy.common import intervals
from copystudy.memorization.distances import pairwise_distances
from copystudy.experiments.royalty_shares.steps import METHODS, utilities_by_seed

VARIANTS = ("shell", "copycat")


@dataclass
class Checked:
    """The checks' rows, as `summary.summarize` reads them: (c) for every game, (a) and (b) when run."""

    unprompted: pd.DataFrame  # `unprompted`, all games
    owner_rows: pd.DataFrame  # `owner_check_rows` (empty without shell_split)
    shell_dataset: str | None = None
    shell_owner: str | None = None  # the name of the owner split and copied


def variant_games(name: str, seeded: dict, owner: int, split_seed: int, copy_noise: float) -> dict:
    """{(variant, seed): game}: owner `owner` of game `name` split in two, and joined by a copy-cat."""
    rounds = {}
    for s, games in seeded.items():
        game = games[name]
        if not 0 <= owner < game.n:
            raise ValueError(f"shell_owner must be an owner index 0..{game.n - 1}, got {owner}")
        rounds[("shell", s)] = coalition_game.split_game(game, owner, seed=split_seed)
        rounds[("copycat", s)] = coalition_game.copycat_game(game, owner, copy_noise, seed=split_seed)
    return rounds


def variant_terms(name: str, rounds: dict, outputs: dict, n_strata: int, n_decoder: int, batch_size: int) -> dict:
    """Every variant game's coalitions score the seed's outputs of game `name`, in one stage."""
    return utilities_by_seed(rounds, {key: outputs[key[1]][name] for key in rounds}, n_strata, n_decoder, batch_size,
                             desc="shell and copy-cat likelihoods")


def method_shares(terms, out, works: list, n_prompts: int, similarity_k: int) -> dict:
    """Shares [n_prompts, n_players] of each method on the prompted outputs."""
    pay = royalty.prompt_payouts(terms.log_likelihood_bits(), out.prompt_owner, n_prompts)
    pay["similarity"] = np.stack([royalty.similarity_shares(out.images[out.prompt_owner == p], works, k=similarity_k)
                                  for p in range(n_prompts)])
    return {key: pay[key] for _, key, _ in METHODS}


def owner_check_rows(name: str, seeded: dict, rounds: dict, terms: dict, outputs: dict, pays: dict, owner: int,
                     similarity_k: int) -> pd.DataFrame:
    """One row per (variant, seed, method, player) with its share of the split/copied owner's prompt,
    and the same owner's share before (pays: {seed: pay} of the game without the variant)."""
    rows = []
    for (variant, s), game in rounds.items():
        out = outputs[s][name]
        shares = method_shares(terms[(variant, s)], out, game.works, seeded[s][name].n, similarity_k)
        for prefix, key, title in METHODS:
            before = pays[s][key][owner, owner]
            for j, player in enumerate(game.owners):
                rows.append({"variant": variant, "seed": s, "method": title, "player": player,
                             "role": _role(variant, game, owner, j), "share": shares[key][owner, j],
                             "owner_share_before": before})
    return pd.DataFrame(rows)


def _role(variant: str, game, owner: int, j: int) -> str:
    if variant == "shell":
        return "shell" if j in (owner, owner + 1) else "other"
    return "original" if j == owner else "copy-cat" if j == game.n - 1 else "other"


def owner_check_metrics(rows: pd.DataFrame) -> dict:
    """Per variant and method, means over seeds with 95% intervals: the owner's share before; after the
    split, the two shells' summed share and the smaller shell's fraction of it (0.5 = an even split);
    with the copy-cat, the original's and the copy-cat's shares."""
    m = {}
    for (variant, method), sel in rows.groupby(["variant", "method"], sort=False):
        key = f"{variant}_{_method_key(method)}"
        per_seed = []
        for s, one in sel.groupby("seed"):
            before = float(one["owner_share_before"].iloc[0])
            if variant == "shell":
                halves = one.loc[one.role == "shell", "share"].to_numpy()
                total = halves.sum()
                per_seed.append({"before": before, "after": total, "change": total - before,
                                 "smaller_half_fraction": halves.min() / total if total > 0 else np.nan})
            else:
                orig = float(one.loc[one.role == "original", "share"].iloc[0])
                copy = float(one.loc[one.role == "copy-cat", "share"].iloc[0])
                per_seed.append({"before": before, "original": orig, "copycat": copy,
                                 "copycat_fraction": copy / (orig + copy) if orig + copy > 0 else np.nan})
        for stat in per_seed[0]:
            values = [p[stat] for p in per_seed if np.isfinite(p[stat])]
            if values:
                mean, lo, hi = intervals.mean_ci(values)
                m[f"{key}_{stat}"], m[f"{key}_{stat}_ci"] = mean, [lo, hi]
    return m


def _method_key(title: str) -> str:
    return {"Shapley royalty share": "srs", "leave-one-out": "loo", "similarity": "similarity"}[title]


def composition(images: np.ndarray, game, k: int = 10) -> np.ndarray:
    """What unprompted outputs are made of: each output goes to the class of most of its k nearest works
    (owners' works and every public class, RMS pixel distance); returns each owner's fraction of the
    outputs, so outputs that look public pay no owner and the fractions sum to at most 1."""
    public_classes = np.unique(game.public_labels)
    pools = list(game.works) + [game.public_images[game.public_labels == c] for c in public_classes]
    refs = np.concatenate(pools)
    cls = np.concatenate([np.full(len(p), i) for i, p in enumerate(pools)])
    d = pairwise_distances(images, refs, kind="l2")
    nearest = cls[np.argsort(d, axis=1, kind="stable")[:, :min(k, len(refs))]]
    votes = np.stack([np.bincount(row, minlength=len(pools)) for row in nearest])
    winner = votes.argmax(1)
    return np.array([(winner == i).mean() for i in range(game.n)])


def unprompted(name: str, seeded: dict, terms: dict, outputs: dict, similarity_k: int) -> pd.DataFrame:
    """(c) Outputs with no prompt: per seed, each method's shares against the outputs' composition (and
    the owners' shares of the owned works, what a constant attribution by data size would pay)."""
    rows = []
    for s, games in seeded.items():
        game, out = games[name], outputs[s][name]
        free = out.prompt_owner == -1
        if not free.any():
            continue
        ll = terms[s][name].log_likelihood_bits()[:, free]
        srs = royalty.shapley_royalty_shares(ll)[1]
        loo = royalty.leave_one_out_shares(ll)[1]
        sim = royalty.similarity_shares(out.images[free], game.works, k=similarity_k)
        made_of = composition(out.images[free], game)
        target = made_of / made_of.sum() if made_of.sum() > 0 else made_of
        sizes = np.array([len(w) for w in game.works], float)
        for method, shares in (("Shapley royalty share", srs), ("leave-one-out", loo), ("similarity", sim),
                               ("by data size", sizes / sizes.sum())):
            for i, o in enumerate(game.owners):
                rows.append({"dataset": name, "seed": s, "method": method, "owner": o, "share": shares[i],
                             "composition": target[i], "outputs_of_owner": made_of[i]})
    return pd.DataFrame(rows)


def unprompted_metrics(table: pd.DataFrame) -> dict:
    """Per game and method: the L1 distance of its shares from the outputs' composition, mean over seeds."""
    m = {}
    if table.empty:
        return m
    for (name, method), sel in table.groupby(["dataset", "method"], sort=False):
        per_seed = [np.abs(one.share - one.composition).sum() for _, one in sel.groupby("seed")]
        mean, lo, hi = intervals.mean_ci(per_seed)
        key = f"{name}_unprompted_l1_to_composition_{_method_key(method) if method in _KEYS else 'data_size'}"
        m[key], m[f"{key}_ci"] = mean, [lo, hi]
    for name, sel in table[table.method == "similarity"].groupby("dataset", sort=False):
        m[f"{name}_unprompted_owner_fraction"] = float(sel.groupby("seed").outputs_of_owner.sum().mean())
    return m


_KEYS = ("Shapley royalty share", "leave-one-out", "similarity")
