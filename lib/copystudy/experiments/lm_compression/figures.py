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
    data = table.copy()
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


def plot_sweep(table: pd.DataFrame, best: pd.DataFrame):
    """The adjusted rate against model size per data size (best marked), and the raw rates."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    adjusted, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=table, x="n_params", y="adjusted_rate", hue="data", marker="o", ax=ax, palette="viridis",
                 errorbar=("ci", 95), err_style="bars")
    ax.scatter(best["n_params"], best["adjusted_rate"], s=160, facecolors="none", edgecolors="red", zorder=5,
               label="best size per data size")
    ax.set(xscale="log", yscale="log", xlabel="model parameters", ylabel="adjusted rate\n(code + 2 bytes/param) / data",
           title=f"Two-part code of the training data vs model size\n(mean and 95% interval over "
                 f"{table['seed'].nunique()} seeds; the bars are narrower than the markers where unseen)")
    ax.axhline(1, color="grey", ls=":", lw=1)
    ax.legend(title="training data")
    raw, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=table, x="n_params", y="train_rate", hue="data", marker="o", ax=ax, palette="viridis",
                 errorbar=("ci", 95))
    sns.lineplot(data=table, x="n_params", y="heldout_rate", hue="data", marker="s", ls="--", ax=ax,
                 palette="viridis", legend=False, errorbar=("ci", 95))
    ax.set(xscale="log", xlabel="model parameters", ylabel="raw rate (compressed / original)",
           title="Raw rate vs model size (mean and 95% interval over seeds)")
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="k", marker="o"), Line2D([], [], color="k", marker="s", ls="--")]
    labels += ["its own training data", "held-out text"]
    ax.legend(handles, labels, title="training data (colour); coded text (line)")
    return adjusted, raw
