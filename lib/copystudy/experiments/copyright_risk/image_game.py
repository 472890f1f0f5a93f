"""Notebook 04, copyright risk: the image game, a k-fold design over diffusion models.

The works fall into k folds and diffusion model j trains on every fold but j (same steps for every
model); a work's information is its variational bound in bits under the model that never saw it, its
fidelity how much closer the closest sample of the models that saw it comes than its closest real
look-alike; the causal pixel coder stays beside the bound as a second estimate; the colour, copy
agreement, counts the models whose samples hold an extracted copy of the work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from copystudy import models
from copystudy.common import intervals
from copystudy.experiments.copyright_risk.design import DiffusionRecipe, Folds, ImageProbe, WorkRisk, association
from copystudy.memorization import distances, extraction, risk


def image_folds(n: int, k: int, seed: int = 0) -> np.ndarray:
    """The fold (0..k-1) of each of n works: a seeded random order dealt round robin, so fold sizes differ
    by at most one (and are equal when k divides n: every model then trains on the same number of works)."""
    if k < 2:
        raise ValueError(f"the k-fold design needs k >= 2 folds, got {k}")
    if n < k:
        raise ValueError(f"{k} folds need at least {k} works, got {n}")
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return fold


def image_training_indices(fold: np.ndarray, j: int) -> np.ndarray:
    """What diffusion model j trains on: the works of every fold but j (indices into the works)."""
    return np.flatnonzero(np.asarray(fold) != j)


def copies_per_work(samples: np.ndarray, works: np.ndarray, seen: np.ndarray, heldout: np.ndarray, threshold: float,
                    ratio: float) -> np.ndarray:
    """How many of a model's samples are extracted copies of each work [len(works)], by the memorisation
    notebook's criterion against the works the model trained on (`seen`): a sample's nearest seen work
    within `threshold` and at most `ratio` x as far as the sample's nearest held-out image. Works the
    model never saw get 0."""
    matches = extraction.extraction_table(samples, works[seen], heldout, "l2", threshold, ratio)
    copies = np.zeros(len(works), dtype=np.int64)
    np.add.at(copies, np.asarray(seen)[matches.loc[matches["extracted"], "train_idx"].to_numpy(dtype=np.int64)], 1)
    return copies


def fold_diffusion(works: np.ndarray, heldout: np.ndarray, fold: np.ndarray, recipe: DiffusionRecipe,
                   probe: ImageProbe, plan_seed: int, item: tuple[int, int]) -> dict:
    """Task (seed s, fold j): train diffusion model j on every fold but j for `steps` steps, then return,
    for every work, its bits under the bound (common noise plan: every model is scored on the same
    timesteps and noises, so differences between models are not Monte Carlo noise), the distance and
    image of its closest sample, and how many samples are extracted copies of it (the memorisation
    notebook's criterion, against the works this model trained on). Numbers, not the model, go back."""
    from copystudy.compression.likelihood import NoisePlan, vlb_terms

    s, j = item
    seen = image_training_indices(fold, j)
    net = models.build(recipe.model, image_size=works.shape[-1], channels=works.shape[1], seed=s)
    losses = net.fit(works[seen], recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr, seed=s,
                     desc=f"diffusion seed {s} without fold {j}")
    samples = net.sample(probe.n_samples, seed=s, num_inference_steps=probe.inference_steps, progress_bar=False)
    plan = NoisePlan.make(len(works), net.image_shape, net.scheduler.config.num_train_timesteps, probe.n_strata,
                          probe.n_decoder, seed=plan_seed)
    terms = vlb_terms(net, works, None, plan)
    d = distances.pairwise_distances(works, samples, "l2")
    copies = copies_per_work(samples, works, seen, heldout, probe.threshold, probe.ratio)
    return {"trained_on": seen.tolist(), "steps": len(losses), "n_params": net.n_params,
            "bits": terms.nll_bits(), "bits_se": terms.standard_error(), "closest_l2": d.min(1),
            "closest": samples[d.argmin(1)], "copies": copies}


def image_fold_table(fold: np.ndarray, results: dict, seeds, heldout_l2: np.ndarray) -> pd.DataFrame:
    """One row per (seed, work). info_bits: the bound under model `fold` of that seed, the one model that
    never saw the work (checked against the model's training list); seen_bits the mean over the k-1 that
    saw it. fidelity: 1 - d(closest sample) / d(closest held-out image), the mean over the seen models;
    near_copies: how many seen models' samples hold an extracted copy of the work (0..k-1)."""
    k, rows = int(fold.max()) + 1, []
    for s in seeds:
        for w, j in enumerate(fold):
            if w in results[s, j]["trained_on"]:
                raise ValueError(f"work {w}'s reference (seed {s}, fold {j}) trained on it")
            saw = [results[s, m] for m in range(k) if m != j]
            if any(w not in r["trained_on"] for r in saw):
                raise ValueError(f"work {w} is missing from a model of seed {s} that should have seen it")
            rows.append({"seed": s, "work": w, "fold": int(j), "info_bits": float(results[s, j]["bits"][w]),
                         "info_bits_se": float(results[s, j]["bits_se"][w]),
                         "seen_bits": float(np.mean([r["bits"][w] for r in saw])),
                         "closest_sample_l2": float(np.mean([r["closest_l2"][w] for r in saw])),
                         "fidelity": float(np.mean([1 - r["closest_l2"][w] / heldout_l2[w] for r in saw])),
                         "near_copies": int(sum(r["copies"][w] > 0 for r in saw)), "n_seen": k - 1})
    table = pd.DataFrame(rows)
    table["closest_heldout_l2"] = table["work"].map(lambda w: float(heldout_l2[w]))
    table["memorised_fraction"] = (table["info_bits"] - table["seen_bits"]) / table["info_bits"]
    return table


def image_mean_over_seeds(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One row per work: means over seeds (info_bits, fidelity with *_lo, *_hi 95% t intervals over
    seeds) and near_copies summed over seeds, out of replicates = seeds x (k-1) models that saw it."""
    keys = ["work", "fold", "closest_heldout_l2"]
    g = per_seed.groupby(keys, sort=False)
    out = g[["info_bits", "info_bits_se", "seen_bits", "memorised_fraction", "closest_sample_l2", "fidelity"]].mean()
    out["near_copies"] = g["near_copies"].sum()
    out["replicates"] = g["n_seen"].sum()
    out = out.reset_index()
    for col in ("info_bits", "fidelity"):
        ci = g[col].apply(lambda v: intervals.mean_ci(v)[1:])
        out[f"{col}_lo"] = [lo for lo, _ in ci.values]
        out[f"{col}_hi"] = [hi for _, hi in ci.values]
    out["copy_agreement"] = [f"{c} of {r}" for c, r in zip(out["near_copies"], out["replicates"])]
    return out


def image_map(works: np.ndarray, heldout: np.ndarray, fold: np.ndarray, results: dict, folds: Folds, ratio: float,
              coder: risk.PixelContextModel) -> WorkRisk:
    """The image map from the tasks' numbers: per-seed rows, their means with intervals, the pixel coder
    (fitted on held-out images) beside the bound, regions at the median information and fidelity
    1 - ratio, permutation tests of information (bound, and pixel coder) against fidelity, and for
    every work the closest sample any model that saw it drew (for the thumbnails)."""
    seeds, seed = list(folds.seeds), folds.seed
    heldout_l2 = distances.nearest(works, heldout, "l2")[1]
    per_seed = image_fold_table(fold, results, seeds, heldout_l2)
    table = image_mean_over_seeds(per_seed)
    table["pixel_bits"] = coder.fit(heldout).bits(works)[table["work"]]
    k = int(fold.max()) + 1
    best = np.empty_like(works)
    for w, j in enumerate(fold):
        seen = [results[s, m] for s in seeds for m in range(k) if m != j]
        best[w] = min(seen, key=lambda r: r["closest_l2"][w])["closest"][w]
    table["best_sample_l2"] = distances.pairwise_distances(works, best, "l2").diagonal()[table["work"]]
    cut = float(table["info_bits"].median())
    ranked = risk.rank_by_risk(table, "info_bits", "fidelity", cut, 1 - ratio)
    assoc = {"bound": association(table, None, seed=seed),
             "pixel": association(table.assign(info_bits=table["pixel_bits"]), None, seed=seed)}
    first = results[seeds[0], 0]
    return WorkRisk(table, ranked, cut, best, first["n_params"], per_seed=per_seed, association=assoc,
                    steps={key: r["steps"] for key, r in results.items()})
