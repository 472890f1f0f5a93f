"""The figures of notebook 05 (royalty shares): works, outputs, utilities, shares, shell companies, estimators."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from copystudy import shapley
from copystudy.experiments.royalty_shares import METHODS


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


def plot_shell(name: str, game, metrics: dict):
    fig, ax = plt.subplots(figsize=(9, 4))
    frame = pd.DataFrame({"before (one owner)": list(metrics["shell_share_before_by_prompt"].values()),
                          "after (two shells, summed)": list(metrics["shell_share_after_by_prompt"].values())},
                         index=game.owners)
    frame.plot.bar(ax=ax, rot=0)
    ax.set(xlabel="prompt", ylabel=f"royalty share of {metrics['shell_owner']}",
           title=f"{name}: {metrics['shell_owner']} split into two shell companies")
    return fig


def plot_estimators(games: dict, errors: pd.DataFrame):
    fig, axes = plt.subplots(1, len(games), figsize=(6 * len(games), 4), squeeze=False)
    for ax, (name, game) in zip(axes[0], games.items()):
        sns.lineplot(data=errors[errors.dataset == name], x="budget", y="share_l1_error", hue="estimator", marker="o",
                     ax=ax)
        ax.axvline(2 ** game.n, color="gray", ls=":", label="2^n (exact enumeration)")
        ax.legend()
        ax.set(yscale="log", xlabel="budget (model evaluations)", ylabel="L1 error of royalty shares vs exact",
               title=f"{name}: estimator error vs budget ({game.n} owners)")
    fig.tight_layout()
    return fig
