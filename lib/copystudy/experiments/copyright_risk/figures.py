"""Notebook 04, copyright risk: the figures (error bars from the intervals the tables carry)."""

from __future__ import annotations

from copystudy.experiments.copyright_risk.design import WorkRisk
from copystudy.memorization import risk


def plot_image_map(images: WorkRisk, ratio: float):
    """The risk map of the digit images: means over seeds, bars = 95% intervals over seeds, dashed lines =
    the median information and fidelity 1 - ratio (log information: the bound's bits have a long tail);
    colour = in how many of the models that saw the work an extracted copy appears among the samples. An
    information interval reaching below 1 bit is drawn to 1 bit (the log axis has no 0)."""
    import matplotlib.pyplot as plt

    t = images.table
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.errorbar(t["info_bits"], t["fidelity"],
                xerr=[t["info_bits"] - t["info_bits_lo"].clip(lower=1.0), t["info_bits_hi"] - t["info_bits"]],
                yerr=[t["fidelity"] - t["fidelity_lo"], t["fidelity_hi"] - t["fidelity"]], fmt="none", ecolor="gray",
                alpha=0.5, lw=0.8, zorder=1)
    order = sorted(t["copy_agreement"].unique(), key=lambda a: int(a.split()[0]))
    risk.plot_risk_map(ax, t, "info_bits", "fidelity", images.info_cut, 1 - ratio, hue="copy_agreement",
                       hue_order=order, palette="viridis", logx=True, s=40, zorder=2)
    ax.set(xlabel="information content: bits under the bound of the model that never saw the work (log scale)",
           ylabel="fidelity: 1 - d(closest sample) / d(closest real look-alike)",
           title="Copyright risk map: digit images")
    ax.legend(fontsize=8, loc="best", title="models with a copy")
    return fig


def plot_riskiest(images: WorkRisk, works, top_k: int):
    """The works most at risk (top) above the closest sample any model that saw them drew (bottom)."""
    import matplotlib.pyplot as plt

    top = images.ranked.head(top_k)
    fig, axes = plt.subplots(2, len(top), figsize=(1.2 * len(top), 3), squeeze=False)
    for j, (_, row) in enumerate(top.iterrows()):
        axes[0, j].imshow(works[int(row["work"])][0], cmap="gray_r", vmin=0, vmax=1)
        axes[1, j].imshow(images.samples[int(row["work"])][0], cmap="gray_r", vmin=0, vmax=1)
        axes[0, j].set_title(f"#{int(row['work'])}\n{row['info_bits']:.0f} bits", fontsize=7)
        axes[1, j].set_title(f"d={row['best_sample_l2']:.3f}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
    axes[0, 0].set_ylabel("work", fontsize=8)
    axes[1, 0].set_ylabel("closest\nsample", fontsize=8)
    fig.suptitle("Works most at risk (rich and reproduced first)", y=1.05)
    return fig


def plot_text_map(text: WorkRisk, fidelity_cut: float):
    """Left: the risk map of the text works (means over seeds, bars = 95% intervals over seeds; dashed
    lines = the stated cuts). Right: each work's bits under its reference against PPMd's bits for it alone."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    t = text.table
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 5.5))
    for a, y, yerr in ((ax, t["fidelity"], [t["fidelity"] - t["fidelity_lo"], t["fidelity_hi"] - t["fidelity"]]),
                       (bx, t["ppmd_bits"], None)):
        a.errorbar(t["info_bits"], y, xerr=[t["info_bits"] - t["info_bits_lo"], t["info_bits_hi"] - t["info_bits"]],
                   yerr=yerr, fmt="none", ecolor="gray", alpha=0.5, lw=0.8, zorder=1)
    risk.plot_risk_map(ax, t, "info_bits", "fidelity", text.info_cut, fidelity_cut, hue="kind", logx=True, s=40,
                       zorder=2)
    ax.set(xlabel="information content: bits under the model that never saw the work (log scale)",
           ylabel="fidelity: memorised fraction of the work's bits", title="Copyright risk map: text")
    ax.legend(fontsize=8, loc="center left", title="work")
    sns.scatterplot(data=t, x="info_bits", y="ppmd_bits", hue="kind", ax=bx, s=40, legend=False, zorder=2)
    lo, hi = float(min(t["info_bits"].min(), t["ppmd_bits"].min())), float(max(t["info_bits"].max(), t["ppmd_bits"].max()))
    bx.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls=":", label="equal bits")
    bx.set(xscale="log", yscale="log", xlabel="bits under the reference LM (never saw the work)",
           ylabel="bits under PPMd (the work alone)", title="Reference LM against a generic compressor")
    bx.legend(fontsize=8, loc="upper left")
    return fig
