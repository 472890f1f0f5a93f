"""The figures of notebook 05 (royalty shares): works, outputs, utilities, shares, shell companies, estimators."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from copystudy.attribution import shapley
from copystudy.experiments.royalty_shares.estimators import budget_of
from copystudy.experiments.royalty_shares.steps import METHODS


def picture(images) -> np.ndarray:
    """[N, C, H, W] -> one row [H, N*W] (grey) or [H, N*W, 3] (colour) for imshow."""
    return np.concatenate(list(images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)), axis=1)


def _rows(ax, name: str, rows: list, side: int, labels: list[str], title: str) -> None:
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, [(0, 0), (0, width - r.shape[1])] + [(0, 0)] * (r.ndim - 2), constant_values=1) for r in rows]
    ax.imshow(np.concatenate(rows, axis=0), cmap="gray_r" if name == "typefaces" else "gray", vmin=0, vmax=1)
    ax.set_yticks([(i + 0.5) * side for i in range(len(labels))], labels)
    ax.set_xticks([])
    ax.grid(False)  # no grid lines through the pictures
    ax.set_title(title)


def plot_works(games: dict):
    """The first works of each owner, one row per owner."""
    fig, axes = plt.subplots(1, len(games), figsize=(6 * len(games), 3.2), squeeze=False)
    for ax, (name, game) in zip(axes[0], games.items()):
        _rows(ax, name, [picture(w[:12]) for w in game.works], game.works[0].shape[-1], game.owners,
              f"{name}: first works of each owner")
    fig.tight_layout()
    return fig


def plot_outputs(games: dict, outputs: dict):
    """The full coalition's outputs, one row per prompt."""
    fig, axes = plt.subplots(1, len(games), figsize=(6 * len(games), 3.2), squeeze=False)
    for ax, (name, game) in zip(axes[0], games.items()):
        out = outputs[name]
        labels = [f"prompt: {out.labels[out.prompt_owner == i][0] if game.pretrained else o}"
                  for i, o in enumerate(game.owners)]
        _rows(ax, name, [picture(out.images[out.prompt_owner == i]) for i in range(game.n)], out.images.shape[-1],
              labels, f"{name}: outputs of the full-coalition model")
    fig.tight_layout()
    return fig


def plot_utility_by_coalition(games: dict, terms: dict, outputs: dict):
    """v(S) - v(empty) by coalition size, split by whether S holds the prompted owner."""
    fig, axes = plt.subplots(1, len(games), figsize=(6 * len(games), 4), squeeze=False)
    for ax, (name, game) in zip(axes[0], games.items()):
        ll, owner = terms[name].log_likelihood_bits(), outputs[name].prompt_owner
        members = shapley.coalition_matrix(game.n)
        rows = [{"coalition size": s, "gain over base (bits)": g, "holds the prompted owner": bool(m)}
                for p in range(game.n)
                for s, g, m in zip(members.sum(1), ll[:, owner == p].mean(1) - ll[0, owner == p].mean(), members[:, p])]
        sns.stripplot(data=pd.DataFrame(rows), x="coalition size", y="gain over base (bits)",
                      hue="holds the prompted owner", dodge=True, ax=ax)
        ax.set_title(f"{name}: v(S) - v(empty), mean over a prompt's outputs")
    fig.tight_layout()
    return fig


