"""Notebook 03, memorization: the diffusion extraction ladder at matched training.

Diffusion extraction (Carlini et al. 2023) against the number of training images N at matched training:
the same number of epochs (passes over the N images) at every N, at two budgets, every cell with
several seeds. Each function takes data and parameters and returns data (tables, samples); the
canary test is `canary_exposure`, the numbers of metrics.json come from `summary`, the figures from
`figures`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from copystudy import models
from copystudy.common import parallel
from copystudy.common.intervals import mean_ci, wilson
from copystudy.memorization import extraction
from copystudy.memorization.extraction import Criterion

__all__ = ["Criterion", "DiffusionRecipe", "Ladder", "extraction_ladder", "heldout_control", "ladder_design",
           "ladder_sizes", "pool_seeds", "schedule", "schedule_table", "transition_n"]

# diffusion step cost in ms on one thread, t(batch) ~ 8 + 0.22 batch (164K-parameter UNet, 8x8 images):
# the relative cost of a task, so the costliest start first
STEP_OVERHEAD = 36


@dataclass(frozen=True)
class DiffusionRecipe:
    """How every diffusion model of the ladder trains and samples (the same at every N and seed)."""

    model: dict
    batch_size: int = 64  # the largest batch; a model on N < batch_size images uses a batch of N
    lr: float = 1e-3
    n_samples: int = 200
    inference_steps: int = 50


def ladder_sizes(n_ladder: list[int], pool_size: int) -> list[int]:
    """The training-set sizes N, capped at the pool, without repeats, increasing."""
    return sorted({min(int(n), pool_size) for n in n_ladder})


# ---- the design: matched training ---------------------------------------------------------------------
def schedule(n: int, epochs: int, batch_size: int) -> dict:
    """Training of a model on n images for `epochs` passes: batch = min(batch_size, n) (a batch never
    holds more draws than there are images), steps = ceil(epochs x n / batch). `epochs_done` (images
    drawn / n) equals `epochs` whenever batch divides epochs x n, and exceeds it by less than batch / n
    otherwise."""
    if n < 1 or epochs < 1 or batch_size < 1:
        raise ValueError(f"schedule needs n, epochs, batch_size >= 1, got {n}, {epochs}, {batch_size}")
    batch = min(batch_size, n)
    steps = math.ceil(epochs * n / batch)
    return {"N": n, "epochs": epochs, "batch": batch, "steps": steps, "epochs_done": steps * batch / n}


def ladder_design(sizes: list[int], epoch_budgets: list[int], seeds: list[int], batch_size: int) -> list[dict]:
    """Every (budget, N, seed) cell of the extraction ladder with its schedule: one task each."""
    return [{**schedule(n, e, batch_size), "seed": s} for e in epoch_budgets for n in sizes for s in seeds]


def schedule_table(sizes: list[int], epoch_budgets: list[int], batch_size: int) -> pd.DataFrame:
    """The schedule of every (budget, N), one row each (the same for every seed)."""
    return pd.DataFrame([schedule(n, e, batch_size) for e in epoch_budgets for n in sizes])


@dataclass
class Ladder:
    """Extraction against N at each budget: `runs` one row per (budget, N, seed), `table` one row per
    (budget, N) pooled over seeds, `control` the criterion's false-positive rate on real held-out images
    per N; per cell its extraction table and samples."""

    runs: pd.DataFrame
    table: pd.DataFrame
    control: pd.DataFrame
    tables: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)
    n_params: int = 0


def diffusion(model: dict, images: np.ndarray, seed: int):
    """A fresh diffusion model from the spec, shaped like the images."""
    return models.build(model, image_size=images.shape[-1], channels=images.shape[1], seed=seed)


def extraction_ladder(train_pool, heldout, sizes, epoch_budgets, seeds, recipe: DiffusionRecipe,
                      criterion: Criterion) -> Ladder:
    """For each (budget, N, seed): a fresh model trained on the first N images of the pool for the budget's
    epochs, sampled, every sample matched to its nearest training and held-out image. One stage of tasks."""
    design = ladder_design(sizes, epoch_budgets, seeds, recipe.batch_size)
    rung = partial(_ladder_rung, train_pool, heldout, recipe, criterion)
    results = parallel.map_tasks(rung, design, desc="ladder of (budget, N, seed)",
                                 cost=lambda cell: cell["steps"] * (cell["batch"] + STEP_OVERHEAD))
    ladder = Ladder(pd.DataFrame(), pd.DataFrame(), heldout_control(train_pool, heldout, sizes, criterion))
    rows = []
    for cell, (table, samples, n_params, row) in zip(design, results):
        key = (cell["epochs"], cell["N"], cell["seed"])
        ladder.tables[key], ladder.samples[key], ladder.n_params = table, samples, n_params
        rows.append({**cell, **row})
    ladder.runs = pd.DataFrame(rows)
    ladder.table = pool_seeds(ladder.runs).merge(ladder.control, on="N")
    return ladder


def _ladder_rung(train_pool, heldout, recipe: DiffusionRecipe, criterion: Criterion, cell: dict):
    """One cell of the ladder (a task): a model trained on the first N images, sampled and matched."""
    n, seed = cell["N"], cell["seed"]
    net = diffusion(recipe.model, train_pool, seed)
    losses = net.fit(train_pool[:n], cell["steps"], batch_size=cell["batch"], lr=recipe.lr, seed=seed,
                     desc=f"train N={n}, {cell['epochs']} epochs, seed {seed}")
    samples = net.sample(recipe.n_samples, seed=seed, num_inference_steps=recipe.inference_steps)
    table = criterion.table(samples, train_pool[:n], heldout)
    table["carlini_ratio"] = extraction.carlini_ratio(samples, train_pool[:n], criterion.distance, grid=criterion.grid)
    other = "tiled_l2" if criterion.distance == "l2" else "l2"
    row = {"extracted": int(table["extracted"].sum()), "n_samples": len(table),
           "extraction_rate": extraction.extraction_rate(table),
           f"rate_{other}": extraction.extraction_rate(criterion.table(samples, train_pool[:n], heldout, other)),
           "distinct_images_copied": extraction.copied_images(table),
           "median_d_train": table["d_train"].median(), "median_d_heldout": table["d_heldout"].median(),
           "median_carlini_ratio": table["carlini_ratio"].median(),
           "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):]))}
    return table, samples, net.n_params, row


def heldout_control(train_pool, heldout, sizes, criterion: Criterion) -> pd.DataFrame:
    """Per N, what a model-free "sample = a real held-out image" scores: the criterion's false-positive
    rate against the first N training images (extraction.heldout_baseline_rate), with a Wilson interval
    over the held-out images. A model's extraction rate means something only where it clears this."""
    rows = []
    for n in sizes:
        rate = extraction.heldout_baseline_rate(train_pool[:n], heldout, criterion.distance, criterion.threshold,
                                                criterion.ratio, criterion.grid)
        k = int(round(rate * len(heldout)))
        _, lo, hi = wilson(k, len(heldout))
        rows.append({"N": n, "control_rate": rate, "control_low": lo, "control_high": hi})
    return pd.DataFrame(rows)


