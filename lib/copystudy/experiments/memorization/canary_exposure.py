"""Notebook 03, memorization: planted canaries in byte-level LMs against exposures and model size.

After Carlini et al. 2019 (The Secret Sharer) and 2022 (Quantifying Memorization): every seed plants
its own canaries; a byte LM of every size trains on every seed's text for the same steps, so the
axis is the number of times a model saw a canary, copies x epochs over the text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from copystudy import models
from copystudy.common import parallel
from copystudy.common.intervals import mean_ci, wilson
from copystudy.memorization import canaries


@dataclass(frozen=True)
class LMRecipe:
    """How every LM of the canary test trains (the same for every size and seed)."""

    context: int = 64
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3


def lm_epochs(steps: int, batch_size: int, context: int, text_bytes: int) -> float:
    """Passes over the training text: bytes predicted (steps x batch x context, random windows) / bytes
    of text. On average every byte, so every planted copy of a canary, is seen this many times."""
    return steps * batch_size * context / text_bytes


def exposures(dup: int, epochs: float) -> float:
    """Times the model saw a canary: its copies in the text x the passes over the text."""
    return dup * epochs


def canary_runs(planted_by_seed: dict, canaries_by_seed: dict, lm_sizes: list[dict], recipe: LMRecipe,
                n_candidates: int):
    """A byte LM of every size trained on every seed's planted text (that seed's canaries), every canary
    measured; one stage of (seed, size) tasks. Returns (per canary, per model size and seed)."""
    items = [(s, shape) for s in sorted(planted_by_seed) for shape in lm_sizes]
    task = partial(_canary_model, planted_by_seed, canaries_by_seed, recipe, n_candidates)
    out = parallel.map_tasks(task, items, desc="LM (seed, size)",
                             cost=lambda it: it[1].get("n_layer", 2) * it[1].get("n_embd", 64) ** 2)
    reports, size_rows = zip(*out)
    return pd.concat(reports, ignore_index=True), pd.DataFrame(size_rows)


def _canary_model(planted_by_seed, canaries_by_seed, recipe: LMRecipe, n_candidates: int, item):
    """One (seed, LM size) of the canary test (a task): trained on that seed's planted text, measured."""
    seed, shape = item
    planted = planted_by_seed[seed]
    lm = models.build({"family": "causal_lm", "context": recipe.context, **shape}, seed=seed)
    losses = lm.fit(planted, recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr, seed=seed,
                    desc=f"LM {shape}, seed {seed}")
    label = f"{lm.n_params / 1e3:.0f}K"
    report = canaries.canary_report(lm, canaries_by_seed[seed], n_candidates, seed)
    epochs = lm_epochs(recipe.steps, recipe.batch_size, recipe.context, sum(map(len, planted.values())))
    report["seed"], report["n_params"], report["model"] = seed, lm.n_params, label
    report["epochs"], report["exposures"] = epochs, [exposures(d, epochs) for d in report["dup"]]
    return report, {"model": label, "n_params": lm.n_params, **shape, "seed": seed, "epochs": epochs,
                    "final_loss_bits_per_byte": float(np.mean(losses[-max(1, len(losses) // 20):])) / np.log(2)}


def canary_table(report: pd.DataFrame, n_candidates: int) -> pd.DataFrame:
    """Per (model, exposures): exposure (rank) and skew-normal exposure as the mean over seeds of the
    per-seed mean over canaries, with t intervals over seeds; the extractable fraction and the fraction
    ranked first over all canaries of all seeds, with Wilson intervals."""
    rows = []
    for (n_params, model, dup), g in report.groupby(["n_params", "model", "dup"], sort=True):
        per_seed = g.groupby("seed")[["exposure", "exposure_skewnorm"]].mean()
        row = {"n_params": int(n_params), "model": model, "dup": int(dup), "exposures": float(g["exposures"].mean()),
               "n_seeds": len(per_seed), "n": len(g)}
        for col in ("exposure", "exposure_skewnorm"):
            row[col], row[f"{col}_low"], row[f"{col}_high"] = mean_ci(per_seed[col])
        row["extractable"], row["extractable_low"], row["extractable_high"] = wilson(int(g["extractable"].sum()), len(g))
        row["ranked_first"], row["ranked_first_low"], row["ranked_first_high"] = wilson(int((g["rank"] == 1).sum()),
                                                                                         len(g))
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["log2_R"] = math.log2(n_candidates + 1)
    return table


def saturation(table: pd.DataFrame) -> dict:
    """Per model: the fewest exposures from which every canary of every seed is ranked first among |R|
    (the rank exposure is then log2 |R| at that and every larger count); None if that never happens."""
    out = {}
    for model, g in table.sort_values("exposures").groupby("model", sort=False):
        first = g["ranked_first"].to_numpy() == 1.0
        tail = [i for i in range(len(first)) if first[i:].all()]
        out[model] = float(g["exposures"].iloc[tail[0]]) if tail else None
    return out


def size_table(report: pd.DataFrame) -> pd.DataFrame:
    """Per model size and duplication count: mean exposures over seeds, for the model-size comparison."""
    per_seed = report.groupby(["n_params", "model", "dup", "seed"])[["exposure", "exposure_skewnorm"]].mean()
    rows = []
    for (n_params, model, dup), g in per_seed.groupby(level=[0, 1, 2]):
        row = {"n_params": int(n_params), "model": model, "dup": int(dup)}
        for col in ("exposure", "exposure_skewnorm"):
            row[col], row[f"{col}_low"], row[f"{col}_high"] = mean_ci(g[col])
        rows.append(row)
    return pd.DataFrame(rows)
