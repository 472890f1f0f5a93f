"""Notebook 01's figures; the LM's error bars are its 95% intervals over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from copystudy.common import intervals
from copystudy.compression import baselines, rates
from copystudy.experiments.lm_compression.steps import ADAPTIVE, Trained


# ---- training, rates and sweep ----------------------------------------------------------------------------------------
def plot_training_loss(trained: list[Trained], train_text: bytes):
    """Training loss in bits per byte, a moving mean per seed (None when nothing was trained)."""
    import matplotlib.pyplot as plt

    if not trained[0].losses:
        return None
    lm = trained[0].lm
    tokens_per_byte = len(lm.tokens(train_text)) / len(train_text)  # 1 for a byte-level model
    fig, ax = plt.subplots(figsize=(7, 4))
    for t in trained:
        loss_bits = np.array(t.losses) / np.log(2) * tokens_per_byte
        window = max(1, len(loss_bits) // 30)
        ax.plot(np.arange(window - 1, len(loss_bits)), np.convolve(loss_bits, np.ones(window) / window, "valid"),
                lw=1.5, label=f"seed {t.seed} (moving mean, {window} steps)")
    ax.axhline(8, color="grey", ls=":", label="uniform code (8 bits/byte)")
    ax.set(xlabel="training step", ylabel="training loss (bits per byte)", ylim=(0, None),
           title=f"Training {lm.name} ({lm.n_params:,} parameters), {len(trained)} seeds")
    ax.legend()
    return fig


def plot_rates(table: pd.DataFrame, lm, chunk_size: int, corpus: str):
    """Raw rates as bars, chunked and unchunked; the LM's bar is the mean over seeds with its 95% interval."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    chunked, unchunked = rates.chunking_label(chunk_size), rates.chunking_label(None)
    data = table[table["text"].isin(["heldout", "train"]) & ~table["compressor"].str.endswith("_primed")].copy()
    adaptive = data["chunking"] == ADAPTIVE
    data.loc[adaptive, "compressor"], data.loc[adaptive, "chunking"] = "lm_adaptive", unchunked
    names = {"lm": "LM", "lm_adaptive": "LM\nadaptive"}
    data = data.assign(rate_pct=100 * data["raw_rate"], compressor=data["compressor"].replace(names),
                       text=data["text"].replace({"heldout": "held-out text (never trained on)",
                                                  "train": "training sample"}))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True, width_ratios=[7, 7 + adaptive.any()])
    for ax, chunking in zip(axes, (chunked, unchunked)):
        panel = data[data["chunking"] == chunking]
        order = [n for n in (names["lm"], names["lm_adaptive"], *baselines.COMPRESSORS) if n in set(panel.compressor)]
        sns.barplot(data=panel, x="compressor", y="rate_pct", hue="text", order=order, palette="deep", capsize=0.15,
                    errorbar=lambda x: intervals.mean_ci(x)[1:], ax=ax, legend=ax is axes[-1])
        ax.set(title=chunking, xlabel="", ylabel="raw compression rate (%)")
        ax.grid(axis="x", visible=False)
    axes[-1].legend(title="coded text", loc="upper right")
    fig.suptitle(f"Compressed size / original size on {corpus} (LM: {lm.n_params:,} params, weights not counted;"
                 f" LM bars: mean and 95% interval over seeds)")
    fig.tight_layout()
    return fig


def plot_sweep(table: pd.DataFrame, best: pd.DataFrame, m: dict):
    """The adjusted rate against model size per data size, mean and 95% interval over seeds from
    metrics.json (best marked); and the raw rates (means over seeds)."""
    import matplotlib.pyplot as plt

    adjusted, ax = plt.subplots(figsize=(7, 4.5))
    sizes = table.groupby("model", sort=False)["n_params"].first()
    colors = plt.cm.viridis(np.linspace(0, 0.9, table["data_bytes"].nunique()))
    for color, d in zip(colors, sorted(table["data_bytes"].unique())):
        keys = [f"{int(d)}/{name}" for name in sizes.index]
        y = np.array([m["sweep_adjusted_rate"][k] for k in keys])
        ci = np.array([m["sweep_adjusted_rate_ci"][k] for k in keys])
        ax.errorbar(sizes.to_numpy(), y, yerr=[y - ci[:, 0], ci[:, 1] - y], marker="o", color=color, capsize=3,
                    label=f"{d / 1000:.0f} KB")
    ax.scatter(best["n_params"], best["adjusted_rate"], s=160, facecolors="none", edgecolors="red", zorder=5,
               label="best size per data size")
    ax.set(xscale="log", yscale="log", xlabel="model parameters", ylabel="adjusted rate\n(code + 2 bytes/param) / data",
           title=f"Two-part code of the training data vs model size\n(mean and 95% interval over "
                 f"{table['seed'].nunique()} seeds, from metrics.json)")
    ax.axhline(1, color="grey", ls=":", lw=1)
    ax.legend(title="training data")
    raw, ax = plt.subplots(figsize=(7, 4.5))
    means = table.groupby(["data_bytes", "n_params"], as_index=False)[["train_rate", "heldout_rate"]].mean()
    for color, (d, g) in zip(colors, means.groupby("data_bytes")):
        ax.plot(g["n_params"], g["train_rate"], "o-", color=color, label=f"{d / 1000:.0f} KB")
        ax.plot(g["n_params"], g["heldout_rate"], "s--", color=color)
    if "main_model_heldout_rate_ideal" in m:
        ax.axhline(m["main_model_heldout_rate_ideal"], color="k", lw=1, ls=":", label="main model, held-out")
    ax.set(xscale="log", xlabel="model parameters", ylabel="raw rate (compressed / original)",
           title="Raw rate vs model size (mean over seeds); circles: own training data, squares: held-out")
    ax.legend(title="training data")
    return adjusted, raw


def plot_race(m: dict):
    """Raw rates on 2048-byte chunks: every classical compressor plain and primed with the LM's side
    information, and the LM with its 95% interval, on held-out docs and on Python source (from metrics.json)."""
    import matplotlib.pyplot as plt

    from copystudy.experiments.lm_compression.race import primed_table

    table = primed_table(m)
    texts = list(dict.fromkeys(table["text"]))
    fig, axes = plt.subplots(1, max(1, len(texts)), figsize=(6.5 * max(1, len(texts)), 4.5), sharey=True, squeeze=False)
    for ax, text in zip(axes[0], texts):
        g = table[table["text"] == text].reset_index(drop=True)
        names = list(dict.fromkeys(g["compressor"]))
        for j, kind in enumerate(("LM", "plain", "primed")):
            h = g[g["kind"] == kind]
            x = np.array([names.index(n) for n in h["compressor"]]) + 0.27 * (j - 1) * (kind != "LM")
            ax.bar(x, 100 * h["rate"], width=0.27 if kind != "LM" else 0.5, label=kind,
                   color={"LM": "tab:red", "plain": "tab:gray", "primed": "tab:blue"}[kind])
            ax.errorbar(x, 100 * h["rate"], yerr=[100 * (h["rate"] - h["low"]), 100 * (h["high"] - h["rate"])],
                        fmt="none", color="k", capsize=3)
        ax.set_xticks(range(len(names)), names)
        ax.set(title=f"{text}, {m['chunk_size']}-byte chunks", ylabel="raw rate (%)")
    axes[0][0].legend()
    fig.suptitle("Equal side information: classical compressors primed with the LM's training text")
    fig.tight_layout()
    return fig
