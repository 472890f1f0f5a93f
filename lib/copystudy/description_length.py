"""How many bits of the training set do the weights hold: code lengths of text under trained models.

Every quantity here is a code length in bits, the length of a message from which a receiver can
rebuild the text exactly:

- uniform code: 8 bits a byte, the cost of sending the text with no model at all;
- two-part code: first the weights (n_params x 16 bits as float16), then the text coded by the
  trained model, sum of -log2 p(b_i | b_<i);
- prequential (online) code (Blier & Ollivier 2018): the text is cut into blocks whose boundaries
  double; the first block is sent uniformly, every later block is coded by a model trained from
  scratch (same seed, same recipe) on all blocks before it. The receiver can retrain the same models
  itself, so no weights are sent;
- generalisation gap: bits on held-out text minus bits on the same number of training bytes;
- per-work memorised bits (after Morris et al. 2025): bits(x | model trained without x) minus
  bits(x | model trained with x).

Models are anything with `.bits(data) -> np.ndarray` (bits per byte), `.n_params` and `.context`
(copystudy.models.causal_lm.CausalLM); training is a callable `train(data: bytes) -> model`, so the
bookkeeping can be tested with fake models.
"""

from __future__ import annotations

import itertools
import math
from functools import partial
from typing import Callable

import numpy as np
import pandas as pd

from copystudy import parallel
from copystudy.compression import model_bits

UNIFORM_BITS_PER_BYTE = 8.0


# ---- the three code lengths -------------------------------------------------------------------------
def byte_bits(model, data: bytes, batch: int = 64) -> np.ndarray:
    """-log2 p(b_i | b_<i) for every byte (the first costs 8 bits), as model.bits computes it.

    A CausalLM evaluates its fixed windows `batch` at a time (about twice as fast as one by one);
    any other model object is asked for .bits(data).
    """
    if hasattr(model, "batched_bits"):
        return model.batched_bits(bytes(data), batch_size=batch)
    return np.asarray(model.bits(bytes(data)), dtype=np.float64)


def uniform_bits(n_bytes: int) -> float:
    """Code length of n bytes sent with no model: 8 bits each."""
    return UNIFORM_BITS_PER_BYTE * n_bytes


def block_bits(model, data: bytes, start: int, end: int) -> float:
    """Bits of data[start:end] under `model`, given the bytes before `start` as context.

    The receiver already holds data[:start] when it decodes this block, so up to `model.context`
    bytes of it may condition the model; they are not charged.
    """
    if not 0 <= start <= end <= len(data):
        raise ValueError(f"block [{start}, {end}) is not inside data of {len(data)} bytes")
    if start == end:
        return 0.0
    lead = min(start, int(getattr(model, "context", 0)))
    bits = byte_bits(model, data[start - lead:end])
    return float(bits[lead:].sum())


def two_part_bits(model, data: bytes, bits_per_param: int = 16) -> dict:
    """Two-part code: the weights, then the data coded by them (all in bits)."""
    weights = model_bits(model.n_params, bits_per_param)
    data_bits = float(byte_bits(model, data).sum())
    return {"model_bits": weights, "data_bits": data_bits, "total_bits": weights + data_bits}


def block_schedule(n_bytes: int, first_block: int) -> list[int]:
    """Block boundaries [0, b, 2b, 4b, ..., n]: the training prefix doubles from block to block.

    Block k is data[boundaries[k]:boundaries[k+1]]; the last block is cut at n_bytes, so the blocks
    cover the data exactly once.
    """
    if first_block < 1:
        raise ValueError(f"first_block must be >= 1 byte, got {first_block}")
    if n_bytes < first_block:
        raise ValueError(f"the data ({n_bytes} bytes) is shorter than first_block ({first_block})")
    bounds = [0, first_block]
    while bounds[-1] < n_bytes:
        bounds.append(min(2 * bounds[-1], n_bytes))
    return bounds


