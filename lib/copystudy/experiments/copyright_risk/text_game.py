"""Notebook 04, copyright risk: the text game, a k-fold design over byte-level LMs.

Documents and planted canaries fall into k folds and LM j trains on every fold but j; a work's
information is its code length under the LM that never saw it, its fidelity the fraction of those bits
the LMs that saw it save; PPMd's bits for the work alone stand beside the information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from copystudy import models
from copystudy.common import intervals
from copystudy.compression import baselines
from copystudy.experiments.copyright_risk.design import CanaryPlan, LMRecipe, WorkRisk, association
from copystudy.memorization import canaries, risk
from copystudy.memorization.memorized_bits import memorized_bits


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


def text_design(docs: dict[str, bytes], k: int, plan: CanaryPlan, seed: int = 0) -> TextDesign:
    """Folds of the documents; canaries_per_dup canaries per duplication count in each fold (distinct
    accounts and secrets); format_lines template lines (fresh secrets, once each) spread over the folds."""
    fold_of = assign_folds(docs, k, seed)
    marked = canaries.make_canaries(plan.dups, k * plan.per_dup, plan.n_digits, seed)
    canary_fold = [i % k for i in range(len(marked))]  # consecutive canaries share a dup: round robin
    template = canaries.template_lines(plan.format_lines, plan.n_digits, marked, seed + 1)
    planted = [canaries.plant({n: d for n, d in docs.items() if fold_of[n] == j},
                              [c for c, f in zip(marked, canary_fold) if f == j] + template[j::k], seed + j)
               for j in range(k)]
    return TextDesign(dict(docs), fold_of, marked, canary_fold, planted)


def training_text(design: TextDesign, j: int) -> dict[str, bytes]:
    """What model j trains on: the planted text of every fold but j."""
    return {name: text for f, part in enumerate(design.planted) if f != j for name, text in part.items()}


def fold_lm(design: TextDesign, recipe: LMRecipe, n_candidates: int, item: tuple[int, int]) -> dict:
    """Task (seed s, fold j): train model j on every fold but j, return the bits of every document and
    canary secret under it and, for the canaries it saw, greedy extractability and exposure. Numbers,
    not the model, go back: small to ship, and the scoring runs in parallel too."""
    s, j = item
    lm = models.build({"family": "causal_lm", "context": recipe.context, **recipe.shape}, seed=s)
    lm.fit(training_text(design, j), recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr, seed=s,
           desc=f"LM seed {s} without fold {j}")
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
