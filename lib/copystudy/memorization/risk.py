"""The two-axis copyright risk map: information content of a work vs reconstruction fidelity.

Franceschelli et al. ask two questions of every training work: how much information does it carry
(its length in bits under a reference model that never saw it: a measure of how much specific,
unpredictable content it has, a rough proxy for "expression"), and how closely can the trained model
reproduce it (reconstruction fidelity). A work high on both is one whose expressive content the weights
plausibly hold; a work reproduced exactly but carrying few bits (a plain stroke, a common phrase, a
six-digit PIN) is copied but holds little protectable expression; a rich work the model cannot
reproduce is not copied.

Fidelity is given on a scale where higher means closer reproduction (e.g. 1 - RMS pixel error of the
closest generated sample, or the fraction of a text's bits the model has memorised).
"""

from __future__ import annotations

import numpy as np

REGIONS = {
    (True, True): "rich and reproduced (highest risk)",
    (False, True): "simple but reproduced",
    (True, False): "rich, not reproduced",
    (False, False): "simple, not reproduced",
}
REGION_ORDER = [REGIONS[(True, True)], REGIONS[(False, True)], REGIONS[(True, False)], REGIONS[(False, False)]]


class PixelContextModel:
    """A reference model for the information content of small images, in bits.

    Pixels are quantised to `levels` grey levels and coded in raster order; each pixel's probability
    depends on its left, upper and upper-left neighbours, each reduced to `context_bins` bins (the
    causal-context idea of lossless image coders such as JPEG-LS). Counts come from reference images
    only (add-`alpha` smoothing), so an image's bits say how surprising it is to a coder that never saw
    it. Limits: a crude model; bits depend on the quantisation (17 levels = the digits' native 0..16).
    """

    def __init__(self, levels: int = 17, context_bins: int = 4, alpha: float = 0.5):
        self.levels, self.context_bins, self.alpha = levels, context_bins, alpha
        self.counts = None

    def _symbols(self, images: np.ndarray):
        images = np.asarray(images, dtype=np.float64)
        if images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {images.shape}")
        q = np.clip(np.rint(images * (self.levels - 1)), 0, self.levels - 1).astype(np.int64)
        pad = np.pad(q, ((0, 0), (0, 0), (1, 0), (1, 0)))  # outside the image = background 0
        b = lambda x: x * self.context_bins // self.levels  # noqa: E731
        left, up, upleft = b(pad[:, :, 1:, :-1]), b(pad[:, :, :-1, 1:]), b(pad[:, :, :-1, :-1])
        ctx = (left * self.context_bins + up) * self.context_bins + upleft
        return q, ctx

    def fit(self, images: np.ndarray) -> "PixelContextModel":
        q, ctx = self._symbols(images)
        self.counts = np.full((self.context_bins**3, self.levels), self.alpha)
        np.add.at(self.counts, (ctx.ravel(), q.ravel()), 1.0)
        return self

    def bits(self, images: np.ndarray) -> np.ndarray:
        """Code length of each image in bits, [N]."""
        if self.counts is None:
            raise RuntimeError("PixelContextModel: call fit(reference_images) first")
        q, ctx = self._symbols(images)
        p = self.counts / self.counts.sum(1, keepdims=True)
        return -np.log2(p[ctx, q]).reshape(len(q), -1).sum(1)


def regions(info, fidelity, info_cut: float, fidelity_cut: float) -> np.ndarray:
    """Region label of every work: information above/below info_cut x fidelity above/below cut."""
    info, fidelity = np.asarray(info, dtype=float), np.asarray(fidelity, dtype=float)
    return np.array([REGIONS[(bool(i >= info_cut), bool(f >= fidelity_cut))] for i, f in zip(info, fidelity)])


def rank_by_risk(df, info: str = "info_bits", fidelity: str = "fidelity", info_cut: float | None = None,
                 fidelity_cut: float = 0.5):
    """Works sorted most at risk first: by region (rich-and-reproduced first), then by the product of
    the work's percentile in information and its fidelity. Adds columns region and risk_score.
    info_cut None = the median information content."""
    df = df.copy()
    cut = float(np.median(df[info])) if info_cut is None else float(info_cut)
    df["region"] = regions(df[info], df[fidelity], cut, fidelity_cut)
    df["risk_score"] = df[info].rank(pct=True) * df[fidelity].clip(lower=0)
    order = {r: i for i, r in enumerate(REGION_ORDER)}
    df["_r"] = df["region"].map(order)
    return df.sort_values(["_r", "risk_score"], ascending=[True, False]).drop(columns="_r")


def plot_risk_map(ax, df, info: str = "info_bits", fidelity: str = "fidelity", info_cut: float | None = None,
                  fidelity_cut: float = 0.5, hue: str | None = None, logx: bool = False, **scatter_kw):
    """Scatter of works on the two axes with the four regions shaded and labelled."""
    import seaborn as sns

    cut = float(np.median(df[info])) if info_cut is None else float(info_cut)
    sns.scatterplot(data=df, x=info, y=fidelity, hue=hue, ax=ax, **scatter_kw)
    if logx:
        ax.set_xscale("log")
    fmin, fmax = float(min(df[fidelity].min(), fidelity_cut)), float(max(df[fidelity].max(), fidelity_cut))
    pad = 0.08 * max(fmax - fmin, 0.1)
    y0, y1 = fmin - pad, fmax + pad
    ax.set_ylim(y0, y1)
    x0, x1 = ax.get_xlim()
    ax.axvline(cut, color="k", lw=0.8, ls="--")
    ax.axhline(fidelity_cut, color="k", lw=0.8, ls="--")
    ax.axvspan(cut, x1, ymin=(fidelity_cut - y0) / (y1 - y0), ymax=1, color="tab:red", alpha=0.08, lw=0)
    for (hi_i, hi_f), label in REGIONS.items():
        ax.text(x1 if hi_i else x0, y1 if hi_f else y0, label, ha="right" if hi_i else "left",
                va="top" if hi_f else "bottom", fontsize=8, color="dimgray",
                bbox=dict(facecolor="white", alpha=0.7, lw=0))
    ax.set_xlim(x0, x1)
    return ax