def plot_shares(name: str, game, pay: dict):
    """Heat maps of who is paid for which prompt, by Shapley royalty share and the two baselines."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (_, key, title) in zip(axes, METHODS):
        frame = pd.DataFrame(pay[key], index=[f"prompt: {o}" for o in game.owners], columns=game.owners)
        sns.heatmap(frame, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=ax, cbar=key == "similarity")
        ax.set(title=f"{name}: {title}", xlabel="owner paid", ylabel="")
    fig.tight_layout()
    return fig


def plot_seed_spread(shares: pd.DataFrame):
    """The prompted owner's mean share per training seed (points) and the mean with its 95% interval
    (bars), for each game and method, beside an even split."""
    own = shares[shares.prompt == shares.owner]
    per_seed = pd.concat([own.groupby(["dataset", "seed"])[col].mean().rename("share").reset_index().assign(method=title)
                          for col, title in (("royalty_share", "Shapley royalty share"), ("loo_share", "leave-one-out"),
                                             ("similarity_share", "similarity"))])
    fig, ax = plt.subplots(figsize=(9, 4))
    sns.barplot(data=per_seed, x="dataset", y="share", hue="method", errorbar=("ci", 95), alpha=0.5, ax=ax)
    sns.stripplot(data=per_seed, x="dataset", y="share", hue="method", dodge=True, legend=False, palette="dark:black", ax=ax)
    for i, (name, sel) in enumerate(shares.groupby("dataset", sort=False)):
        ax.hlines(1 / sel.owner.nunique(), i - 0.4, i + 0.4, color="gray", ls=":")
    ax.set(ylabel="mean share of the prompted owner", ylim=(0, 1),
           title="Prompted owner's share per training seed (dots), mean and 95% interval (bars); dotted: even split")
    return fig


def plot_checks(rows: pd.DataFrame, unprompted: pd.DataFrame):
    """(a) the two shells' summed share against the owner's before the split; (b) the original's and the
    copy-cat's shares; (c) shares of unprompted outputs against what they are made of. Dots are seeds."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    shell = rows[(rows.variant == "shell") & (rows.role == "shell")].groupby(["method", "seed"]).agg(
        after=("share", "sum"), before=("owner_share_before", "first")).reset_index().melt(
        ["method", "seed"], ["before", "after"], var_name="when", value_name="share")
    sns.barplot(data=shell, x="method", y="share", hue="when", errorbar=("ci", 95), alpha=0.6, ax=axes[0])
    axes[0].set(title="(a) one owner split into two shells: its pay before, the shells' sum after", ylim=(0, 1),
                xlabel="")
    copy = rows[(rows.variant == "copycat") & (rows.role != "other")]
    sns.barplot(data=copy, x="method", y="share", hue="role", errorbar=("ci", 95), alpha=0.6, ax=axes[1])
    axes[1].set(title="(b) a copy-cat joins: pay of the original and the copy", ylim=(0, 1), xlabel="")
    if not unprompted.empty:
        target = unprompted[unprompted.method == "similarity"].assign(method="what the outputs are made of",
                                                                      share=lambda d: d.composition)
        frame = pd.concat([unprompted, target])
        frame = frame[frame.dataset == frame.dataset.iloc[0]]
        sns.barplot(data=frame, x="owner", y="share", hue="method", errorbar=("ci", 95), ax=axes[2])
        axes[2].set(title=f"(c) unprompted outputs ({frame.dataset.iloc[0]}): who is paid", xlabel="")
        axes[2].tick_params(axis="x", labelrotation=20, labelsize=8)
        axes[2].legend(fontsize=7)
    for ax in axes[:2]:
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return fig


def plot_estimators(summary: pd.DataFrame, n: int, even_split: float | None = None):
    """Share error against the fraction of 2^n coalitions evaluated, one line per estimator, with its
    95% interval over estimator seeds."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    for k, (name, sel) in enumerate(summary.groupby("estimator", sort=False)):
        x = sel.fraction.to_numpy() * (1 + 0.015 * (k - 2.5))  # a small offset keeps the bars apart
        ax.errorbar(x, sel.share_l1_error, yerr=[sel.share_l1_error - sel.share_l1_error_low,
                                                 sel.share_l1_error_high - sel.share_l1_error],
                    marker="o", capsize=3, label=name, ls="--" if name.startswith("shapiq") else "-")
    if even_split is not None:
        ax.axhline(even_split, color="gray", ls=":", label="even split (no model)")
    fractions = sorted(summary.fraction.unique())
    ax.set_xticks(fractions, [f"{f:.0%}\n({budget_of(f, n)})" for f in fractions])
    ax.set(yscale="log", xlabel=f"coalitions evaluated, fraction of 2^{n} = {2 ** n}",
           ylabel="L1 error of royalty shares vs exact",
           title=f"Sampling estimators against exact enumeration: royalty game of {n} owners")
    low, high = ax.get_ylim()
    candidates = (0.001, 0.003, 0.01, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)
    ticks = [t for t in candidates if low <= t <= high]
    if ticks:
        ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(False)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig
