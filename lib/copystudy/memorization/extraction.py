"""Is a generated image a copy of a training image? The extraction criterion, its rates and its figure.

After Carlini et al. 2023, "Extracting Training Data from Diffusion Models". A sample x is extracted
from training image t when
    d(x, t) <= threshold                          (close in absolute terms), and
    d(x, t) <= ratio * d(x, nearest held-out)      (much closer to t than to unseen images),
with d a distance of `copystudy.memorization.distances`. The second condition is our version of the paper's
relative criterion: their CIFAR audit divides d(x, t) by (0.5 x the mean distance to the 50 nearest
training images); we compare to images that the model never saw instead, which asks directly "is the
sample closer to its training source than a typical good generation is to a fresh image of the same
kind?". `carlini_ratio` is the paper's score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from copystudy.memorization.distances import DISTANCES, nearest, pairwise_distances


@dataclass(frozen=True)
class Criterion:
    """When a sample counts as extracted: distance, threshold, ratio to held-out, tile grid."""

    distance: str = "l2"
    threshold: float = 0.15
    ratio: float = 0.5
    grid: int = 4

    def table(self, samples, train, heldout, distance: str | None = None):
        """`extraction_table` of the samples under this criterion (another distance if given)."""
        return extraction_table(samples, train, heldout, distance or self.distance, self.threshold, self.ratio,
                                self.grid)

    def describe(self) -> str:
        return f"{self.distance} <= {self.threshold} and <= {self.ratio} x nearest held-out"


def carlini_ratio(samples: np.ndarray, train: np.ndarray, kind: str = "l2", n_neighbours: int = 50,
                  alpha: float = 0.5, grid: int = 4) -> np.ndarray:
    """Carlini et al.'s relative score: d(x, nearest train) / (alpha * mean d to n nearest train)."""
    d = np.sort(pairwise_distances(samples, train, kind, grid), axis=1)
    k = min(n_neighbours, d.shape[1])
    return d[:, 0] / (alpha * d[:, :k].mean(1) + 1e-12)


def extraction_table(samples: np.ndarray, train: np.ndarray, heldout: np.ndarray, kind: str = "l2",
                     threshold: float = 0.15, ratio: float = 0.5, grid: int = 4):
    """Per sample: nearest training and held-out image under both distances, and the verdict.

    Returns a pandas DataFrame with one row per sample: train_idx, d_train, heldout_idx, d_heldout
    (for `kind`), l2_train, tiled_l2_train, l2_heldout, tiled_l2_heldout (all normalised), and
    `extracted` (the criterion in the module docstring, on `kind`).
    """
    import pandas as pd

    if kind not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {kind!r}")
    cols = {}
    for k in DISTANCES:
        ti, td = nearest(samples, train, k, grid)
        hi, hd = nearest(samples, heldout, k, grid)
        cols[f"{k}_train_idx"], cols[f"{k}_train"] = ti, td
        cols[f"{k}_heldout_idx"], cols[f"{k}_heldout"] = hi, hd
    df = pd.DataFrame(cols)
    df["train_idx"], df["d_train"] = df[f"{kind}_train_idx"], df[f"{kind}_train"]
    df["heldout_idx"], df["d_heldout"] = df[f"{kind}_heldout_idx"], df[f"{kind}_heldout"]
    df["extracted"] = is_extracted(df["d_train"].to_numpy(), df["d_heldout"].to_numpy(), threshold, ratio)
    return df


def is_extracted(d_train, d_heldout, threshold: float = 0.15, ratio: float = 0.5) -> np.ndarray:
    """The extraction criterion: d_train <= threshold and d_train <= ratio * d_heldout (elementwise)."""
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    d_train, d_heldout = np.asarray(d_train, dtype=float), np.asarray(d_heldout, dtype=float)
    return (d_train <= threshold) & (d_train <= ratio * d_heldout)


def extraction_rate(table) -> float:
    """Fraction of samples that are extracted copies of a training image."""
    return float(np.mean(table["extracted"])) if len(table) else 0.0


def copied_images(table) -> int:
    """How many distinct training images were extracted at least once."""
    return int(table.loc[table["extracted"], "train_idx"].nunique())


def most_copied(table, n: int = 8):
    """The n samples closest to their nearest training image, closest first (one row per sample)."""
    return table.sort_values("d_train").head(n)


def heldout_baseline_rate(train: np.ndarray, heldout: np.ndarray, kind: str = "l2", threshold: float = 0.15,
                          ratio: float = 0.5, grid: int = 4) -> float:
    """False-positive rate of the criterion: real held-out images treated as if they were samples.

    Each held-out image is compared with the training set and with the *other* held-out images
    (leave-one-out). None of them can be a copy, so whatever fraction passes is the rate at which
    natural near-duplicates in the data set look like extraction.
    """
    d_train = pairwise_distances(heldout, train, kind, grid).min(1)
    d_held = pairwise_distances(heldout, heldout, kind, grid)
    np.fill_diagonal(d_held, np.inf)
    return float(np.mean(is_extracted(d_train, d_held.min(1), threshold, ratio)))


def plot_pairs(fig, rows, n: int = 8, cmap: str = "gray_r"):
    """Sample / nearest-training-image pairs, most-copied (closest) first.

    rows: list of (label, samples, train_images, extraction_table). Each row of the figure shows the
    n samples closest to a training image (top) above that training image (bottom), with d_train.
    """
    axes = fig.subplots(2 * len(rows), n, squeeze=False)
    for r, (label, samples, train, table) in enumerate(rows):
        best = most_copied(table, n)
        for j in range(n):
            top, bottom = axes[2 * r, j], axes[2 * r + 1, j]
            for ax in (top, bottom):
                ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
            if j >= len(best):
                top.axis("off"), bottom.axis("off")
                continue
            row = best.iloc[j]
            top.imshow(samples[best.index[j]].transpose(1, 2, 0).squeeze(-1), cmap=cmap, vmin=0, vmax=1)
            bottom.imshow(train[int(row["train_idx"])].transpose(1, 2, 0).squeeze(-1), cmap=cmap, vmin=0, vmax=1)
            mark = "copy" if row["extracted"] else ""
            top.set_title(f"d={row['d_train']:.3f} {mark}", fontsize=7)
        axes[2 * r, 0].set_ylabel(f"{label}\nsample", fontsize=8)
        axes[2 * r + 1, 0].set_ylabel("nearest\ntrain", fontsize=8)
    return fig
