"""Notebook 02's figures; every error bar and band is drawn from the intervals computed in the summary
and the step tables."""

from __future__ import annotations

import numpy as np
import pandas as pd


# ---- code lengths ----------------------------------------------------------------------------------------
def _band(ax, x, df, col, color, label, ls="-"):
    ax.plot(x, df[col], ls, marker="o", color=color, label=label)
    if f"{col}_low" in df:
        ax.fill_between(x, df[f"{col}_low"], df[f"{col}_high"], color=color, alpha=0.2, lw=0)


def plot_code_lengths(sizes: pd.DataFrame, rates: pd.DataFrame, two_part: pd.DataFrame, n_params: int,
                      first_block: int, bits_per_param: int, n_seeds: int):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    x = sizes["train_bytes"]
    for key, label, ls, color in [("uniform", "uniform (8 bits/byte)", "-", "tab:gray"),
                                  ("two_part", f"two-part ({bits_per_param}-bit weights + data)", "-", "tab:red"),
                                  ("prequential", "prequential (online)", "-", "tab:blue"),
                                  ("data", "data given weights only (weights free)", ":", "tab:green")]:
        _band(axes[0], x, sizes, f"{key}_bits_per_byte", color, label, ls)
    axes[0].set(xscale="log", yscale="log", xlabel="training-set size (bytes)", ylabel="bits per byte",
                title="Code length of the first t bytes, per byte")
    axes[0].legend(fontsize=8)
    for seed in rates.columns:
        axes[1].plot(rates.index, rates[seed], color="tab:blue", alpha=0.35, lw=1)
    coded = sizes.dropna(subset=["next_block_bits_per_byte"])
    _band(axes[1], coded["train_bytes"], coded, "next_block_bits_per_byte", "tab:blue", "next block, mean over seeds")
    _band(axes[1], x, sizes, "heldout_bits_per_byte", "tab:purple", "fixed held-out text", "--")
    axes[1].set(xscale="log", xlabel="prefix the model trained on (bytes)", ylabel="bits per byte",
                title="Prequential blocks (thin: one seed each)")
    axes[1].legend(fontsize=8)
    pos = np.arange(len(two_part))
    err = np.vstack([two_part["total_bits"] - two_part["total_bits_low"], two_part["total_bits_high"] - two_part["total_bits"]])
    axes[2].bar(pos, two_part["model_bits"], color="tab:red", alpha=0.6, label="weights")
    axes[2].bar(pos, two_part["data_bits"], bottom=two_part["model_bits"], color="tab:green", alpha=0.6,
                label="data given the (quantised) weights")
    axes[2].errorbar(pos, two_part["total_bits"], yerr=err, fmt="none", color="k", capsize=3)
    axes[2].axhline(8 * sizes["train_bytes"].iloc[-1], color="tab:gray", lw=1, label="uniform code")
    axes[2].set_xticks(pos, [f"{b} bits" + ("" if q else " (fp32)") + f"\n{m}" for b, q, m in
                             zip(two_part["bits_per_param"], two_part["quantized"], two_part.get("model", [""] * len(two_part)))],
                       fontsize=7, rotation=30)
    axes[2].set(ylabel="bits", title="Two-part code of the whole text by weight precision")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"Byte-level GPT-2, {n_params:,} parameters; blocks double from {first_block} bytes; mean of "
                 f"{n_seeds} seeds, bands and bars: 95% intervals")
    fig.tight_layout()
    return fig


