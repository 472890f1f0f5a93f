"""Notebook 03, memorization: when can a model reconstruct its training works?

Diffusion extraction (Carlini et al. 2023) against the number of training images N at matched training
(the same number of epochs, passes over the N images, at every N, at two budgets), and planted canaries
in byte-level LMs (Carlini et al. 2019, 2022) against the number of times the model saw them (copies x
epochs) and model size. Every cell is trained with several seeds. Each function here is one step of the
notebook: it takes data and parameters and returns data (tables, samples); `summarize` turns them into
the numbers of metrics.json and `verdicts` into the sentences the notebook prints, so the prose cannot
contradict the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from copystudy.memorization import canaries, extraction
from copystudy import models
from copystudy.common import parallel
from copystudy.common.intervals import mean_ci, separated, wilson

# diffusion step cost in ms on one thread, t(batch) ~ 8 + 0.22 batch (164K-parameter UNet, 8x8 images):
# the relative cost of a task, so the costliest start first
STEP_OVERHEAD = 36


@dataclass
class Criterion:
    """When a sample counts as extracted: distance, threshold, ratio to held-out, tile grid."""

    distance: str = "l2"
    threshold: float = 0.15
    ratio: float = 0.5
    grid: int = 4

    def table(self, samples, train, heldout, distance: str | None = None) -> pd.DataFrame:
        return extraction.extraction_table(samples, train, heldout, distance or self.distance, self.threshold,
                                           self.ratio, self.grid)

    def describe(self) -> str:
        return f"{self.distance} <= {self.threshold} and <= {self.ratio} x nearest held-out"


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


def extraction_ladder(train_pool, heldout, sizes, epoch_budgets, seeds, model: dict, batch_size: int, lr: float,
                      n_samples: int, inference_steps: int, criterion: Criterion) -> Ladder:
    """For each (budget, N, seed): a fresh model trained on the first N images of the pool for the budget's
    epochs, sampled, every sample matched to its nearest training and held-out image. One stage of tasks."""
    design = ladder_design(sizes, epoch_budgets, seeds, batch_size)
    rung = partial(_ladder_rung, train_pool, heldout, model, lr, n_samples, inference_steps, criterion)
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


def _ladder_rung(train_pool, heldout, model: dict, lr: float, n_samples: int, inference_steps: int,
                 criterion: Criterion, cell: dict):
    """One cell of the ladder (a task): a model trained on the first N images, sampled and matched."""
    n, seed = cell["N"], cell["seed"]
    net = diffusion(model, train_pool, seed)
    losses = net.fit(train_pool[:n], cell["steps"], batch_size=cell["batch"], lr=lr, seed=seed,
                     desc=f"train N={n}, {cell['epochs']} epochs, seed {seed}")
    samples = net.sample(n_samples, seed=seed, num_inference_steps=inference_steps)
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


# ---- canaries ------------------------------------------------------------------------------------------
def lm_epochs(steps: int, batch_size: int, context: int, text_bytes: int) -> float:
    """Passes over the training text: bytes predicted (steps x batch x context, random windows) / bytes
    of text. On average every byte, so every planted copy of a canary, is seen this many times."""
    return steps * batch_size * context / text_bytes


def exposures(dup: int, epochs: float) -> float:
    """Times the model saw a canary: its copies in the text x the passes over the text."""
    return dup * epochs


def canary_runs(planted_by_seed: dict, canaries_by_seed: dict, lm_sizes: list[dict], context: int, steps: int,
                batch_size: int, lr: float, n_candidates: int):
    """A byte LM of every size trained on every seed's planted text (that seed's canaries), every canary
    measured; one stage of (seed, size) tasks. Returns (per canary, per model size and seed)."""
    items = [(s, shape) for s in sorted(planted_by_seed) for shape in lm_sizes]
    task = partial(_canary_model, planted_by_seed, canaries_by_seed, context, steps, batch_size, lr, n_candidates)
    out = parallel.map_tasks(task, items, desc="LM (seed, size)",
                             cost=lambda it: it[1].get("n_layer", 2) * it[1].get("n_embd", 64) ** 2)
    reports, size_rows = zip(*out)
    return pd.concat(reports, ignore_index=True), pd.DataFrame(size_rows)


def _canary_model(planted_by_seed, canaries_by_seed, context: int, steps: int, batch_size: int, lr: float,
                  n_candidates: int, item):
    """One (seed, LM size) of the canary test (a task): trained on that seed's planted text, measured."""
    seed, shape = item
    planted = planted_by_seed[seed]
    lm = models.build({"family": "causal_lm", "context": context, **shape}, seed=seed)
    losses = lm.fit(planted, steps, batch_size=batch_size, lr=lr, seed=seed, desc=f"LM {shape}, seed {seed}")
    label = f"{lm.n_params / 1e3:.0f}K"
    report = canaries.canary_report(lm, canaries_by_seed[seed], n_candidates, seed)
    epochs = lm_epochs(steps, batch_size, context, sum(map(len, planted.values())))
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


