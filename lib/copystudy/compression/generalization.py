"""The generalisation gap in bits: how much cheaper the documents a model was fitted on are than
held-out documents of the same source, per byte, with a bootstrap interval over documents and seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from copystudy.compression.code_lengths import byte_bits


# ---- generalisation gap -----------------------------------------------------------------------------
def generalization_gap(model, train_data: bytes, heldout: bytes, chunk: int = 2048, seed: int = 0) -> dict:
    """Bits the model saves on training text beyond what it saves on unseen text of the same source.

    gap = bits(held-out sample) - bits(training sample); both samples are n bytes with
    n = min(len(heldout), len(train_data)) and both are coded in chunks of `chunk` bytes (so each has
    the same context handicap). The held-out sample is its first n bytes; the training sample is
    ceil(n / chunk) chunks at seeded random chunk-aligned offsets (spread over many documents rather
    than one contiguous stretch), cut to n bytes. Positive = the training text is cheaper to code.
    """
    n = min(len(heldout), len(train_data))
    if n == 0:
        raise ValueError("generalization_gap needs non-empty training and held-out text")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 byte, got {chunk}")
    k, slots = math.ceil(n / chunk), len(train_data) // chunk
    if k <= slots:
        picks = np.sort(np.random.default_rng(seed).choice(slots, size=k, replace=False))
        train_sample = b"".join(train_data[i * chunk:(i + 1) * chunk] for i in picks)[:n]
    else:  # the training text is barely longer than the held-out text: take it from the start
        train_sample = bytes(train_data[:n])
    held_sample = bytes(heldout[:n])
    train_bits = chunked_bits(model, train_sample, chunk)
    held_bits = chunked_bits(model, held_sample, chunk)
    return {"n_bytes": n, "train_bits": train_bits, "heldout_bits": held_bits,
            "train_bits_per_byte": train_bits / n, "heldout_bits_per_byte": held_bits / n,
            "gap_bits": held_bits - train_bits, "gap_bits_per_byte": (held_bits - train_bits) / n}


def chunked_bits(model, data: bytes, chunk: int) -> float:
    """Code length of data cut into chunks of `chunk` bytes, each coded without earlier context."""
    return float(sum(byte_bits(model, data[i:i + chunk]).sum() for i in range(0, len(data), chunk)))


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
