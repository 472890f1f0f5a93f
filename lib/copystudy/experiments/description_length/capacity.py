"""Notebook 02: capacity on uniformly random data (Morris et al. 2025): model sizes x data sizes x seeds,
each a task handed to the cluster in the background; each size's plateau, bits per parameter with an
interval, and what that bounds for the study's own model. The quantities are in
`copystudy.memorization.capacity`; metrics and verdicts of this section are here."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pandas as pd

from copystudy.common import parallel
from copystudy.memorization import capacity as cap

MORRIS_BITS_PER_PARAM = 3.6  # Morris et al. 2025, GPT-style models trained to saturation on random data


@dataclass(frozen=True)
class CapacitySpec:
    """The capacity study's grid: model shapes by label, data sizes in sequences, sequence length and
    alphabet, the training recipe, and the seeds (each draws its own data and initialisation)."""

    models: dict
    sequences: tuple
    length: int = 32
    vocab: int = 16
    recipe: cap.CapacityRecipe = cap.CapacityRecipe()
    seeds: tuple = (0, 1, 2)


def start(spec: CapacitySpec):
    """Every (model, data size, seed) cell as a background task; `finish` collects them."""
    jobs = [(name, n, seed) for name in spec.models for n in spec.sequences for seed in spec.seeds]
    return parallel.submit_tasks(partial(_cell, spec), jobs, desc="capacity models on random data", background=True,
                                 cost=lambda job: job[1])


def _cell(spec: CapacitySpec, job) -> dict:
    name, n, seed = job
    return {"model": name, **cap.capacity_cell(spec.models[name], n, spec.length, spec.vocab, spec.recipe, seed)}


def finish(pending) -> pd.DataFrame:
    cells = pd.DataFrame(pending.result())
    cells["memorized_bits_per_param"] = cells["memorized_bits"] / cells["n_params"]
    return cells


def metrics(cells: pd.DataFrame, n_params: int, train_bytes: int, seed: int = 0) -> dict:
    """Capacity per parameter with its interval, each size's plateau, and the bound it puts on the
    study's model of n_params trained on train_bytes."""
    plat = cap.plateaus(cells)
    fit = cap.bits_per_param_fit(cells, seed=seed)
    bound = cap.capacity_bound(fit["bits_per_param"], n_params, train_bytes)
    lo_b, hi_b = (cap.capacity_bound(fit[k], n_params, train_bytes) for k in ("low", "high"))
    m = {"capacity_bits_per_param": fit["bits_per_param"], "capacity_bits_per_param_ci": [fit["low"], fit["high"]],
         "capacity_bits_per_param_morris": MORRIS_BITS_PER_PARAM,
         "capacity_n_params_by_model": dict(zip(plat["model"], plat["n_params"].astype(int))),
         "capacity_saturated_by_model": dict(zip(plat["model"], plat["saturated"].astype(bool))),
         "capacity_plateau_at_sequences_by_model": dict(zip(plat["model"], plat["plateau_at_sequences"].astype(int))),
         "capacity_plateau_bits_by_model": dict(zip(plat["model"], plat["plateau_bits"].astype(float))),
         "capacity_plateau_bits_by_model_ci": {r.model: [r.plateau_bits_low, r.plateau_bits_high] for r in plat.itertuples()},
         "capacity_bits_per_param_by_model": dict(zip(plat["model"], plat["bits_per_param"].astype(float))),
         "capacity_memorized_bits_by_cell": {f"{r.model}/{r.n_sequences}": float(r.memorized_bits)
                                             for r in cells.groupby(["model", "n_sequences"], sort=False,
                                                                    as_index=False)["memorized_bits"].mean().itertuples()},
         "capacity_entropy_bits_by_sequences": {int(n): float(h) for n, h in
                                                cells.groupby("n_sequences")["entropy_bits"].first().items()},
         "capacity_bound_bits": bound["capacity_bits"],
         "capacity_bound_bits_ci": [lo_b["capacity_bits"], hi_b["capacity_bits"]],
         "capacity_share_of_training_set": bound["capacity_share_of_training_bits"],
         "capacity_share_of_training_set_ci": [lo_b["capacity_share_of_training_bits"],
                                               min(1.0, hi_b["capacity_share_of_training_bits"])]}
    return m


def verdicts(m: dict) -> list[str]:
    """The capacity sentences, from the metrics alone."""
    b, (lo, hi) = m["capacity_bits_per_param"], m["capacity_bits_per_param_ci"]
    sizes = ", ".join(f"{k} ({m['capacity_n_params_by_model'][k]:,} params): {v:,.0f} bits "
                      f"[{m['capacity_plateau_bits_by_model_ci'][k][0]:,.0f}, {m['capacity_plateau_bits_by_model_ci'][k][1]:,.0f}]"
                      + ("" if m["capacity_saturated_by_model"][k] else " (NOT saturated)")
                      for k, v in m["capacity_plateau_bits_by_model"].items())
    morris = m["capacity_bits_per_param_morris"]
    out = [f"- Capacity on random data: plateaus {sizes}.",
           f"  Fitted capacity {b:.2f} bits/parameter [{lo:.2f}, {hi:.2f}] against Morris et al.'s ~{morris}: "
           + ("below theirs at this scale (small models, short training)." if hi < morris else
              "above theirs." if lo > morris else "consistent with theirs."),
           f"  So the study's model can hold at most {m['capacity_bound_bits']:,.0f} bits "
           f"[{m['capacity_bound_bits_ci'][0]:,.0f}, {m['capacity_bound_bits_ci'][1]:,.0f}], "
           f"{m['capacity_share_of_training_set']:.1%} [{m['capacity_share_of_training_set_ci'][0]:.1%}, "
           f"{m['capacity_share_of_training_set_ci'][1]:.1%}] of its training set's raw bits: the most of it the "
           "weights could store verbatim."]
    return out