# ---- metrics and verdicts ------------------------------------------------------------------------------
def summarize(ladder: Ladder, cans: pd.DataFrame, lm_table: pd.DataFrame, n_samples: int, criterion: Criterion,
              n_candidates: int, n_digits: int) -> dict:
    """The numbers of metrics.json. Extraction rates: pooled over seeds, `_ci` Wilson over the pooled
    samples (`_seed_ci`: t over the per-seed rates). Exposures: mean over seeds, `_ci` t over seeds."""
    t, budgets = ladder.table, sorted(ladder.table["epochs"].unique())
    by_budget = lambda col: {int(e): {int(r.N): float(getattr(r, col)) for r in t[t["epochs"] == e].itertuples()}
                             for e in budgets}
    pair = lambda lo, hi, frame, key: {int(getattr(r, key)): [float(getattr(r, lo)), float(getattr(r, hi))]
                                       for r in frame.itertuples()}
    m = {
        "n_seeds": int(t["n_seeds"].min()), "epoch_budgets": [int(e) for e in budgets],
        "extraction_rate_by_n": by_budget("rate"),
        "extraction_rate_by_n_ci": {int(e): pair("rate_low", "rate_high", t[t["epochs"] == e], "N") for e in budgets},
        "extraction_rate_by_n_seed_ci": {int(e): pair("seed_low", "seed_high", t[t["epochs"] == e], "N")
                                         for e in budgets},
        "steps_by_n": by_budget("steps"),
        "heldout_control_rate_by_n": {int(r.N): float(r.control_rate) for r in ladder.control.itertuples()},
        "heldout_control_rate_by_n_ci": pair("control_low", "control_high", ladder.control, "N"),
        "transition_n": {int(e): transition_n(t, e) for e in budgets},
        "extraction_rate_high_budget_by_n": by_budget("rate")[int(budgets[-1])],
        "diffusion_params": ladder.n_params, "n_samples_per_seed": n_samples, "threshold": criterion.threshold,
        "ratio": criterion.ratio, "distance": criterion.distance,
    }
    log2_r, cap = math.log2(n_candidates + 1), n_digits * math.log2(10)
    models = list(dict.fromkeys(cans.sort_values("n_params")["model"]))
    per_model = lambda col: {mo: {int(r.dup): float(getattr(r, col)) for r in cans[cans["model"] == mo].itertuples()}
                             for mo in models}
    per_model_ci = lambda col: {mo: {int(r.dup): [float(getattr(r, f"{col}_low")), float(getattr(r, f"{col}_high"))]
                                     for r in cans[cans["model"] == mo].itertuples()} for mo in models}
    m.update({
        "lm_models": models, "lm_params": {mo: int(cans[cans["model"] == mo]["n_params"].iloc[0]) for mo in models},
        "lm_epochs": float(lm_table["epochs"].mean()),
        "exposures_by_dup": {int(r.dup): float(r.exposures) for r in cans[cans["model"] == models[0]].itertuples()},
        "exposure_by_dup": per_model("exposure"), "exposure_by_dup_ci": per_model_ci("exposure"),
        "exposure_skewnorm_by_dup": per_model("exposure_skewnorm"),
        "exposure_skewnorm_by_dup_ci": per_model_ci("exposure_skewnorm"),
        "extractable_fraction_by_dup": per_model("extractable"),
        "extractable_fraction_by_dup_ci": per_model_ci("extractable"),
        "log2_R": log2_r, "log2_format_space": cap,
        "rank_exposure_saturates_at_exposures": saturation(cans),
        "skewnorm_exposure_reaches_cap_at_exposures": {
            mo: next((float(r.exposures) for r in cans[cans["model"] == mo].sort_values("exposures").itertuples()
                      if r.exposure_skewnorm >= cap - 1e-6), None) for mo in models},
    })
    return m