def prequential_bits(data: bytes, boundaries: list[int], train: Callable[[bytes], object]) -> dict:
    """Prequential code length of `data` (Blier & Ollivier 2018).

    Block 0 is sent uniformly; block k >= 1 is coded by train(data[:boundaries[k]]). Returns the
    total and the bits of each block.
    """
    _check_boundaries(boundaries, len(data))
    blocks = [uniform_bits(boundaries[1])]
    for k in range(1, len(boundaries) - 1):
        model = train(bytes(data[:boundaries[k]]))
        blocks.append(block_bits(model, data, boundaries[k], boundaries[k + 1]))
    return {"total_bits": float(sum(blocks)), "block_bits": blocks}


def _check_boundaries(boundaries: list[int], n_bytes: int) -> None:
    if len(boundaries) < 2 or boundaries[0] != 0 or boundaries[-1] != n_bytes:
        raise ValueError(f"boundaries must run from 0 to {n_bytes}, got {boundaries}")
    if any(b <= a for a, b in zip(boundaries, boundaries[1:])):
        raise ValueError(f"boundaries must increase strictly, got {boundaries}")


def training_steps(n_bytes: int, epochs: float, batch_size: int, context: int,
                   min_steps: int, max_steps: int) -> int:
    """The prequential recipe's step count: `epochs` passes over n_bytes, clipped to [min, max].

    A step sees batch_size windows of `context` predicted bytes; small prefixes get min_steps so the
    first models are not left untrained, large ones max_steps to bound the run time.
    """
    steps = math.ceil(epochs * n_bytes / (batch_size * context))
    return int(min(max_steps, max(min_steps, steps)))


# ---- code lengths as the training set grows ---------------------------------------------------------
def code_lengths_by_size(data: bytes, boundaries: list[int], train: Callable[[bytes], object],
                         heldout: bytes | None = None, bits_per_param: int = 16, gap_chunk: int = 2048,
                         seed: int = 0):
    """Uniform, two-part and prequential code lengths of data[:t] for every boundary t > 0.

    One model is trained on each prefix data[:t]; it gives the two-part code of that prefix and codes
    the next block of the prequential code. With `heldout`, each model's generalisation gap is also
    measured. Returns (a DataFrame with one row per prefix, {prefix size: its model}).
    """
    _check_boundaries(boundaries, len(data))
    prefix_model = partial(_prefix_model, data, train, heldout, bits_per_param, gap_chunk, seed)
    done = parallel.map_tasks(prefix_model, boundaries[1:], desc="prequential models", cost=lambda size: size)
    rows, models = [row for row, _ in done], {row["train_bytes"]: model for row, model in done}
    # the prequential code of each prefix, from the same models: block k is coded by the model of data[:b_k]
    preq = prequential_bits(data, boundaries, lambda prefix: models[len(prefix)])
    for k, (row, total) in enumerate(zip(rows, itertools.accumulate(preq["block_bits"]))):
        row["prequential_bits"] = total
        if k + 1 < len(preq["block_bits"]):  # this model codes the next block
            row.update(next_block_bytes=boundaries[k + 2] - boundaries[k + 1], next_block_bits=preq["block_bits"][k + 1])
    df = pd.DataFrame(rows)
    for name in ("uniform", "two_part", "prequential", "data"):
        df[f"{name}_bits_per_byte"] = df[f"{name}_bits"] / df["train_bytes"]
    return df, models


# ---- generalisation gap -----------------------------------------------------------------------------
def _prefix_model(data: bytes, train, heldout, bits_per_param: int, gap_chunk: int, seed: int, size: int):
    """One prefix (a task): its model, trained on data[:size], with its two-part code and gap."""
    model = train(bytes(data[:size]))
    two = two_part_bits(model, data[:size], bits_per_param)
    row = {"train_bytes": size, "uniform_bits": uniform_bits(size),
           "two_part_bits": two["total_bits"], "model_bits": two["model_bits"],
           "data_bits": two["data_bits"],
           "two_part_bits_fp32": two["data_bits"] + model_bits(model.n_params, 32),
           "train_steps": getattr(model, "train_steps", None),
           "final_loss_bits_per_byte": getattr(model, "final_loss_bits", None)}
    if heldout is not None:
        gap = generalization_gap(model, data[:size], heldout, chunk=gap_chunk, seed=seed)
        row.update(gap_bytes=gap["n_bytes"], gap_bits=gap["gap_bits"], gap_bits_per_byte=gap["gap_bits_per_byte"])
    return row, model


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


