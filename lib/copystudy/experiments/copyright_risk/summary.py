"""Notebook 04, copyright risk: the numbers of metrics.json (`summarize`) and the sentences the notebook
prints (`verdicts`, computed from those numbers only)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from copystudy.common import intervals
from copystudy.experiments.copyright_risk.design import N_PERM, WorkRisk
from copystudy.memorization import canaries, risk


def text_seed_metrics(rows: pd.DataFrame) -> dict:
    """The text numbers of one seed (its rows of fold_table), before averaging over seeds."""
    from scipy.stats import spearmanr

    canary = rows[rows["kind"].str.startswith("canary")]
    doc = rows[rows["kind"] == "document"]
    out = {"canary_info_bits_mean": float(canary["info_bits"].mean()),
           "document_fidelity_mean": float(doc["fidelity"].mean()),
           "document_fidelity_max": float(doc["fidelity"].max()),
           "document_info_bpb_mean": float((doc["info_bits"] / doc["bytes"]).mean()),
           "text_info_fidelity_rho": float(spearmanr(rows["info_bits"], rows["fidelity"]).statistic),
           "document_info_fidelity_rho": float(spearmanr(doc["info_bits"], doc["fidelity"]).statistic)}
    for kind, v in canary.groupby("kind")["fidelity"].mean().items():
        out[f"canary_fidelity_{kind.split()[1]}"] = float(v)
    return out


def _dup(kind: str) -> int:
    return int(kind.split("x")[1])


def text_summary(text: WorkRisk, n_digits: int, fidelity_cut: float, top_k: int) -> dict:
    """The text numbers of metrics.json: means over seeds with <key>_ci = [low, high] (t intervals over
    seeds; extractability: a Wilson interval over all canary x seen-model x seed trials), the permutation
    tests, the stated cuts and the regions they give, the analytic canary information."""
    per_seed = [text_seed_metrics(rows) for _, rows in text.per_seed.groupby("seed")]
    m = intervals.summarize_seeds(per_seed, list(per_seed[0]))
    canary = text.per_seed[text.per_seed["kind"].str.startswith("canary")]
    dups = sorted({_dup(k) for k in canary["kind"]})
    for name in ("fidelity", "fidelity_ci"):
        m[f"canary_{name.replace('fidelity', 'fidelity_by_dup')}"] = {d: m.pop(f"canary_fidelity_x{d}" + name[8:])
                                                                      for d in dups}
    ext = {d: intervals.wilson(int(round((g["extractable"] * g["n_seen"]).sum())), int(g["n_seen"].sum()))
           for d, g in canary.groupby(canary["kind"].map(_dup))}
    docs = text.ranked[text.ranked["kind"] == "document"]
    top_doc = docs.iloc[0]
    weak = docs.loc[(docs["info_bpb"] - docs["ppmd_bpb"]).idxmax()]  # = weakest_references(...).iloc[0]
    m.update({
        "text_folds": text.design.k, "text_works": len(text.table),
        "canary_info_bits_analytic": canaries.analytic_bits(n_digits),
        "canary_extractable_by_dup": {d: v[0] for d, v in ext.items()},
        "canary_extractable_by_dup_ci": {d: [v[1], v[2]] for d, v in ext.items()},
        "document_ppmd_bpb_mean": float(docs["ppmd_bpb"].mean()),
        "text_info_fidelity_p": text.association["all"]["p"],
        "document_info_fidelity_p": text.association["document"]["p"],
        "text_info_cut_bits": text.info_cut, "text_fidelity_cut": float(fidelity_cut),
        "text_regions": text.ranked["region"].value_counts().to_dict(),
        "text_riskiest": text.ranked.head(top_k)["work"].tolist(),
        "text_riskiest_document": _document_facts(top_doc, docs),
        "text_weakest_reference_document": _document_facts(weak, docs),
    })
    return m


def _document_facts(row, docs: pd.DataFrame) -> dict:
    """A document's place on both axes and beside PPMd (ppmd_rank 1 = the most compressible document)."""
    return {"work": row["work"], "region": row["region"],
            "info_bits": float(row["info_bits"]), "info_bpb": float(row["info_bpb"]),
            "ppmd_bpb": float(row["ppmd_bpb"]), "fidelity": float(row["fidelity"]),
            "fidelity_ci": [float(row["fidelity_lo"]), float(row["fidelity_hi"])],
            "ppmd_rank": int((docs["ppmd_bpb"] < row["ppmd_bpb"]).sum()) + 1, "n_documents": len(docs)}


def _spearman(x, y) -> float | None:
    """Spearman's rho, or None when either variable is constant (rho undefined)."""
    from scipy.stats import spearmanr

    if np.ptp(np.asarray(x, dtype=float)) == 0 or np.ptp(np.asarray(y, dtype=float)) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def image_seed_metrics(rows: pd.DataFrame, fidelity_cut: float, threshold: float) -> dict:
    """The image numbers of one seed (its rows of image_fold_table), before averaging over seeds."""
    from scipy.stats import spearmanr

    return {"image_info_bits_mean": float(rows["info_bits"].mean()),
            "image_fidelity_mean": float(rows["fidelity"].mean()),
            "image_works_reproduced": int((rows["fidelity"] >= fidelity_cut).sum()),
            "image_works_within_threshold": int((rows["closest_sample_l2"] <= threshold).sum()),
            "image_memorised_fraction_mean": float(rows["memorised_fraction"].mean()),
            "image_info_fidelity_rho": float(spearmanr(rows["info_bits"], rows["fidelity"]).statistic)}


