"""Notebook 05's tests that trivial attribution could not pass: what Shapley royalty shares do, beside
leave-one-out and pixel similarity, when

(a) two owners' works serve one prompt (one owner split at random into two "shell companies", each
    holding half of its works under the same prompt): the payment should split between them;
(b) a copy-cat joins, whose works are near-duplicates of one owner's, sold under the same prompt: it
    adds nothing the original did not already supply;
(c) an output has no prompt at all: the payment should follow what the output is made of.

Every check runs per training seed on that seed's outputs (from the independent replicate), and its
numbers are means over seeds with a 95% interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from copystudy.attribution import coalition_game, royalty
from copystudy.common import intervals
from copystudy.memorization.distances import pairwise_distances
from copystudy.experiments.royalty_shares.steps import METHODS, utilities_by_seed

VARIANTS = ("shell", "copycat")


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


def verdicts(m: dict, owner_name: str, datasets) -> list[str]:
    """What the three checks show, one sentence each, from the numbers and their intervals."""
    out = []

    def ci(key, fmt=".2f"):
        if f"{key}_ci" not in m:  # e.g. a fraction of a pay that was 0 under every seed
            return "undefined"
        lo, hi = m[f"{key}_ci"]
        return f"{m[key]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"

    if "shell_srs_after" in m:
        out.append(f"[(a) shared prompt] {owner_name} split into two shells: the shells' summed share of its prompt "
                   f"is {ci('shell_srs_after')} against {ci('shell_srs_before')} before (change "
                   f"{ci('shell_srs_change', '+.2f')}); the smaller shell gets {ci('shell_srs_smaller_half_fraction')} "
                   f"of the pair's pay (0.5: an even split). Leave-one-out: the pair gets {ci('shell_loo_after')}, "
                   f"the smaller shell {ci('shell_loo_smaller_half_fraction')}; similarity: {ci('shell_similarity_after')}, "
                   f"{ci('shell_similarity_smaller_half_fraction')}.")
        lo, hi = m["shell_srs_change_ci"]  # always defined: before and after are shares
        out.append("  -> the split changes the owners' pay beyond seed noise: Shapley shares are not robust to how "
                   "works are grouped into owners." if lo > 0 or hi < 0 else
                   "  -> the change from the split is within seed noise: no evidence here that splitting pays.")
    if "copycat_srs_original" in m:
        out.append(f"[(b) copy-cat] a near-duplicate of {owner_name}'s works under its prompt: the original keeps "
                   f"{ci('copycat_srs_original')} and the copy-cat takes {ci('copycat_srs_copycat')} by Shapley "
                   f"royalty share (the original had {ci('copycat_srs_before')} alone); leave-one-out pays them "
                   f"{ci('copycat_loo_original')} and {ci('copycat_loo_copycat')}; similarity "
                   f"{ci('copycat_similarity_original')} and {ci('copycat_similarity_copycat')}.")
        frac = m.get("copycat_srs_copycat_fraction_ci")
        if frac is not None:
            out.append(f"  -> the copy-cat gets {ci('copycat_srs_copycat_fraction')} of the pair's Shapley pay: "
                       + ("as much as the original within seed noise (their contributions are nearly symmetric), "
                          "so copying an owner's works earns part of its royalties." if frac[0] <= 0.5 <= frac[1] else
                          "less than the original, beyond seed noise, though copying still earns it part of the "
                          "original's royalties." if frac[1] < 0.5 else "more than the original, beyond seed noise."))
    for name in datasets:
        key = f"{name}_unprompted_l1_to_composition"
        if f"{key}_srs" not in m:
            continue
        parts = ", ".join(f"{label} {ci(f'{key}_{k}')}" for k, label in
                          (("srs", "Shapley royalty share"), ("loo", "leave-one-out"), ("similarity", "similarity"),
                           ("data_size", "pay by data size")))
        labels = {"srs": "Shapley royalty share", "loo": "leave-one-out", "similarity": "similarity",
                  "data_size": "pay by data size"}
        best = min(labels, key=lambda k: m[f"{key}_{k}"])
        out.append(f"[(c) no prompt, {name}] L1 distance of the shares from what the outputs are made of "
                   f"(lower is better): {parts}. Closest on average: {labels[best]}; "
                   + intervals.compare("Shapley royalty share", m[f"{key}_srs_ci"], "similarity",
                                       m[f"{key}_similarity_ci"]) + "; "
                   + intervals.compare("Shapley royalty share", m[f"{key}_srs_ci"], "the constant pay by data size",
                                       m[f"{key}_data_size_ci"]) + " (the reference is itself read off pixels, which "
                   "favours similarity; a method that tracks it no better than the constant has not shown it follows "
                   "what the outputs are made of).")
    return out
