"""Notebook 03, memorization: the figures (error bars from the intervals the tables carry)."""

from __future__ import annotations

import math

import pandas as pd

from copystudy.memorization import extraction
from copystudy.experiments.memorization.steps import Criterion, Ladder


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