def bootstrap_gap(doc_bits: pd.DataFrame, n_boot: int = 2000, level: float = 0.9, seed: int = 0) -> dict:
    """Byte-weighted held-out minus training bits per byte over documents (a table from
    document_bits with splits 'train' and 'heldout'), with a bootstrap interval that resamples
    documents within each split: how much of the gap could be which documents fell where."""
    groups = {s: doc_bits[doc_bits["split"] == s] for s in ("train", "heldout")}
    if any(len(g) == 0 for g in groups.values()):
        raise ValueError("bootstrap_gap needs documents of both splits, 'train' and 'heldout'")

    def rate(g):
        return g["bits"].to_numpy().sum(-1) / g["bytes"].to_numpy().sum(-1)

    point = rate(groups["heldout"]) - rate(groups["train"])
    rng = np.random.default_rng(seed)
    draws = []
    for s in ("heldout", "train"):
        g = groups[s]
        idx = rng.integers(0, len(g), size=(n_boot, len(g)))
        bits, size = g["bits"].to_numpy()[idx].sum(1), g["bytes"].to_numpy()[idx].sum(1)
        draws.append(bits / size)
    diff = draws[0] - draws[1]
    lo, hi = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
    return {"gap_bits_per_byte": float(point), "low": float(lo), "high": float(hi), "level": level}


# ---- per-work memorised bits ------------------------------------------------------------------------
def memorized_bits(bits_without: float, bits_with: float) -> float:
    """Bits of a work the weights hold (Morris et al. 2025): its code length under a model that never
    saw it minus its code length under a model trained with it."""
    return float(bits_without) - float(bits_with)


def choose_works(docs: dict[str, bytes], n_works: int, min_bytes: int, max_bytes: int,
                 seed: int = 0) -> list[str]:
    """n_works document names whose sizes lie in [min_bytes, max_bytes], in a seeded random order."""
    names = sorted(k for k, v in docs.items() if min_bytes <= len(v) <= max_bytes)
    if len(names) < n_works:
        raise ValueError(f"only {len(names)} documents have {min_bytes}..{max_bytes} bytes; "
                         f"n_works={n_works} needs more (widen work_bytes or lower n_works)")
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[i] for i in order[:n_works]]


def memorization_corpus(train_docs: dict[str, bytes], works: list[str], duplicated: str | None,
                        copies: int, max_bytes: int | None = None, seed: int = 0) -> dict[str, bytes]:
    """The training set of the with-model: the works, other training documents (in a seeded random
    order, up to max_bytes in all) and copies-1 extra copies of the duplicated work."""
    missing = [w for w in works if w not in train_docs]
    if missing:
        raise ValueError(f"works {missing} are not training documents")
    if duplicated is not None and duplicated not in works:
        raise ValueError(f"duplicated work {duplicated!r} must be one of the works {works}")
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    corpus = {w: train_docs[w] for w in works}
    size = sum(len(v) for v in corpus.values())
    others = [k for k in sorted(train_docs) if k not in corpus]
    for i in np.random.default_rng(seed).permutation(len(others)):
        name = others[i]
        if max_bytes is not None and size + len(train_docs[name]) > max_bytes:
            continue
        corpus[name] = train_docs[name]
        size += len(train_docs[name])
    if duplicated is not None:
        for c in range(1, copies):
            corpus[f"{duplicated}#copy{c}"] = train_docs[duplicated]
    return corpus


