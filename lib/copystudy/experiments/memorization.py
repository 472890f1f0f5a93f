"""Notebook 03, memorization: when can a model reconstruct its training works?

Diffusion extraction (Carlini et al. 2023) against the number of training images and against training
length, and planted canaries in byte-level LMs (Carlini et al. 2019, 2022) against duplication and
model size. Each function here is one step of the notebook: it takes data and parameters and returns
data (tables, samples); `summarize` turns them into the numbers of metrics.json and `verdicts` into
the sentences the notebook prints, so the prose cannot contradict the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from copystudy import canaries, extraction, models, parallel
from copystudy.training import progress
from copystudy.verdicts import rises


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


@dataclass
class Ladder:
    """Extraction against training-set size N: one row per N, and per N its samples and table."""

    table: pd.DataFrame
    tables: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)
    n_params: int = 0
    baseline: float = 0.0  # the criterion's false-positive rate on real held-out images


def ladder_sizes(n_ladder: list[int], pool_size: int) -> list[int]:
    """The training-set sizes N, capped at the pool, without repeats, increasing."""
    return sorted({min(int(n), pool_size) for n in n_ladder})


def diffusion(model: dict, images: np.ndarray, seed: int):
    """A fresh diffusion model from the spec, shaped like the images."""
    return models.build(model, image_size=images.shape[-1], channels=images.shape[1], seed=seed)


def extraction_ladder(train_pool, heldout, sizes, model: dict, train_steps: int, batch_size: int, lr: float,
                      n_samples: int, inference_steps: int, criterion: Criterion, seed: int = 0) -> Ladder:
    """For each N: a fresh model trained on the first N images of the pool, sampled, every sample
    matched to its nearest training and held-out image."""
    rung = partial(_ladder_rung, train_pool, heldout, model, train_steps, batch_size, lr, n_samples, inference_steps,
                   criterion, seed)
    rows, ladder = [], Ladder(pd.DataFrame())
    for n, (table, samples, n_params, row) in zip(sizes, parallel.map_tasks(rung, sizes, desc="ladder of N")):
        ladder.tables[n], ladder.samples[n], ladder.n_params = table, samples, n_params
        rows.append(row)
    ladder.table = pd.DataFrame(rows)
    ladder.baseline = extraction.heldout_baseline_rate(train_pool[:sizes[-1]], heldout, criterion.distance,
                                                       criterion.threshold, criterion.ratio, criterion.grid)
    return ladder


def _ladder_rung(train_pool, heldout, model: dict, train_steps: int, batch_size: int, lr: float, n_samples: int,
                 inference_steps: int, criterion: Criterion, seed: int, n: int):
    """One rung of the ladder (a task): a model trained on the first n images, sampled and matched."""
    net = diffusion(model, train_pool, seed)
    losses = net.fit(train_pool[:n], train_steps, batch_size=batch_size, lr=lr, seed=seed, desc=f"train N={n}")
    samples = net.sample(n_samples, seed=seed, num_inference_steps=inference_steps)
    table = criterion.table(samples, train_pool[:n], heldout)
    table["carlini_ratio"] = extraction.carlini_ratio(samples, train_pool[:n], criterion.distance, grid=criterion.grid)
    row = {"N": n, "extraction_rate": extraction.extraction_rate(table),
           "distinct_images_copied": extraction.copied_images(table),
           **{f"rate_{d}": extraction.extraction_rate(criterion.table(samples, train_pool[:n], heldout, d))
              for d in ("l2", "tiled_l2")},
           "median_d_train": table["d_train"].median(), "median_d_heldout": table["d_heldout"].median(),
           "median_carlini_ratio": table["carlini_ratio"].median(),
           "final_loss": float(np.mean(losses[-50:]))}
    return table, samples, net.n_params, row


def training_length(train_pool, heldout, n: int, steps: list[int], model: dict, batch_size: int, lr: float,
                    n_samples: int, inference_steps: int, criterion: Criterion, seed: int = 0) -> pd.DataFrame:
    """One model on N images trained in successive chunks (warm restarts), sampled after each."""
    net, done, rows = diffusion(model, train_pool, seed), 0, []
    for total in progress(sorted(steps), desc=f"training length, N={n}"):
        net.fit(train_pool[:n], total - done, batch_size=batch_size, lr=lr, seed=seed + total,
                desc=f"steps {done}-{total}")
        done = total
        samples = net.sample(n_samples, seed=seed, num_inference_steps=inference_steps)
        table = criterion.table(samples, train_pool[:n], heldout)
        rows.append({"steps": total, "extraction_rate": extraction.extraction_rate(table),
                     "distinct_images_copied": extraction.copied_images(table),
                     "median_d_train": table["d_train"].median()})
    return pd.DataFrame(rows)


def canaries_by_model_size(planted: dict[str, bytes], planted_canaries, lm_sizes: list[dict], context: int,
                           steps: int, batch_size: int, lr: float, n_candidates: int, seed: int = 0):
    """A byte LM of every size trained on the planted text, every canary measured: (per canary, per
    model size and duplication, per model size)."""
    one_size = partial(_canary_model, planted, planted_canaries, context, steps, batch_size, lr, n_candidates, seed)
    reports, size_rows = zip(*parallel.map_tasks(one_size, lm_sizes, desc="LM sizes",
                                                 cost=lambda shape: shape.get("n_layer", 2) * shape.get("n_embd", 64) ** 2))
    report = pd.concat(reports, ignore_index=True)
    return report, canaries.summarise(report, by=("n_params", "model", "dup")), pd.DataFrame(size_rows)


def _canary_model(planted, planted_canaries, context: int, steps: int, batch_size: int, lr: float,
                  n_candidates: int, seed: int, shape: dict):
    """One LM size of the canary test (a task): trained on the planted text, every canary measured."""
    lm = models.build({"family": "causal_lm", "context": context, **shape}, seed=seed)
    losses = lm.fit(planted, steps, batch_size=batch_size, lr=lr, seed=seed, desc=f"LM {shape}")
    label = f"{lm.n_params / 1e3:.0f}K"
    report = canaries.canary_report(lm, planted_canaries, n_candidates, seed)
    report["n_params"], report["model"] = lm.n_params, label
    return report, {"model": label, "n_params": lm.n_params, **shape,
                    "final_loss_bits_per_byte": float(np.mean(losses[-50:])) / np.log(2)}


def summarize(ladder: Ladder, length: pd.DataFrame, length_n: int, by_dup_size: pd.DataFrame, n_samples: int,
              criterion: Criterion) -> dict:
    """The numbers of metrics.json."""
    largest = by_dup_size[by_dup_size["n_params"] == by_dup_size["n_params"].max()]
    by_size = by_dup_size.groupby("n_params")
    return {
        "extraction_rate_by_n": {int(r.N): float(r.extraction_rate) for r in ladder.table.itertuples()},
        "extraction_rate_tiled_by_n": {int(r.N): float(r.rate_tiled_l2) for r in ladder.table.itertuples()},
        "extraction_rate_by_steps": {int(r.steps): float(r.extraction_rate) for r in length.itertuples()},
        "length_n": int(length_n),
        "heldout_false_positive_rate": ladder.baseline,
        "largest_lm": str(largest["model"].iloc[0]),
        "extractable_fraction_by_dup": {int(r.dup): float(r.extractable_fraction) for r in largest.itertuples()},
        "exposure_by_dup": {int(r.dup): float(r.exposure) for r in largest.itertuples()},
        "exposure_extrapolated_by_dup": {int(r.dup): float(r.exposure_extrapolated) for r in largest.itertuples()},
        "extractable_fraction_by_size": {int(p): float(g["extractable_fraction"].mean()) for p, g in by_size},
        "exposure_by_size": {int(p): float(g["exposure"].mean()) for p, g in by_size},
        "diffusion_params": ladder.n_params, "n_samples": n_samples, "threshold": criterion.threshold,
        "ratio": criterion.ratio, "distance": criterion.distance,
    }


def verdicts(m: dict, n_candidates: int) -> list[str]:
    """What the numbers say against what the papers report, one sentence each."""
    rates, steps = m["extraction_rate_by_n"], m["extraction_rate_by_steps"]
    small, large = min(rates), max(rates)
    out = [f"Extraction rate at N={small}: {rates[small]:.2f}; at N={large}: {rates[large]:.2f} "
           f"(held-out control {m['heldout_false_positive_rate']:.3f}).",
           "-> As in Carlini et al.: a model trained on few images reproduces them; with many images it generalises."
           if rates[small] > rates[large] + 0.3 else
           "-> The expected fall of extraction with N does NOT appear clearly at this scale and training length."]
    t_len, said = rises(steps, "-> Longer training memorises more, as expected.",
                        "-> The expected rise with training length is not clear here.")
    out += [f"Extraction vs training length at N={m['length_n']}: rates {[round(v, 2) for v in steps.values()]} "
            f"at steps {list(steps)} (rank correlation {t_len:.2f}).", said]
    expo = m["exposure_by_dup"]
    _, said = rises(expo, "-> Exposure rises with duplication, as in the Secret Sharer.",
                    "-> Exposure does NOT clearly rise with duplication at this scale.")
    out += [f"Largest LM ({m['largest_lm']}): extractable fraction by duplication "
            f"{ {d: round(v, 2) for d, v in m['extractable_fraction_by_dup'].items()} }, exposure (bits, max "
            f"{np.log2(n_candidates + 1):.1f}) { {d: round(v, 1) for d, v in expo.items()} }.", said]
    by_size = m["exposure_by_size"]
    t_size, said = rises(by_size, "-> Larger models memorise more, as in Carlini et al. 2022.",
                         "-> The rise with model size does NOT appear at this scale (small models, short training).")
    out += [f"Mean exposure by model size: { {p: round(v, 1) for p, v in by_size.items()} } "
            f"(rank correlation {t_size:.2f}).", said]
    return out


# ---- figures ----------------------------------------------------------------------------------------
def plot_ladder(ladder: Ladder, criterion: Criterion, train_steps: int):
    """Extraction rate against N under both distances, and how close samples come to the training set."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    long = ladder.table.melt(id_vars="N", value_vars=["rate_l2", "rate_tiled_l2"], var_name="distance",
                             value_name="rate")
    sns.lineplot(data=long, x="N", y="rate", hue="distance", marker="o", ax=axes[0])
    axes[0].axhline(ladder.baseline, color="gray", ls=":", label="held-out control")
    axes[0].set(xscale="log", xlabel="training images N (log scale)", ylabel="fraction of samples extracted",
                title=f"Extraction rate vs N ({train_steps} steps)", ylim=(-0.02, 1.02))
    axes[0].legend()
    dists = pd.concat([t.assign(N=n) for n, t in ladder.tables.items()])
    sns.boxplot(data=dists, x="N", y="d_train", ax=axes[1], color="tab:blue")
    axes[1].axhline(criterion.threshold, color="tab:red", ls="--", label=f"threshold {criterion.threshold}")
    axes[1].set(xlabel="training images N", ylabel=f"{criterion.distance} to nearest training image",
                title="How close samples come to the training set")
    axes[1].legend()
    return fig