def _ci(ci) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def verdicts(m: dict) -> list[str]:
    """What the numbers say against what the papers report, one sentence each, from the intervals."""
    out = []
    rates, cis, control = m["extraction_rate_by_n"], m["extraction_rate_by_n_ci"], m["heldout_control_rate_by_n_ci"]
    budgets = m["epoch_budgets"]
    for e in budgets:
        ns = sorted(rates[e])
        small, large = ns[0], ns[-1]
        line = (f"{e} epochs at every N: extraction rate {rates[e][small]:.2f} {_ci(cis[e][small])} at N={small}, "
                f"{rates[e][large]:.2f} {_ci(cis[e][large])} at N={large} (held-out control at N={large}: "
                f"{m['heldout_control_rate_by_n'][large]:.3f} {_ci(control[large])}).")
        if separated(cis[e][small], cis[e][large]) and rates[e][small] > rates[e][large]:
            said = (f"-> At matched training ({e} epochs) extraction still falls with N, and the intervals separate: "
                    "the fall is not only the extra passes small training sets used to get.")
        elif separated(cis[e][small], cis[e][large]):
            said = f"-> At {e} epochs extraction RISES with N (intervals separate), against the expected fall."
        else:
            said = f"-> At {e} epochs the rates at N={small} and N={large} do not separate: no fall with N at this budget."
        tn = m["transition_n"][e]
        where = (f"the largest N whose rate lies above the held-out control (intervals separate) is {tn}" if tn is not None
                 else "at no N does the rate lie above the held-out control (intervals separate)")
        out += [line, said, f"   At {e} epochs {where}."]
    if len(budgets) >= 2:
        lo, hi = budgets[0], budgets[-1]
        ns = sorted(rates[hi])
        up = [n for n in ns if separated(cis[lo][n], cis[hi][n]) and rates[hi][n] > rates[lo][n]]
        down = [n for n in ns if separated(cis[lo][n], cis[hi][n]) and rates[hi][n] < rates[lo][n]]
        same = [n for n in ns if n not in up and n not in down]
        parts = ([f"more than {lo} epochs at N={up}"] if up else []) + ([f"fewer at N={down}"] if down else [])
        out.append(f"Training budget at fixed N: {hi} epochs extract "
                   + ("; ".join(parts) + " (intervals separate)" if parts else f"no more than {lo} epochs at any N")
                   + (f"; the intervals overlap at N={same}" if same and parts else "") + ".")
        tl, th = m["transition_n"][lo], m["transition_n"][hi]
        name = lambda n: "none" if n is None else f"N={n}"
        if tl is None and th is None:
            out.append("-> No N is memorised (rate above the control) at either budget: this budget cannot place the "
                       "transition.")
        elif tl != th:
            out.append("-> The memorisation transition moves with the training budget (largest N memorised: "
                       f"{name(tl)} at {lo} epochs, {name(th)} at {hi} epochs): where it lies is set by training, not "
                       "by the data alone.")
        else:
            out.append(f"-> The largest N memorised is the same ({name(tl)}) at both budgets: at this scale the "
                       "transition does not move with training length.")
    log2_r, cap = m["log2_R"], m["log2_format_space"]
    models, expo, expo_ci = m["lm_models"], m["exposure_by_dup"], m["exposure_by_dup_ci"]
    sk, sk_ci = m["exposure_skewnorm_by_dup"], m["exposure_skewnorm_by_dup_ci"]
    seen = m["exposures_by_dup"]
    for mo in models:
        dups = sorted(expo[mo])
        d0, d1 = dups[0], dups[-1]
        rise = separated(expo_ci[mo][d0], expo_ci[mo][d1]) and expo[mo][d1] > expo[mo][d0]
        sat = m["rank_exposure_saturates_at_exposures"][mo]
        out.append(f"LM {mo}: exposure {expo[mo][d0]:.1f} {_ci(expo_ci[mo][d0])} bits after {seen[d0]:.3g} exposures, "
                   f"{expo[mo][d1]:.1f} {_ci(expo_ci[mo][d1])} after {seen[d1]:.3g} "
                   + ("(rises, intervals separate); " if rise else "(intervals overlap); ")
                   + (f"the rank exposure saturates at log2|R| = {log2_r:.1f} bits from {sat:.3g} exposures, where the "
                      f"skew-normal extrapolation reads {sk[mo][_dup_at(seen, sat)]:.1f} "
                      f"{_ci(sk_ci[mo][_dup_at(seen, sat)])} bits (cap {cap:.1f})."
                      if sat is not None else f"the rank exposure never saturates at log2|R| = {log2_r:.1f} bits "
                      f"(skew-normal at {seen[d1]:.3g} exposures: {sk[mo][d1]:.1f} {_ci(sk_ci[mo][d1])} bits).")
                   + (f" The skew-normal estimate reaches its cap from {capped:.3g} exposures."
                      if (capped := m["skewnorm_exposure_reaches_cap_at_exposures"][mo]) is not None else ""))
    small, large = models[0], models[-1]
    for d in sorted({sorted(expo[small])[0], sorted(expo[small])[-1]}):
        out.append(f"Model size at {seen[d]:.3g} exposures: {small} {expo[small][d]:.1f} {_ci(expo_ci[small][d])}, "
                   f"{large} {expo[large][d]:.1f} {_ci(expo_ci[large][d])} bits (rank exposure); skew-normal "
                   f"{sk[small][d]:.1f} {_ci(sk_ci[small][d])} vs {sk[large][d]:.1f} {_ci(sk_ci[large][d])}.")
        bigger = separated(expo_ci[small][d], expo_ci[large][d]) and expo[large][d] > expo[small][d]
        out.append(f"-> At {seen[d]:.3g} exposures the larger model memorises more, intervals separate, as in Carlini "
                   "et al. 2022." if bigger else
                   f"-> At {seen[d]:.3g} exposures the difference with model size does NOT separate from seed noise.")
    return out