def image_summary(images: WorkRisk, ratio: float, threshold: float, top_k: int) -> dict:
    """The image numbers of metrics.json: means over seeds with image_<key>_ci (t intervals over seeds),
    the permutation tests (bound and pixel coder against fidelity), the copy agreement that colours the
    map, the regions at the median information and fidelity 1 - ratio."""
    from scipy.stats import spearmanr

    seeds = sorted(images.per_seed["seed"].unique())
    per_seed = [image_seed_metrics(images.per_seed[images.per_seed["seed"] == s], 1 - ratio, threshold) for s in seeds]
    m = intervals.summarize_seeds(per_seed, list(per_seed[0]))
    m["image_n_seeds"] = m.pop("n_seeds")
    t = images.table
    replicates = int(t["replicates"].iloc[0])
    steps = sorted(set(images.steps.values()))
    m.update({
        "image_folds": int(t["fold"].max()) + 1, "image_models": len(images.steps),
        "image_train_steps_per_model": steps[0] if len(steps) == 1 else steps,
        "image_works": len(t), "image_replicates_per_work": replicates,
        "image_works_copied_by_all": int((t["near_copies"] == replicates).sum()),
        "image_works_copied_by_some": int(((t["near_copies"] > 0) & (t["near_copies"] < replicates)).sum()),
        "image_works_copied_by_none": int((t["near_copies"] == 0).sum()),
        "image_copies_fidelity_rho": _spearman(t["near_copies"], t["fidelity"]),
        "image_info_fidelity_p": images.association["bound"]["p"],
        "image_pixel_fidelity_rho": images.association["pixel"]["rho"],
        "image_pixel_fidelity_p": images.association["pixel"]["p"],
        "image_info_pixel_rho": float(spearmanr(t["info_bits"], t["pixel_bits"]).statistic),
        "image_info_bits_se_median": float(t["info_bits_se"].median()),
        "image_regions": images.ranked["region"].value_counts().to_dict(),
        "image_info_bits_median": images.info_cut,
        "image_riskiest": images.ranked.head(top_k)["work"].tolist(),
    })
    return m


def summarize(images: WorkRisk, text: WorkRisk, ratio: float, threshold: float, top_k: int, n_digits: int = 6,
              fidelity_cut: float = 0.5) -> dict:
    """The numbers of metrics.json: the image side (`image_summary`, image_n_seeds seeds) and the text
    side (n_seeds seeds, `text_summary`)."""
    return {**image_summary(images, ratio, threshold, top_k), **text_summary(text, n_digits, fidelity_cut, top_k)}


def _ci(m: dict, key: str, fmt: str = ".2f") -> str:
    lo, hi = m[f"{key}_ci"]
    return f"{m[key]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def image_verdicts(m: dict, ratio: float, threshold: float) -> list[str]:
    """What the image map shows, one sentence each, every noisy number with its 95% interval over seeds."""
    n, r = m["image_works"], m["image_replicates_per_work"]
    out = [f"Images ({m['image_n_seeds']} seeds x {m['image_folds']} folds = {m['image_models']} diffusion models, "
           f"{m['image_train_steps_per_model']} training steps each; {n} works): a work costs "
           f"{_ci(m, 'image_info_bits_mean', '.0f')} bits on average under the variational bound of the model that "
           f"never saw it (median Monte Carlo standard error of one work's bound {m['image_info_bits_se_median']:.0f} "
           f"bits); fidelity {_ci(m, 'image_fidelity_mean')} on average over the models that saw it."]
    out.append(f"  reproduced (fidelity >= {1 - ratio:g}: the closest sample at most {ratio:g} x as far as the closest "
               f"real look-alike): {_ci(m, 'image_works_reproduced', '.1f')} of {n} works; closest sample within "
               f"{threshold:g} RMS: {_ci(m, 'image_works_within_threshold', '.1f')}.")
    out.append(f"  regions at the median information ({m['image_info_bits_median']:.0f} bits) and fidelity "
               f"{1 - ratio:g}: " + "; ".join(f"{g}: {m['image_regions'].get(g, 0)}" for g in risk.REGION_ORDER) + ".")
    out.append(_association(f"information (bound) vs fidelity over the {n} works",
                            _ci(m, "image_info_fidelity_rho"), m["image_info_fidelity_p"]))
    p = m["image_pixel_fidelity_p"]
    out.append(f"  the causal pixel coder (fitted on held-out images) as a second information estimate: Spearman "
               f"{m['image_info_pixel_rho']:.2f} with the bound over the works; against fidelity rho "
               f"{m['image_pixel_fidelity_rho']:.2f}, permutation p = {p:.4f}"
               + (" (an association beyond chance at the 5% level)." if p < 0.05 else
                  " (no evidence at the 5% level)."))
    out.append(f"  the models that saw a work save {_ci(m, 'image_memorised_fraction_mean')} of the bits the one "
               f"that never saw it pays (memorised fraction, from the bound; mean over works).")
    out.append(f"  an extracted copy (within {threshold:g} RMS and at most {ratio:g} x as far as the sample's closest "
               f"real look-alike) is among the samples of all {r} models that saw the work for "
               f"{m['image_works_copied_by_all']} works, of some for {m['image_works_copied_by_some']}, of none for "
               f"{m['image_works_copied_by_none']}; Spearman of that count with fidelity "
               + ("undefined (the same count for every work)." if m["image_copies_fidelity_rho"] is None else
                  f"{m['image_copies_fidelity_rho']:.2f}."))
    if m["image_regions"].get(risk.REGIONS[(True, True)], 0) == 0:
        out.append("  -> No image work is both rich and reproduced at these cuts.")
    return out