def plot_gap(doc_bits: pd.DataFrame, gap: dict):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    docs = doc_bits.groupby(["split", "document"], as_index=False)[["bits", "bytes"]].mean()
    docs["bits_per_byte"] = docs["bits"] / docs["bytes"]
    sns.stripplot(data=docs, x="split", y="bits_per_byte", size=4, ax=axes[0], hue="split", legend=False,
                  order=["train", "heldout"])
    for i, split in enumerate(["train", "heldout"]):
        g = docs[docs["split"] == split]
        axes[0].hlines(g["bits"].sum() / g["bytes"].sum(), i - 0.3, i + 0.3, color="k")
    axes[0].set(ylabel="bits per byte (each document coded alone)", xlabel="",
                title="Final model: every document, mean over seeds (black: byte-weighted mean)")
    axes[1].plot(np.zeros(len(gap["per_seed"])), gap["per_seed"], "o", color="tab:blue", alpha=0.6, label="one seed")
    axes[1].errorbar([0.3], [gap["gap_bits_per_byte"]], yerr=[[gap["gap_bits_per_byte"] - gap["low"]],
                                                             [gap["high"] - gap["gap_bits_per_byte"]]],
                     fmt="s", color="k", capsize=4, label="mean, 95% bootstrap interval")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set(xlim=(-0.5, 0.8), xticks=[], ylabel="held-out − fitted (bits per byte)", title="Generalisation gap")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_memorized(works: pd.DataFrame, m: dict):
    """Left: every work's memorised bits per byte by copies, against the null's 95th percentile; right:
    the dose-response, mean over works with its 95% interval (from metrics.json)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    rng = np.random.default_rng(0)
    x = np.log2(works["copies"]) + rng.uniform(-0.12, 0.12, len(works))
    axes[0].scatter(x, works["memorized_bits_per_byte"], c=np.where(works["above_null"], "tab:red", "tab:gray"), s=25)
    q = m["memorization_null_q95_bits_per_byte"]
    axes[0].axhline(q, color="k", ls="--", lw=1, label="null, 95th percentile (controls)")
    axes[0].axhline(0, color="k", lw=0.6)
    copies = sorted(m["memorized_bits_per_byte_by_copies"])
    axes[0].set_xticks(np.log2(copies), [f"x{c}" for c in copies])
    axes[0].set(xlabel="copies in the training set", ylabel="memorised bits per byte",
                title="Every work (red: above the null's 95th percentile)")
    axes[0].legend(fontsize=8)
    y = np.array([m["memorized_bits_per_byte_by_copies"][c] for c in copies])
    ci = np.array([m["memorized_bits_per_byte_by_copies_ci"][c] for c in copies])
    axes[1].errorbar(copies, y, yerr=[y - ci[:, 0], ci[:, 1] - y], marker="o", capsize=4, label="mean over works")
    axes[1].axhline(q, color="k", ls="--", lw=1, label="null, 95th percentile")
    axes[1].set(xscale="log", xticks=copies, xticklabels=[str(c) for c in copies], xlabel="copies",
                ylabel="memorised bits per byte", title="Dose-response, 95% bootstrap interval over works")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_capacity(cells: pd.DataFrame, m: dict):
    """Memorised bits against the random data's entropy for every model size (mean over seeds, with the
    seeds as dots) and each size's plateau with its interval (from metrics.json); the diagonal is
    'everything memorised'."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for name, g in cells.groupby("model", sort=False):
        mean = g.groupby("entropy_bits")["memorized_bits"].mean()
        line, = axes[0].plot(mean.index, mean.values, "o-", label=f"{name} ({m['capacity_n_params_by_model'][name]:,})")
        axes[0].scatter(g["entropy_bits"], g["memorized_bits"], color=line.get_color(), s=8, alpha=0.5)
        lo, hi = m["capacity_plateau_bits_by_model_ci"][name]
        axes[0].axhspan(lo, hi, color=line.get_color(), alpha=0.12)
    top = cells["entropy_bits"].max()
    axes[0].plot([0, top], [0, top], "k:", lw=1, label="all of it")
    axes[0].set(xscale="log", yscale="log", xlabel="entropy of the random data (bits)", ylabel="memorised bits",
                title="Random data: memorised bits rise, then level off (bands: plateaus)")
    axes[0].legend(fontsize=8, title="model (parameters)")
    names = list(m["capacity_plateau_bits_by_model"])
    p = np.array([m["capacity_n_params_by_model"][k] for k in names])
    y = np.array([m["capacity_plateau_bits_by_model"][k] for k in names])
    ci = np.array([m["capacity_plateau_bits_by_model_ci"][k] for k in names])
    axes[1].errorbar(p, y, yerr=[y - ci[:, 0], ci[:, 1] - y], fmt="o", capsize=4, label="plateau, 95% interval")
    xs = np.linspace(0, p.max() * 1.1, 50)
    lo, hi = m["capacity_bits_per_param_ci"]
    axes[1].plot(xs, m["capacity_bits_per_param"] * xs, color="tab:red",
                 label=f"fit: {m['capacity_bits_per_param']:.2f} bits/param")
    axes[1].fill_between(xs, lo * xs, hi * xs, color="tab:red", alpha=0.15, lw=0)
    axes[1].plot(xs, m["capacity_bits_per_param_morris"] * xs, "k--", lw=1, label="Morris et al.")
    axes[1].set(xlabel="parameters", ylabel="capacity (bits)", title="Capacity against parameters")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig
