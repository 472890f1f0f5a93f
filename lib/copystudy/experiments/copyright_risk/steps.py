"""Notebook 04, copyright risk: information content against reconstruction fidelity for every work.

Both sides use a k-fold design over several training seeds. Images: the works fall into k folds and
diffusion model j trains on every fold but j (same steps for every model); a work's information is its
variational bound in bits under the model that never saw it, its fidelity how much closer the closest
sample of the models that saw it comes than its closest real look-alike; the causal pixel coder stays
beside the bound as a second estimate. Text: documents and planted canaries fall into k folds and LM
j trains on every fold but j; a work's information is its code length under the LM that never saw it,
its fidelity the fraction of those bits the LMs that saw it save. Both sides average over seeds with
95% intervals; regions come from stated cuts (for images' information, the median) and the
association of the two axes from a permutation test. `summarize` gives metrics.json, `verdicts` the
sentences the notebook prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from copystudy.compression import baselines
from copystudy.memorization.memorized_bits import memorized_bits
from copystudy.memorization import canaries, distances, extraction, risk
from copystudy.common import intervals, parallel
from copystudy import models


@dataclass
class WorkRisk:
    """One row per work (information, fidelity, ...), the same ranked by risk, and the information cut."""

    table: pd.DataFrame
    ranked: pd.DataFrame
    info_cut: float
    samples: np.ndarray | None = None  # images: the closest sample to each work of any model that saw it
    n_params: int = 0
    per_seed: pd.DataFrame | None = None  # one row per (seed, work)
    design: "TextDesign | None" = None  # text: the k-fold design
    association: dict | None = None  # permutation tests of information vs fidelity
    steps: dict | None = None  # images: training steps of every (seed, fold) model


# ---- images: the k-fold design -----------------------------------------------------------------------
def image_folds(n: int, k: int, seed: int = 0) -> np.ndarray:
    """The fold (0..k-1) of each of n works: a seeded random order dealt round robin, so fold sizes differ
    by at most one (and are equal when k divides n: every model then trains on the same number of works)."""
    if k < 2:
        raise ValueError(f"the k-fold design needs k >= 2 folds, got {k}")
    if n < k:
        raise ValueError(f"{k} folds need at least {k} works, got {n}")
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return fold


def image_training_indices(fold: np.ndarray, j: int) -> np.ndarray:
    """What diffusion model j trains on: the works of every fold but j (indices into the works)."""
    return np.flatnonzero(np.asarray(fold) != j)


def copies_per_work(samples: np.ndarray, works: np.ndarray, seen: np.ndarray, heldout: np.ndarray, threshold: float,
                    ratio: float) -> np.ndarray:
    """How many of a model's samples are extracted copies of each work [len(works)], by the memorisation
    notebook's criterion against the works the model trained on (`seen`): a sample's nearest seen work
    within `threshold` and at most `ratio` x as far as the sample's nearest held-out image. Works the
    model never saw get 0."""
    matches = extraction.extraction_table(samples, works[seen], heldout, "l2", threshold, ratio)
    copies = np.zeros(len(works), dtype=np.int64)
    np.add.at(copies, np.asarray(seen)[matches.loc[matches["extracted"], "train_idx"].to_numpy(dtype=np.int64)], 1)
    return copies


def _fold_diffusion(works: np.ndarray, heldout: np.ndarray, fold: np.ndarray, spec: dict, steps: int, batch_size: int,
                    lr: float, n_samples: int, inference_steps: int, threshold: float, ratio: float, n_strata: int,
                    n_decoder: int, plan_seed: int, item: tuple[int, int]) -> dict:
    """Task (seed s, fold j): train diffusion model j on every fold but j for `steps` steps, then return,
    for every work, its bits under the bound (common noise plan: every model is scored on the same
    timesteps and noises, so differences between models are not Monte Carlo noise), the distance and
    image of its closest sample, and how many samples are extracted copies of it (the memorisation
    notebook's criterion, against the works this model trained on). Numbers, not the model, go back."""
    from copystudy.compression.likelihood import NoisePlan, vlb_terms

    s, j = item
    seen = image_training_indices(fold, j)
    net = models.build(spec, image_size=works.shape[-1], channels=works.shape[1], seed=s)
    losses = net.fit(works[seen], steps, batch_size=batch_size, lr=lr, seed=s,
                     desc=f"diffusion seed {s} without fold {j}")
    samples = net.sample(n_samples, seed=s, num_inference_steps=inference_steps, progress_bar=False)
    plan = NoisePlan.make(len(works), net.image_shape, net.scheduler.config.num_train_timesteps, n_strata, n_decoder,
                          seed=plan_seed)
    terms = vlb_terms(net, works, None, plan)
    d = distances.pairwise_distances(works, samples, "l2")
    copies = copies_per_work(samples, works, seen, heldout, threshold, ratio)
    return {"trained_on": seen.tolist(), "steps": len(losses), "n_params": net.n_params,
            "bits": terms.nll_bits(), "bits_se": terms.standard_error(), "closest_l2": d.min(1),
            "closest": samples[d.argmin(1)], "copies": copies}


def image_fold_table(fold: np.ndarray, results: dict, seeds, heldout_l2: np.ndarray) -> pd.DataFrame:
    """One row per (seed, work). info_bits: the bound under model `fold` of that seed, the one model that
    never saw the work (checked against the model's training list); seen_bits the mean over the k-1 that
    saw it. fidelity: 1 - d(closest sample) / d(closest held-out image), the mean over the seen models;
    near_copies: how many seen models' samples hold an extracted copy of the work (0..k-1)."""
    k, rows = int(fold.max()) + 1, []
    for s in seeds:
        for w, j in enumerate(fold):
            if w in results[s, j]["trained_on"]:
                raise ValueError(f"work {w}'s reference (seed {s}, fold {j}) trained on it")
            saw = [results[s, m] for m in range(k) if m != j]
            if any(w not in r["trained_on"] for r in saw):
                raise ValueError(f"work {w} is missing from a model of seed {s} that should have seen it")
            rows.append({"seed": s, "work": w, "fold": int(j), "info_bits": float(results[s, j]["bits"][w]),
                         "info_bits_se": float(results[s, j]["bits_se"][w]),
                         "seen_bits": float(np.mean([r["bits"][w] for r in saw])),
                         "closest_sample_l2": float(np.mean([r["closest_l2"][w] for r in saw])),
                         "fidelity": float(np.mean([1 - r["closest_l2"][w] / heldout_l2[w] for r in saw])),
                         "near_copies": int(sum(r["copies"][w] > 0 for r in saw)), "n_seen": k - 1})
    table = pd.DataFrame(rows)
    table["closest_heldout_l2"] = table["work"].map(lambda w: float(heldout_l2[w]))
    table["memorised_fraction"] = (table["info_bits"] - table["seen_bits"]) / table["info_bits"]
    return table


def image_mean_over_seeds(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One row per work: means over seeds (info_bits, fidelity with *_lo, *_hi 95% t intervals over
    seeds) and near_copies summed over seeds, out of replicates = seeds x (k-1) models that saw it."""
    keys = ["work", "fold", "closest_heldout_l2"]
    g = per_seed.groupby(keys, sort=False)
    out = g[["info_bits", "info_bits_se", "seen_bits", "memorised_fraction", "closest_sample_l2", "fidelity"]].mean()
    out["near_copies"] = g["near_copies"].sum()
    out["replicates"] = g["n_seen"].sum()
    out = out.reset_index()
    for col in ("info_bits", "fidelity"):
        ci = g[col].apply(lambda v: intervals.mean_ci(v)[1:])
        out[f"{col}_lo"] = [lo for lo, _ in ci.values]
        out[f"{col}_hi"] = [hi for _, hi in ci.values]
    out["copy_agreement"] = [f"{c} of {r}" for c, r in zip(out["near_copies"], out["replicates"])]
    return out


def image_map(works: np.ndarray, heldout: np.ndarray, fold: np.ndarray, results: dict, seeds, ratio: float,
              levels: int, context_bins: int, seed: int = 0) -> WorkRisk:
    """The image map from the tasks' numbers: per-seed rows, their means with intervals, the pixel coder
    (fitted on held-out images) beside the bound, regions at the median information and fidelity
    1 - ratio, permutation tests of information (bound, and pixel coder) against fidelity, and for
    every work the closest sample any model that saw it drew (for the thumbnails)."""
    heldout_l2 = distances.nearest(works, heldout, "l2")[1]
    per_seed = image_fold_table(fold, results, seeds, heldout_l2)
    table = image_mean_over_seeds(per_seed)
    table["pixel_bits"] = risk.PixelContextModel(levels, context_bins).fit(heldout).bits(works)[table["work"]]
    k = int(fold.max()) + 1
    best = np.empty_like(works)
    for w, j in enumerate(fold):
        seen = [results[s, m] for s in seeds for m in range(k) if m != j]
        best[w] = min(seen, key=lambda r: r["closest_l2"][w])["closest"][w]
    table["best_sample_l2"] = distances.pairwise_distances(works, best, "l2").diagonal()[table["work"]]
    cut = float(table["info_bits"].median())
    ranked = risk.rank_by_risk(table, "info_bits", "fidelity", cut, 1 - ratio)
    assoc = {"bound": association(table, None, seed=seed),
             "pixel": association(table.assign(info_bits=table["pixel_bits"]), None, seed=seed)}
    first = results[seeds[0], 0]
    return WorkRisk(table, ranked, cut, best, first["n_params"], per_seed=per_seed, association=assoc,
                    steps={key: r["steps"] for key, r in results.items()})


def image_risk(works, heldout, model: dict, train_steps: int, batch_size: int, lr: float, n_samples: int,
               inference_steps: int, threshold: float, ratio: float, levels: int, context_bins: int, k: int = 3,
               seeds=(0, 1, 2), n_strata: int = 64, n_decoder: int = 4, seed: int = 0) -> WorkRisk:
    """The image map from the k-fold design: the works fall into k folds (seeded by `seed`); for each
    training seed, diffusion model j trains on every fold but j, all with the same steps, batch size and
    learning rate; all (seed, fold) models are one map_tasks stage. A work's information is its bound
    under the model of its fold (never saw it), its fidelity from the samples of the k-1 that did."""
    fold = image_folds(len(works), k, seed)
    items = [(s, j) for s in seeds for j in range(k)]
    task = partial(_fold_diffusion, works, heldout, fold, model, train_steps, batch_size, lr, n_samples,
                   inference_steps, threshold, ratio, n_strata, n_decoder, seed)
    results = dict(zip(items, parallel.map_tasks(task, items, desc=f"diffusion: {len(seeds)} seeds x {k} folds",
                                                 cost=lambda item: train_steps)))
    return image_map(works, heldout, fold, results, list(seeds), ratio, levels, context_bins, seed)


# ---- text: the k-fold design -------------------------------------------------------------------------
N_PERM = 10_000  # permutations of the association test (p resolves down to 1e-4)


def assign_folds(docs: dict[str, bytes], k: int, seed: int = 0) -> dict[str, int]:
    """The fold (0..k-1) of every document: documents in a seeded random order, each to the fold with
    the fewest bytes so far, so the folds are of about equal size and none is empty."""
    if k < 2:
        raise ValueError(f"the k-fold design needs k >= 2 folds, got {k}")
    if len(docs) < k:
        raise ValueError(f"{k} folds need at least {k} documents, got {len(docs)}")
    names = sorted(docs)
    size, fold = [0] * k, {}
    for i in np.random.default_rng(seed).permutation(len(names)):
        j = int(np.argmin(size))
        fold[names[i]] = j
        size[j] += len(docs[names[i]])
    return {name: fold[name] for name in names}


@dataclass
class TextDesign:
    """The k-fold design: every document and canary has a fold; fold j's text is its documents with its
    canaries and template lines planted. Model j trains on every fold but j (`training_text`)."""

    docs: dict[str, bytes]
    fold_of: dict[str, int]
    canaries: list
    canary_fold: list[int]
    planted: list[dict[str, bytes]]

    @property
    def k(self) -> int:
        return len(self.planted)


def text_design(docs: dict[str, bytes], k: int, dups, canaries_per_dup: int, n_digits: int, format_lines: int,
                seed: int = 0) -> TextDesign:
    """Folds of the documents; canaries_per_dup canaries per duplication count in each fold (distinct
    accounts and secrets); format_lines template lines (fresh secrets, once each) spread over the folds."""
    fold_of = assign_folds(docs, k, seed)
    marked = canaries.make_canaries(dups, k * canaries_per_dup, n_digits, seed)
    canary_fold = [i % k for i in range(len(marked))]  # consecutive canaries share a dup: round robin
    template = canaries.template_lines(format_lines, n_digits, marked, seed + 1)
    planted = [canaries.plant({n: d for n, d in docs.items() if fold_of[n] == j},
                              [c for c, f in zip(marked, canary_fold) if f == j] + template[j::k], seed + j)
               for j in range(k)]
    return TextDesign(dict(docs), fold_of, marked, canary_fold, planted)


def training_text(design: TextDesign, j: int) -> dict[str, bytes]:
    """What model j trains on: the planted text of every fold but j."""
    return {name: text for f, part in enumerate(design.planted) if f != j for name, text in part.items()}


def _fold_lm(design: TextDesign, spec: dict, steps: int, batch_size: int, lr: float, n_candidates: int,
             item: tuple[int, int]) -> dict:
    """Task (seed s, fold j): train model j on every fold but j, return the bits of every document and
    canary secret under it and, for the canaries it saw, greedy extractability and exposure. Numbers,
    not the model, go back: small to ship, and the scoring runs in parallel too."""
    s, j = item
    lm = models.build(spec, seed=s)
    lm.fit(training_text(design, j), steps, batch_size=batch_size, lr=lr, seed=s, desc=f"LM seed {s} without fold {j}")
    score = canaries.lm_scorer(lm)
    seen = [i for i, f in enumerate(design.canary_fold) if f != j]
    report = canaries.canary_report(lm, [design.canaries[i] for i in seen], n_candidates, s)
    return {"doc_bits": {name: float(lm.batched_bits(text).sum()) for name, text in design.docs.items()},
            "canary_bits": [float(score(b"\n" + c.prefix, [c.secret])[0]) for c in design.canaries],
            "report": {i: (bool(r.extractable), float(r.exposure)) for i, r in zip(seen, report.itertuples())}}


def compressor_bits(data: bytes, name: str = "ppmd") -> float:
    """A generic compressor's code length of `data` alone, in bits (8 x its compressed bytes)."""
    return 8.0 * baselines.compressed_size(name, [data])


def fold_table(design: TextDesign, results: dict, seeds) -> pd.DataFrame:
    """One row per (seed, work). info_bits: bits under model `fold` of that seed, the one model that never
    saw the work; seen_bits: the mean over the k-1 models that saw it (they saw the same work in the
    same amount of data, so they are exchangeable; the mean halves their noise). For canaries the bits
    are of the secret given its prefix, and extractable/exposure are means over the seen models."""
    k, rows = design.k, []
    for s in seeds:
        for name, text in design.docs.items():
            j = design.fold_of[name]
            rows.append({"seed": s, "work": name, "kind": "document", "fold": j, "bytes": len(text),
                         "info_bits": results[s, j]["doc_bits"][name],
                         "seen_bits": float(np.mean([results[s, m]["doc_bits"][name] for m in range(k) if m != j])),
                         "extractable": np.nan, "exposure": np.nan})
        for i, c in enumerate(design.canaries):
            j = design.canary_fold[i]
            seen = [results[s, m] for m in range(k) if m != j]
            rows.append({"seed": s, "work": c.text.decode(), "kind": f"canary x{c.dup}", "fold": j,
                         "bytes": len(c.secret), "info_bits": results[s, j]["canary_bits"][i],
                         "seen_bits": float(np.mean([r["canary_bits"][i] for r in seen])),
                         "extractable": float(np.mean([r["report"][i][0] for r in seen])),
                         "exposure": float(np.mean([r["report"][i][1] for r in seen]))})
    table = pd.DataFrame(rows)
    table["n_seen"] = k - 1
    table["memorized_bits"] = memorized_bits(table["info_bits"], table["seen_bits"])
    table["fidelity"] = table["memorized_bits"] / table["info_bits"]
    return table


def mean_over_seeds(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One row per work: the mean over seeds of every number that depends on training noise, with the
    95% interval of information and fidelity (columns *_lo, *_hi)."""
    keys = ["work", "kind", "fold", "bytes"]
    out = per_seed.groupby(keys, sort=False)[["info_bits", "seen_bits", "memorized_bits", "fidelity",
                                              "extractable", "exposure"]].mean().reset_index()
    for col in ("info_bits", "fidelity"):
        ci = per_seed.groupby(keys, sort=False)[col].apply(lambda v: intervals.mean_ci(v)[1:])
        out[f"{col}_lo"] = [lo for lo, _ in ci.values]
        out[f"{col}_hi"] = [hi for _, hi in ci.values]
    return out


def work_bytes(design: TextDesign) -> dict[str, bytes]:
    """The bytes whose information the map measures: a document, or a canary's secret (keyed by its line)."""
    return {**design.docs, **{c.text.decode(): c.secret for c in design.canaries}}


def add_compressor(table: pd.DataFrame, bits: dict[str, float], name: str = "ppmd") -> pd.DataFrame:
    """Columns <name>_bits (the generic compressor's bits of the work alone, from `bits`) and bits per byte
    of both: the reference's info_bpb beside the compressor's, to see where the reference is weak."""
    table = table.copy()
    table[f"{name}_bits"] = table["work"].map(bits)
    table["info_bpb"] = table["info_bits"] / table["bytes"]
    table[f"{name}_bpb"] = table[f"{name}_bits"] / table["bytes"]
    return table


def weakest_references(table: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The documents whose reference pays most over PPMd per byte: where a work's 'information' is what
    the models that never saw it lack (an unfamiliar format) more than what it holds."""
    docs = table[table["kind"] == "document"].assign(excess_bpb=lambda d: d["info_bpb"] - d["ppmd_bpb"])
    return docs.sort_values("excess_bpb", ascending=False).head(n)[
        ["work", "bytes", "info_bpb", "ppmd_bpb", "excess_bpb", "fidelity", "fidelity_lo", "fidelity_hi"]]


def association(table: pd.DataFrame, kind: str | None = None, n_perm: int = N_PERM, seed: int = 0) -> dict:
    """Spearman correlation of information and fidelity over the works (of one kind if given: 'document'
    or 'canary') and its permutation p-value: is a work's fidelity related to its information at all?"""
    rows = table if kind is None else table[table["kind"].str.startswith(kind)]
    rho, p = intervals.permutation_test(rows["info_bits"], rows["fidelity"], n_perm, seed)
    return {"rho": rho, "p": p, "n": len(rows)}


def text_risk(docs: dict[str, bytes], dups, canaries_per_dup: int, n_digits: int, lm_shape: dict, lm_context: int,
              lm_steps: int, lm_batch_size: int, lm_lr: float, n_candidates: int, info_cut: float,
              fidelity_cut: float, k: int = 3, seeds=(0, 1, 2), format_lines: int = 0, seed: int = 0) -> WorkRisk:
    """The text map from the k-fold design: k LMs per seed, all (seed, fold) models one task each in a
    single map_tasks call; every work measured by the model that never saw it (information) and the
    models that did (fidelity), averaged over seeds; regions at the stated cuts (bits, memorised fraction)."""
    design = text_design(docs, k, dups, canaries_per_dup, n_digits, format_lines, seed)
    spec = {"family": "causal_lm", "context": lm_context, **lm_shape}
    items = [(s, j) for s in seeds for j in range(k)]
    train = partial(_fold_lm, design, spec, lm_steps, lm_batch_size, lm_lr, n_candidates)
    results = dict(zip(items, parallel.map_tasks(train, items, desc=f"LMs: {len(seeds)} seeds x {k} folds",
                                                 cost=lambda item: lm_steps)))
    return text_map(design, results, seeds, info_cut, fidelity_cut, seed)


def text_map(design: TextDesign, results: dict, seeds, info_cut: float, fidelity_cut: float, seed: int = 0) -> WorkRisk:
    """The text map from the tasks' scores: per-seed rows, their means with intervals, PPMd beside them,
    regions at the stated cuts, and the permutation tests of information against fidelity."""
    ppmd = {w: compressor_bits(b, "ppmd") for w, b in work_bytes(design).items()}
    per_seed = add_compressor(fold_table(design, results, seeds), ppmd)
    table = add_compressor(mean_over_seeds(per_seed), ppmd)
    ranked = risk.rank_by_risk(table, "info_bits", "fidelity", info_cut, fidelity_cut)
    return WorkRisk(table, ranked, float(info_cut), per_seed=per_seed, design=design,
                    association={"all": association(table, None, seed=seed),
                                 "document": association(table, "document", seed=seed)})


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


# ---- figures ----------------------------------------------------------------------------------------
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