def without(corpus: dict[str, bytes], *works: str) -> dict[str, bytes]:
    """The corpus with every copy of each of `works` removed."""
    def is_copy(key, w):
        return key == w or key.startswith(f"{w}#copy")
    return {k: v for k, v in corpus.items() if not any(is_copy(k, w) for w in works)}


def memorization_table(corpus: dict[str, bytes], works: dict[str, bytes], train: Callable[[bytes, int], object],
                       controls: dict[str, bytes] | None = None, seeds=(0,),
                       join: Callable[[dict], bytes] | None = None) -> pd.DataFrame:
    """Memorised bits of each work: bits(x | model without x) - bits(x | model with x), mean over seeds.

    For every seed, train(data, seed) gives one model on `corpus` (with the works) and one on the
    corpus without any of the works (all copies removed): same recipe, same seed. `controls` are
    texts no model saw (held-out documents); the same difference for them is training noise plus
    the shift that changing the training set causes on unseen text. `memorized_bits_adjusted`
    subtracts that shift (the controls' mean difference per byte, times the work's bytes).
    Returns one row per work and control.
    """
    join = join or (lambda docs: b"".join(docs[k] for k in sorted(docs)))
    missing = [w for w in works if w not in corpus]
    if missing:
        raise ValueError(f"works {missing} are not in the corpus")
    controls = controls or {}
    texts = {**works, **controls}
    kinds = {**{w: "training work" for w in works}, **{c: "held-out control" for c in controls}}
    rest = without(corpus, *works)
    seeds = list(seeds)
    jobs = [(seed, which) for seed in seeds for which in ("with", "without")]
    data = {"with": join(corpus), "without": join(rest)}
    per_model = parallel.map_tasks(partial(_text_bits, train, data, texts), jobs, desc="memorisation models")
    bits = dict(zip(jobs, per_model))  # (seed, "with" | "without") -> {text: bits}
    records = [{"work": name, "seed": seed, "bits_with": bits[seed, "with"][name],
                "bits_without": bits[seed, "without"][name]} for seed in seeds for name in texts]
    long = pd.DataFrame(records)
    long["memorized_bits"] = long["bits_without"] - long["bits_with"]
    agg = long.groupby("work", sort=False).agg(
        bits_with=("bits_with", "mean"), bits_without=("bits_without", "mean"),
        memorized_bits=("memorized_bits", "mean"), memorized_bits_sd=("memorized_bits", "std")).reset_index()
    agg.insert(1, "kind", agg["work"].map(kinds))
    agg.insert(2, "bytes", agg["work"].map(lambda w: len(texts[w])))
    agg.insert(3, "copies", agg["work"].map(lambda w: 1 + sum(k.startswith(f"{w}#copy") for k in corpus)
                                            if w in works else 0))
    agg["bits_per_byte_with"] = agg["bits_with"] / agg["bytes"]
    agg["bits_per_byte_without"] = agg["bits_without"] / agg["bytes"]
    agg["memorized_bits_per_byte"] = agg["memorized_bits"] / agg["bytes"]
    shift = agg.loc[agg["kind"] == "held-out control", "memorized_bits_per_byte"].mean() if controls else 0.0
    agg["memorized_bits_adjusted"] = agg["memorized_bits"] - shift * agg["bytes"]
    agg["memorized_bits_adjusted_per_byte"] = agg["memorized_bits_adjusted"] / agg["bytes"]
    return agg


def _text_bits(train, data: dict, texts: dict, job) -> dict:
    """One model (a task): trained with `seed` on data["with"] or data["without"]; the bits of every text."""
    seed, which = job
    model = train(data[which], seed)
    return {name: float(byte_bits(model, text).sum()) for name, text in texts.items()}


def shuffled_join(docs: dict[str, bytes], seed: int = 0) -> bytes:
    """Documents concatenated in a seeded random order, so that the blocks of a prequential code are
    alike (not, say, all the topics starting with 'a' first)."""
    names = sorted(docs)
    return b"".join(docs[names[i]] for i in np.random.default_rng(seed).permutation(len(names)))
