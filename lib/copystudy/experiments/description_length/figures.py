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
    axes[2].set_xticks(pos, [f"{b} bits" + ("" if q else "\n(float32)") for b, q in
                             zip(two_part["bits_per_param"], two_part["quantized"])])
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


def plot_memorized(table: pd.DataFrame, n_seeds: int):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    labels = [f"{w}\n({'x%d' % c if c else 'held out'})" for w, c in zip(table["work"], table["copies"])]
    colors = ["tab:red" if c > 1 else ("tab:blue" if c == 1 else "tab:gray") for c in table["copies"]]
    pos = np.arange(len(table))
    for ax, col in zip(axes, ("memorized_bits", "memorized_bits_per_byte")):
        err = np.vstack([table[col] - table[f"{col}_low"], table[f"{col}_high"] - table[col]])
        ax.bar(pos, table[col], color=colors)
        ax.errorbar(pos, table[col], yerr=err, fmt="none", color="k", capsize=3)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(pos, labels, rotation=60, fontsize=7)
    axes[0].set(ylabel="memorised bits", title="bits(x | x swapped out) − bits(x | with x)")
    axes[1].set(ylabel="bits per byte", title="per byte")
    fig.suptitle(f"Red: duplicated work; blue: works seen once; grey: held-out controls. Mean of {n_seeds} seeds; "
                 "error bars: 95% intervals over seeds", fontsize=9)
    fig.tight_layout()
    return fig
