"""The generalisation gap in bits: how much cheaper the documents a model was fitted on are than
held-out documents of the same source, per byte, with a bootstrap interval over documents and seeds.

One definition for the study (`generalization_gap`), on one set of documents: both text notebooks
split the documents with `common.data.split_documents` and fit their models on `fitted_documents`
(the training documents before the validation tail of one seeded document order), so their gaps are
over the same fitted and held-out documents and differ only by the model that codes them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from copystudy.compression.code_lengths import byte_bits


# ---- generalisation gap -----------------------------------------------------------------------------
def document_bits(model, docs: dict[str, bytes], split: str) -> pd.DataFrame:
    """Bits and bits per byte of every document under `model`, each coded on its own."""
    rows = []
    for name, text in docs.items():
        bits = float(byte_bits(model, text).sum())
        rows.append({"document": name, "split": split, "bytes": len(text), "bits": bits,
                     "bits_per_byte": bits / max(1, len(text))})
    return pd.DataFrame(rows)


def fit_documents(docs: dict[str, bytes], fit_text: bytes) -> dict[str, bytes]:
    """The documents that lie whole inside the bytes a model was fitted on."""
    return {k: v for k, v in docs.items() if v and v in fit_text}


def shuffled_join(docs: dict[str, bytes], seed: int = 0) -> bytes:
    """Documents concatenated in a seeded random order (the description-length text; the order that
    decides which documents form the validation tail)."""
    names = sorted(docs)
    return b"".join(docs[names[i]] for i in np.random.default_rng(seed).permutation(len(names)))


def fitted_documents(train_docs: dict[str, bytes], validation_fraction: float, seed: int = 0,
                     ) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(fitted, validation): the training documents that lie whole in the first n - ceil(fraction x n)
    bytes of `shuffled_join(train_docs, seed)` (what an early-stopped model of the whole text is fitted
    on), and the rest (the validation tail, which chooses the training length)."""
    text = shuffled_join(train_docs, seed)
    k = math.ceil(validation_fraction * len(text))
    fitted = fit_documents(train_docs, text[:len(text) - k])
    return fitted, {d: v for d, v in train_docs.items() if d not in fitted}


def generalization_gap(doc_bits: pd.DataFrame, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """The study's generalisation gap: byte-weighted bits per byte of held-out documents minus that of
    fitted documents, each coded on its own (`document_bits`), mean over seeds with a bootstrap interval
    over documents and seeds (`bootstrap_gap`)."""
    return bootstrap_gap(doc_bits, n_boot=n_boot, level=level, seed=seed)


def bootstrap_gap(doc_bits: pd.DataFrame, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Byte-weighted held-out minus training bits per byte over documents, mean over seeds, with a
    bootstrap interval over documents and seeds.

    doc_bits has one row per (seed, document) from document_bits (splits 'train' and 'heldout'; no
    'seed' column: one seed). Each replicate resamples the documents of each split (the same draw
    for every seed: a document is the same text under every seed) and the seeds, so the interval
    holds both which documents fell where and the training noise."""
    if "seed" not in doc_bits:
        doc_bits = doc_bits.assign(seed=0)
    groups = {s: doc_bits[doc_bits["split"] == s] for s in ("train", "heldout")}
    if any(len(g) == 0 for g in groups.values()):
        raise ValueError("bootstrap_gap needs documents of both splits, 'train' and 'heldout'")
    seeds = sorted(doc_bits["seed"].unique())
    rng = np.random.default_rng(seed)
    rates, points = {}, {}
    for s, g in groups.items():
        bits = g.pivot_table(index="document", columns="seed", values="bits", aggfunc="sum")[seeds]
        size = g.groupby("document")["bytes"].first().reindex(bits.index).to_numpy()
        bits = bits.to_numpy()  # [documents, seeds]
        points[s] = bits.sum(0) / size.sum()  # per seed
        idx = rng.integers(0, len(size), size=(n_boot, len(size)))
        rates[s] = bits[idx].sum(1) / size[idx].sum(1)[:, None]  # [n_boot, seeds]
    per_seed = points["heldout"] - points["train"]
    pick = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
    draws = np.take_along_axis(rates["heldout"] - rates["train"], pick, axis=1).mean(1)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return {"gap_bits_per_byte": float(per_seed.mean()), "low": float(lo), "high": float(hi), "level": level,
            "per_seed": [float(v) for v in per_seed], "n_documents": {s: int(g["document"].nunique())
                                                                     for s, g in groups.items()}}