def pool_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (budget, N): the extraction rate over all seeds' samples pooled with its Wilson interval
    (`rate_low`, `rate_high`), and the mean of the per-seed rates with its t interval over seeds
    (`seed_low`, `seed_high`: the seed-to-seed spread, which the pooled interval ignores)."""
    rows = []
    for (epochs, n), g in runs.groupby(["epochs", "N"], sort=True):
        rate, lo, hi = wilson(int(g["extracted"].sum()), int(g["n_samples"].sum()))
        mean, slo, shi = mean_ci(g["extraction_rate"])
        rows.append({"epochs": int(epochs), "N": int(n), "n_seeds": len(g), "steps": int(g["steps"].iloc[0]),
                     "batch": int(g["batch"].iloc[0]), "extracted": int(g["extracted"].sum()),
                     "n_samples": int(g["n_samples"].sum()), "rate": rate, "rate_low": lo, "rate_high": hi,
                     "seed_mean": mean, "seed_low": slo, "seed_high": shi,
                     "median_d_train": float(g["median_d_train"].mean())})
    return pd.DataFrame(rows)


def transition_n(table: pd.DataFrame, epochs: int) -> int | None:
    """The largest N at which, at this budget, the extraction rate's interval lies wholly above the
    held-out control's (control_high is carried from `heldout_control`); None if at no N."""
    rows = table[(table["epochs"] == epochs) & (table["rate_low"] > table["control_high"])]
    return int(rows["N"].max()) if len(rows) else None