def plot_nearest_pairs(ladder: Ladder, train_pool):
    """Per N, the samples closest to a training image (top) above that image (bottom)."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 1.5 * 2 * len(ladder.tables)))
    extraction.plot_pairs(fig, [(f"N={n}", ladder.samples[n], train_pool[:n], t) for n, t in ladder.tables.items()], n=8)
    fig.suptitle("Samples (top) and their nearest training images (bottom), most-copied first", y=1.0)
    return fig


def plot_training_length(length: pd.DataFrame, n: int):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5.5, 4))
    sns.lineplot(data=length, x="steps", y="extraction_rate", marker="o", ax=ax)
    ax.set(xlabel="training steps", ylabel="fraction of samples extracted", ylim=(-0.02, 1.02),
           title=f"Extraction rate vs training length (N={n})")
    return fig


def plot_canaries(by_dup_size: pd.DataFrame, n_candidates: int):
    """Extractability and exposure against duplication, and exposure against model size."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    sns.lineplot(data=by_dup_size, x="dup", y="extractable_fraction", hue="model", marker="o", ax=axes[0])
    axes[0].set(xlabel="times the canary is in the training text", ylabel="fraction k-extractable",
                title="Greedy extraction vs duplication", ylim=(-0.02, 1.02))
    sns.lineplot(data=by_dup_size, x="dup", y="exposure", hue="model", marker="o", ax=axes[1])
    axes[1].axhline(np.log2(n_candidates + 1), color="gray", ls=":", label="maximum, log2 |R|")
    axes[1].set(xlabel="times the canary is in the training text", ylabel="exposure (bits)",
                title="Exposure vs duplication")
    axes[1].legend()
    for ax in axes[:2]:
        ax.set_xscale("log", base=2)
    sns.lineplot(data=by_dup_size, x="n_params", y="exposure", hue="dup", marker="o", palette="viridis", ax=axes[2])
    sizes = sorted(by_dup_size["n_params"].unique())
    axes[2].set(xscale="log", xlabel="model parameters (log scale)", ylabel="exposure (bits)",
                title="Exposure vs model size")
    axes[2].set_xticks(sizes, [f"{p / 1e3:.0f}K" for p in sizes])
    axes[2].minorticks_off()
    for ax in axes:  # below the panels, where they hide no curve
        handles, labels = ax.get_legend_handles_labels()
        title = ax.get_legend().get_title().get_text() if ax.get_legend() else None
        ax.legend(handles, labels, title=title, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, frameon=False)
    fig.tight_layout()
    return fig