def _association(label: str, rho: str, p: float, n_perm: int = N_PERM) -> str:
    floor = 1 / (n_perm + 1)
    shown = f"p = {p:.4f}" if p > floor else f"p <= {floor:.4f} (no permutation reached it)"
    verdict = ("an association beyond chance at the 5% level" if p < 0.05 else
               "no evidence at the 5% level that fidelity depends on information")
    return f"  {label}: Spearman rho {rho} (mean over seeds, 95% interval), permutation {shown}: {verdict}."


def text_verdicts(m: dict) -> list[str]:
    """What the text map shows, one sentence each, every noisy number with its 95% interval over seeds."""
    lo, hi = m["canary_info_bits_mean_ci"]
    a = m["canary_info_bits_analytic"]
    where = ("the analytic value lies inside the interval" if lo <= a <= hi else
             f"{m['canary_info_bits_mean'] - a:+.1f} bits from the analytic value, outside the interval")
    out = [f"Text ({m['n_seeds']} seeds x {m['text_folds']} folds, {m['text_works']} works): a canary secret costs "
           f"{_ci(m, 'canary_info_bits_mean', '.1f')} bits under the model that never saw it; "
           f"analytic log2(10^digits) = {a:.1f} bits: {where}."]
    high = risk.REGIONS[(True, True)]
    out.append(f"  regions at information >= {m['text_info_cut_bits']:g} bits and memorised fraction >= "
               f"{m['text_fidelity_cut']:g}: " + "; ".join(f"{r}: {m['text_regions'].get(r, 0)}"
                                                           for r in risk.REGION_ORDER) + ".")
    out.append(_association(f"information vs fidelity over all {m['text_works']} works",
                            _ci(m, "text_info_fidelity_rho"), m["text_info_fidelity_p"]))
    out.append(_association("over documents only", _ci(m, "document_info_fidelity_rho"), m["document_info_fidelity_p"]))
    fid, fid_ci = m["canary_fidelity_by_dup"], m["canary_fidelity_by_dup_ci"]
    ext, ext_ci = m["canary_extractable_by_dup"], m["canary_extractable_by_dup_ci"]
    out.append("  canaries by duplication: " + "; ".join(
        f"x{d}: memorised fraction {fid[d]:.2f} [{fid_ci[d][0]:.2f}, {fid_ci[d][1]:.2f}], greedily extractable "
        f"{ext[d]:.2f} [{ext_ci[d][0]:.2f}, {ext_ci[d][1]:.2f}]" for d in sorted(fid)) + ".")
    top = max(fid)
    out.append(f"  documents: memorised fraction {_ci(m, 'document_fidelity_mean')} on average, "
               f"{_ci(m, 'document_fidelity_max')} at most; -> " +
               intervals.compare("the documents' mean memorised fraction", m["document_fidelity_mean_ci"],
                                 f"the x{top} canaries'", fid_ci[top]) + ".")
    out.append(f"  documents cost {_ci(m, 'document_info_bpb_mean')} bits/byte under their "
               f"references, {m['document_ppmd_bpb_mean']:.2f} under PPMd (each document alone).")
    for label, key in (("riskiest document", "text_riskiest_document"),
                       ("document where the reference is weakest against PPMd", "text_weakest_reference_document")):
        d = m[key]
        out.append(f"  {label}: {d['work']} ({d['region']}): {d['info_bpb']:.2f} bits/byte under its reference vs "
                   f"{d['ppmd_bpb']:.2f} under PPMd (rank {d['ppmd_rank']} of {d['n_documents']} by PPMd, 1 = most "
                   f"compressible); memorised fraction {d['fidelity']:.2f} [{d['fidelity_ci'][0]:.2f}, "
                   f"{d['fidelity_ci'][1]:.2f}].")
    if m["text_regions"].get(high, 0) == 0:
        out.append("  -> No text work is both rich and reproduced at these cuts.")
    return out


def verdicts(m: dict, ratio: float, threshold: float) -> list[str]:
    """What the map shows, one sentence each: images, then text."""
    return image_verdicts(m, ratio, threshold) + text_verdicts(m)