def _dup_at(seen: dict, count: float) -> int:
    """The duplication count whose exposures equal `count`."""
    return min(seen, key=lambda d: abs(seen[d] - count))


# ---- figures ----------------------------------------------------------------------------------------
def plot_ladder(ladder: Ladder, criterion: Criterion):
    """Extraction rate against N at each budget (pooled Wilson intervals, per-seed rates as dots, the
    held-out control band), and how close samples come to the training set."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax, t, c = axes[0], ladder.table, ladder.control
    ax.fill_between(c["N"], c["control_low"], c["control_high"], color="gray", alpha=0.3,
                    label="held-out control (95% interval)")
    palette = dict(zip(sorted(t["epochs"].unique()), sns.color_palette("deep")))
    for e, g in t.groupby("epochs"):
        ax.errorbar(g["N"], g["rate"], yerr=[g["rate"] - g["rate_low"], g["rate_high"] - g["rate"]], marker="o",
                    capsize=3, color=palette[e], label=f"{e} epochs (pooled seeds, Wilson 95%)")
        runs = ladder.runs[ladder.runs["epochs"] == e]
        ax.scatter(runs["N"] * 1.04, runs["extraction_rate"], s=12, color=palette[e], alpha=0.6, marker="x")
    ax.set(xscale="log", xlabel="training images N (log scale)", ylabel="fraction of samples extracted",
           title="Extraction rate vs N at matched epochs (x: single seeds)", ylim=(-0.02, 1.02))
    ax.set_xticks(sorted(t["N"].unique()), [str(n) for n in sorted(t["N"].unique())])
    ax.minorticks_off()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False, fontsize=8)
    dists = pd.concat([tab.assign(N=n, epochs=e) for (e, n, s), tab in ladder.tables.items()])
    sns.boxplot(data=dists, x="N", y="d_train", hue="epochs", ax=axes[1], palette=palette, fliersize=1)
    axes[1].axhline(criterion.threshold, color="tab:red", ls="--", label=f"threshold {criterion.threshold}")
    axes[1].set(xlabel="training images N", ylabel=f"{criterion.distance} to nearest training image",
                title="How close samples come to the training set")
    axes[1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False, fontsize=8,
                   title="epochs", title_fontsize=8)
    fig.tight_layout()
    return fig


def plot_nearest_pairs(ladder: Ladder, train_pool, epochs: int, seed: int):
    """Per N, at one budget and seed, the samples closest to a training image (top) above that image."""
    import matplotlib.pyplot as plt

    keys = sorted(k for k in ladder.tables if k[0] == epochs and k[2] == seed)
    fig = plt.figure(figsize=(10, 1.5 * 2 * len(keys)))
    extraction.plot_pairs(fig, [(f"N={n}", ladder.samples[k], train_pool[:n], ladder.tables[k])
                                for k in keys for n in [k[1]]], n=8)
    fig.suptitle(f"Samples (top) and their nearest training images (bottom), {epochs} epochs, seed {seed}, "
                 "most-copied first", y=1.0)
    return fig


def plot_canaries(cans: pd.DataFrame, sizes: pd.DataFrame, n_candidates: int, n_digits: int):
    """Rank and skew-normal exposure and extractability against exposures (copies x epochs), per model
    size (t intervals over seeds; Wilson for the fraction), and exposure against model size."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 4, figsize=(19, 4.4))
    models = list(dict.fromkeys(cans.sort_values("n_params")["model"]))
    colours = dict(zip(models, sns.color_palette("viridis", len(models))))
    panels = [("exposure", "rank exposure (bits)", "Exposure among |R| candidates"),
              ("exposure_skewnorm", "skew-normal exposure (bits)", "Extrapolated exposure (skew-normal fit)"),
              ("extractable", "fraction k-extractable", "Greedy extraction")]
    for ax, (col, ylabel, title) in zip(axes, panels):
        for mo in models:
            g = cans[cans["model"] == mo].sort_values("exposures")
            ax.errorbar(g["exposures"], g[col], yerr=[g[col] - g[f"{col}_low"], g[f"{col}_high"] - g[col]],
                        marker="o", capsize=3, color=colours[mo], label=mo)
        ax.set_xscale("log", base=2)
        ticks = sorted(cans["exposures"].unique())
        ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
        ax.minorticks_off()
        ax.set(xlabel="exposures: copies x epochs (log scale)", ylabel=ylabel, title=title)
    axes[0].axhline(math.log2(n_candidates + 1), color="gray", ls=":", label="log2 |R|")
    axes[1].axhline(math.log2(n_candidates + 1), color="gray", ls=":", label="log2 |R|")
    axes[1].axhline(n_digits * math.log2(10), color="black", ls="--", label="log2 of the format space (cap)")
    axes[2].set_ylim(-0.02, 1.02)
    dup_colours = dict(zip(sorted(sizes["dup"].unique()), sns.color_palette("rocket", sizes["dup"].nunique())))
    for d, g in sizes.groupby("dup"):
        g = g.sort_values("n_params")
        axes[3].errorbar(g["n_params"], g["exposure"], yerr=[g["exposure"] - g["exposure_low"],
                                                             g["exposure_high"] - g["exposure"]],
                         marker="o", capsize=3, color=dup_colours[d], label=f"{d} copies")
    ps = sorted(sizes["n_params"].unique())
    axes[3].set(xscale="log", xlabel="model parameters (log scale)", ylabel="rank exposure (bits)",
                title="Exposure vs model size")
    axes[3].set_xticks(ps, [f"{p / 1e3:.0f}K" for p in ps])
    axes[3].minorticks_off()
    for ax in axes:  # below the panels, where they hide no curve
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
