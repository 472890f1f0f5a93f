"""Notebook 04, copyright risk: information content against reconstruction fidelity for every work.

For images, a small diffusion model is trained on the works and sampled: a work's information is its
code length under a pixel coder fitted on held-out images, its fidelity how much closer its closest
sample comes than its closest real look-alike. For text, two byte LMs are trained on two halves of
the corpus (canaries planted in both): a work's information is its code length under the model that
never saw it, its fidelity the fraction of those bits the model that saw it saves. `summarize` gives
metrics.json, `verdicts` the sentences the notebook prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from copystudy import canaries, distances, extraction, models, parallel, risk
from copystudy.data import split_documents


@dataclass
class WorkRisk:
    """One row per work (information, fidelity, ...), the same ranked by risk, and the information cut."""

    table: pd.DataFrame
    ranked: pd.DataFrame
    info_cut: float
    samples: np.ndarray | None = None
    n_params: int = 0


def image_risk(works, heldout, model: dict, train_steps: int, batch_size: int, lr: float, n_samples: int,
               inference_steps: int, threshold: float, ratio: float, levels: int, context_bins: int,
               seed: int = 0) -> WorkRisk:
    """Train on the works, sample, and place every work on the map."""
    net = models.build(model, image_size=works.shape[-1], channels=works.shape[1], seed=seed)
    net.fit(works, train_steps, batch_size=batch_size, lr=lr, seed=seed)
    samples = net.sample(n_samples, seed=seed, num_inference_steps=inference_steps)
    matches = extraction.extraction_table(samples, works, heldout, "l2", threshold, ratio)
    d = distances.pairwise_distances(works, samples, "l2")
    reference = risk.PixelContextModel(levels, context_bins).fit(heldout)
    table = pd.DataFrame({
        "work": np.arange(len(works)),
        "info_bits": reference.bits(works),
        "closest_sample_l2": d.min(1),
        "closest_sample": d.argmin(1),
        "closest_heldout_l2": distances.nearest(works, heldout, "l2")[1],
        "copies_among_samples": np.bincount(matches.loc[matches["extracted"], "train_idx"], minlength=len(works)),
    })
    table["fidelity"] = 1 - table["closest_sample_l2"] / table["closest_heldout_l2"]
    return WorkRisk(table, risk.rank_by_risk(table, "info_bits", "fidelity", None, 1 - ratio),
                    float(table["info_bits"].median()), samples, net.n_params)


def text_risk(docs: dict[str, bytes], dups, canaries_per_dup: int, n_digits: int, lm_shape: dict, lm_context: int,
              lm_steps: int, lm_batch_size: int, lm_lr: float, n_candidates: int, fidelity_cut: float,
              seed: int = 0) -> WorkRisk:
    """Two LMs on two halves of the text (distinct canaries in each); each half's works are measured
    by the model that saw them against the one that did not."""
    half = dict(zip("AB", split_documents(docs, heldout_fraction=0.5, seed=seed)))
    both = canaries.make_canaries(dups, 2 * canaries_per_dup, n_digits, seed)  # distinct accounts
    planted_canaries = {"A": both[0::2], "B": both[1::2]}
    planted = {"A": canaries.plant(half["A"], planted_canaries["A"], seed),
               "B": canaries.plant(half["B"], planted_canaries["B"], seed + 1)}
    train = partial(_half_lm, planted, {"family": "causal_lm", "context": lm_context, **lm_shape}, lm_steps,
                    lm_batch_size, lm_lr, seed)
    lms = dict(zip(planted, parallel.map_tasks(train, list(planted), desc="LMs on halves A and B")))
    rows = []
    for trained, ref in (("A", "B"), ("B", "A")):
        for doc_name, text in half[trained].items():
            b_ref, b_tr = lms[ref].total_bits(text), lms[trained].total_bits(text)
            rows.append({"work": doc_name, "kind": f"document in {trained}", "bytes": len(text), "info_bits": b_ref,
                         "memorised_bits": b_ref - b_tr, "extractable": np.nan, "exposure": np.nan})
    for trained, ref in (("A", "B"), ("B", "A")):
        report = canaries.canary_report(lms[trained], planted_canaries[trained], n_candidates, seed)
        ref_bits = canaries.lm_scorer(lms[ref])
        for c, rep in zip(planted_canaries[trained], report.itertuples()):
            b_ref = float(ref_bits(b"\n" + c.prefix, [c.secret])[0])
            rows.append({"work": c.text.decode(), "kind": f"canary x{c.dup}", "bytes": len(c.secret),
                         "info_bits": b_ref, "memorised_bits": b_ref - rep.bits, "extractable": float(rep.extractable),
                         "exposure": rep.exposure})
    table = pd.DataFrame(rows)
    table["fidelity"] = table["memorised_bits"] / table["info_bits"]
    info_cut = float(table["info_bits"].median())
    return WorkRisk(table, risk.rank_by_risk(table, "info_bits", "fidelity", info_cut, fidelity_cut), info_cut)


def _half_lm(planted: dict, spec: dict, steps: int, batch_size: int, lr: float, seed: int, name: str):
    """The LM of one half (a task)."""
    lm = models.build(spec, seed=seed)
    lm.fit(planted[name], steps, batch_size=batch_size, lr=lr, seed=seed, desc=f"LM {name}")
    return lm


def summarize(images: WorkRisk, text: WorkRisk, ratio: float, threshold: float, top_k: int) -> dict:
    """The numbers of metrics.json."""
    img, txt = images.table, text.table
    reproduced = img["fidelity"] >= 1 - ratio
    canary_rows = txt[txt["kind"].str.startswith("canary")]
    doc_rows = txt[txt["kind"].str.startswith("document")]
    by_dup = canary_rows.groupby("kind")
    return {
        "image_works": len(img), "image_works_extracted": int((img["copies_among_samples"] > 0).sum()),
        "image_works_reproduced": int(reproduced.sum()),
        "image_works_within_threshold": int((img["closest_sample_l2"] <= threshold).sum()),
        "image_info_bits_reproduced_mean": float(img.loc[reproduced, "info_bits"].mean()) if reproduced.any() else None,
        "image_info_bits_not_reproduced_mean": float(img.loc[~reproduced, "info_bits"].mean())
        if (~reproduced).any() else None,
        "image_regions": images.ranked["region"].value_counts().to_dict(),
        "text_regions": text.ranked["region"].value_counts().to_dict(),
        "image_info_bits_median": images.info_cut, "text_info_bits_median": text.info_cut,
        "canary_info_bits_mean": float(canary_rows["info_bits"].mean()),
        "canary_fidelity_by_dup": {int(k.split("x")[1]): float(v) for k, v in by_dup["fidelity"].mean().items()},
        "canary_extractable_by_dup": {int(k.split("x")[1]): float(v) for k, v in by_dup["extractable"].mean().items()},
        "document_fidelity_mean": float(doc_rows["fidelity"].mean()),
        "document_fidelity_max": float(doc_rows["fidelity"].max()),
        "image_riskiest": images.ranked.head(top_k)["work"].tolist(),
    }


def verdicts(m: dict, ratio: float, threshold: float) -> list[str]:
    """What the map shows, one sentence each."""
    high = risk.REGIONS[(True, True)]
    out = [f"Images: {m['image_works_reproduced']} of {m['image_works']} training digits are reproduced (a sample at "
           f"most {ratio} x as far as their closest real look-alike); {m['image_works_within_threshold']} have a sample "
           f"within {threshold} RMS; {m['image_regions'].get(high, 0)} of them carry more information than the median "
           f"work ({m['image_info_bits_median']:.0f} bits)."]
    rich, poor = m["image_info_bits_reproduced_mean"], m["image_info_bits_not_reproduced_mean"]
    if rich is not None and poor is not None:
        out.append(f"  mean information of reproduced works {rich:.0f} bits vs not reproduced {poor:.0f} bits: "
                   + ("the model reproduces the simpler digits more readily." if rich < poor else
                      "reproduction is not limited to simple digits."))
    fid, ext = m["canary_fidelity_by_dup"], m["canary_extractable_by_dup"]
    top = max(fid)
    doc_mean, n_high_text = m["document_fidelity_mean"], m["text_regions"].get(high, 0)
    out += [f"Text: canaries carry {m['canary_info_bits_mean']:.0f} bits on average against a median work of "
            f"{m['text_info_bits_median']:.0f} bits; memorised fraction by duplication "
            f"{ {d: round(v, 2) for d, v in sorted(fid.items())} }.",
            f"  documents: mean memorised fraction {doc_mean:.3f}; {n_high_text} text works are in the "
            "rich-and-reproduced region.",
            f"  canaries planted {top} times: {ext[top]:.2f} greedily extractable, memorised fraction {fid[top]:.2f}; "
            f"documents: {doc_mean:.2f} on average, {m['document_fidelity_max']:.2f} at most."]
    if n_high_text == 0:
        out.append("  -> No text work is both rich and reproduced at this scale.")
    out.append("  -> The model stores short, repeated secrets far more completely than documents on average: copying "
               "of the kind the map flags as low-information." if fid[top] > max(2 * doc_mean, 0.25) else
               "  -> Even the most repeated canaries are not stored much more completely than documents here.")
    return out


# ---- figures ----------------------------------------------------------------------------------------
def plot_image_map(images: WorkRisk, ratio: float):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    table = images.table.assign(extracted=images.table["copies_among_samples"] > 0)
    risk.plot_risk_map(ax, table, "info_bits", "fidelity", images.info_cut, 1 - ratio, hue="extracted", s=40)
    ax.set(xlabel="information content: bits under a pixel coder that never saw the work",
           ylabel="fidelity: 1 - d(closest sample) / d(closest real look-alike)", title="Copyright risk map: digit images")
    return fig


def plot_riskiest(images: WorkRisk, works, top_k: int):
    """The works most at risk (top) above their closest samples (bottom)."""
    import matplotlib.pyplot as plt

    top = images.ranked.head(top_k)
    fig, axes = plt.subplots(2, len(top), figsize=(1.2 * len(top), 3), squeeze=False)
    for j, (_, row) in enumerate(top.iterrows()):
        axes[0, j].imshow(works[int(row["work"])][0], cmap="gray_r", vmin=0, vmax=1)
        axes[1, j].imshow(images.samples[int(row["closest_sample"])][0], cmap="gray_r", vmin=0, vmax=1)
        axes[0, j].set_title(f"#{int(row['work'])}\n{row['info_bits']:.0f} bits", fontsize=7)
        axes[1, j].set_title(f"d={row['closest_sample_l2']:.3f}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
    axes[0, 0].set_ylabel("work", fontsize=8)
    axes[1, 0].set_ylabel("closest\nsample", fontsize=8)
    fig.suptitle("Works most at risk (rich and reproduced first)", y=1.05)
    return fig


def plot_text_map(text: WorkRisk, fidelity_cut: float):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    risk.plot_risk_map(ax, text.table, "info_bits", "fidelity", text.info_cut, fidelity_cut, hue="kind", logx=True, s=40)
    ax.set(xlabel="information content: bits under a model that never saw the work (log scale)",
           ylabel="fidelity: memorised fraction of the work's bits", title="Copyright risk map: text")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), title="work")
    return fig
