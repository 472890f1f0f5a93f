"""How many bits of the training set do the weights hold: code lengths of text under trained models.

Every quantity here is a code length in bits, the length of a message from which a receiver can
rebuild the text exactly:

- uniform code: 8 bits a byte, the cost of sending the text with no model at all;
- two-part code: first the weights, quantised to b bits each (symmetric, per tensor, plus one
  32-bit scale per tensor), then the text coded by the quantised model, sum of -log2 p(b_i | b_<i);
  b is chosen to make the total shortest;
- prequential (online) code (Blier & Ollivier 2018): the text is cut into blocks whose boundaries
  double; the first block is sent uniformly, every later block is coded by a model trained from
  scratch (same seed, same recipe) on all blocks before it. The receiver can retrain the same models
  itself, so no weights are sent. Each model is trained with early stopping on the last part of its
  own prefix (`train_early_stopped`), a deterministic function of the prefix bytes and the seed;
- generalisation gap: byte-weighted bits per byte of held-out documents minus that of training
  documents, with a bootstrap interval over documents and seeds;
- per-work memorised bits (after Morris et al. 2025): bits(x | model trained without x) minus
  bits(x | model trained with x), where the without-model trains on the same corpus with x swapped
  for held-out text of the same length (`swapped`): same bytes, same steps, same windows.

Models are anything with `.bits(data) -> np.ndarray` (bits per byte), `.n_params` and `.context`
(copystudy.models.causal_lm.CausalLM); training is a callable `train(data: bytes, seed: int) -> model`,
so the bookkeeping can be tested with fake models.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
import pandas as pd

from copystudy.compression import online_coding
from copystudy.common import parallel
from copystudy.compression.rates import model_bits
from copystudy.common.verdicts import trend

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
    """The coder's check (`online_coding.check_boundaries`), and at least one block: a code length
    needs data."""
    if len(boundaries) < 2:
        raise ValueError(f"block boundaries must run from 0 to {n_bytes}, got {boundaries}")
    online_coding.check_boundaries(boundaries, n_bytes)


def training_steps(n_bytes: int, epochs: float, batch_size: int, context: int,
                   min_steps: int, max_steps: int) -> int:
    """The prequential recipe's step count: `epochs` passes over n_bytes, clipped to [min, max].

    A step sees batch_size windows of `context` predicted bytes; small prefixes get min_steps so the
    first models are not left untrained, large ones max_steps to bound the run time.
    """
    steps = math.ceil(epochs * n_bytes / (batch_size * context))
    return int(min(max_steps, max(min_steps, steps)))


# ---- the learner: early stopping on the end of the prefix -------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """How every model of the code lengths is trained from scratch.

    AdamW (warm-up, cosine decay over the step ceiling) on random windows of the prefix minus its
    validation split; the ceiling is `epochs` passes over those bytes, clipped to [min_steps,
    max_steps]. Every `eval_every` steps (and at the ceiling) the validation split is scored; the best
    weights are kept, and training stops after `patience` scores without improvement."""

    model: dict = field(default_factory=lambda: {"family": "causal_lm"})
    batch_size: int = 32
    lr: float = 3e-3
    epochs: float = 8.0
    min_steps: int = 100
    max_steps: int = 300
    validation_fraction: float = 0.1
    eval_every: int = 25
    patience: int = 3


def validation_split(prefix: bytes, fraction: float, min_bytes: int) -> tuple[bytes, bytes]:
    """(fit, validation): the last ceil(fraction x n) bytes of the prefix, at least min_bytes, are held
    out. A function of the prefix alone, so a decoder that holds the prefix makes the same split."""
    n, k = len(prefix), max(min_bytes, math.ceil(fraction * len(prefix)))
    if n - k < min_bytes:
        raise ValueError(f"a prefix of {n} bytes cannot give {k} validation bytes and keep {min_bytes} to fit")
    return bytes(prefix[:n - k]), bytes(prefix[n - k:])


def validation_bits(model, data: bytes, batch: int = 64) -> float:
    """Mean bits per predicted byte of `data` cut into consecutive windows of context + 1 bytes (the
    first byte of each is context only): the quick, fixed score early stopping compares."""
    import torch

    arr = np.frombuffer(bytes(data), dtype=np.uint8).astype(np.int64)
    c = model.context
    n = (len(arr) - 1) // c
    if n < 1:
        raise ValueError(f"validation needs more than {c} bytes, got {len(arr)}")
    windows = torch.from_numpy(np.stack([arr[i * c:i * c + c + 1] for i in range(n)]))
    was_training, total = model.model.training, 0.0
    model.model.eval()
    with torch.no_grad():
        for i in range(0, n, batch):
            w = windows[i:i + batch]
            logits = model.model(input_ids=w[:, :-1]).logits.double()
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1),
                                                             reduction="sum"))
    model.model.train(was_training)
    return total / math.log(2) / (n * c)


class EarlyStopping:
    """stop(step) for CausalLM.fit: scores the validation bytes every `every` steps and at `last_step`,
    keeps a copy of the best weights (the earliest of equal scores), and says stop after `patience`
    scores without improvement. `restore()` puts the best weights back."""

    def __init__(self, model, validation: bytes, every: int, patience: int, last_step: int):
        if every < 1 or patience < 1:
            raise ValueError(f"eval_every and patience must be >= 1, got {every} and {patience}")
        self.model, self.validation, self.every, self.patience, self.last_step = model, validation, every, patience, last_step
        self.best_bits, self.best_step, self.best_state, self.since, self.scores = math.inf, 0, None, 0, []

    def __call__(self, step: int) -> bool:
        if (step + 1) % self.every and step != self.last_step:
            return False
        bits = validation_bits(self.model, self.validation)
        self.scores.append((step + 1, bits))
        if bits < self.best_bits:
            self.best_bits, self.best_step, self.since = bits, step + 1, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.model.state_dict().items()}
        else:
            self.since += 1
        return self.since >= self.patience

    def restore(self) -> None:
        if self.best_state is not None:
            self.model.model.load_state_dict(self.best_state)


def train_early_stopped(recipe: Recipe, prefix: bytes, seed: int):
    """train(prefix, seed) -> a CausalLM fitted on the prefix minus its validation split, stopped
    early and restored to its best validation score.

    A deterministic function of (recipe, prefix bytes, seed): on one thread the same arguments give
    bitwise the same weights, so a decoder holding the prefix can retrain the model that coded the
    next block. The model carries its record: train_steps, step_ceiling, best_step, stopped_early,
    validation_bits_per_byte, fit_bytes, validation_bytes."""
    from copystudy import models

    model = models.build(recipe.model, seed=seed)
    fit, val = validation_split(bytes(prefix), recipe.validation_fraction, model.context + 1)
    ceiling = training_steps(len(fit), recipe.epochs, recipe.batch_size, model.context, recipe.min_steps,
                             recipe.max_steps)
    stopper = EarlyStopping(model, val, recipe.eval_every, recipe.patience, ceiling - 1)
    losses = model.fit(fit, steps=ceiling, batch_size=recipe.batch_size, lr=recipe.lr, seed=seed,
                       progress_bar=False, stop=stopper)
    stopper.restore()
    model.train_steps, model.step_ceiling, model.best_step = len(losses), ceiling, stopper.best_step
    model.stopped_early = len(losses) < ceiling
    model.validation_bits_per_byte = stopper.best_bits
    model.fit_bytes, model.validation_bytes = len(fit), len(val)
    return model


def prefix_trainer(recipe: Recipe) -> Callable[[bytes, int], object]:
    """The prequential learner as a picklable callable train(prefix, seed)."""
    return partial(train_early_stopped, recipe)


def train_fixed_steps(spec: dict, batch_size: int, lr: float, steps: int, data: bytes, seed: int):
    """train(data, seed) -> a CausalLM trained from scratch for exactly `steps` steps on all of `data`:
    the memorisation models, where a model with a work and one without it must train alike."""
    from copystudy import models

    model = models.build(spec, seed=seed)
    model.fit(bytes(data), steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress_bar=False)
    model.train_steps, model.fit_bytes = steps, len(data)
    return model


# ---- the two-part code at the best precision --------------------------------------------------------
SCALE_BITS = 32  # one float32 scale per quantised tensor


def quantized_tensor(t, bits: int):
    """t rounded to the 2^bits - 1 symmetric levels k x s, |k| <= 2^(bits-1) - 1, s = max|t| / that."""
    import torch

    if bits < 2:
        raise ValueError(f"quantisation needs at least 2 bits a weight, got {bits}")
    top = float(t.abs().max()) if t.numel() else 0.0
    if top == 0.0:
        return t.clone()
    scale = top / (2 ** (bits - 1) - 1)
    return torch.round(t / scale) * scale


def quantize(model, bits: int):
    """A copy of a CausalLM with every parameter tensor quantised to `bits` bits (symmetric, per tensor)."""
    import torch

    q = copy.deepcopy(model)
    with torch.no_grad():
        for p in q.model.parameters():
            p.copy_(quantized_tensor(p, bits))
    return q


def n_tensors(model) -> int:
    """Parameter tensors of a CausalLM (tied ones once): each quantised tensor sends one scale."""
    return sum(1 for _ in model.model.parameters())


def two_part_by_precision(model, data: bytes, precisions=(16, 8, 4), data_bits: float | None = None) -> pd.DataFrame:
    """The two-part code of `data` with the weights sent at each precision b: weight bits n_params x b,
    one 32-bit scale per tensor, and the data coded by the quantised model. A first row gives the
    unquantised float32 model at 32 bits a weight (data_bits, when known, saves coding it again)."""
    full = float(byte_bits(model, data).sum()) if data_bits is None else float(data_bits)
    rows = [{"bits_per_param": 32, "quantized": False, "weight_bits": model_bits(model.n_params, 32),
             "scale_bits": 0.0, "data_bits": full}]
    for b in precisions:
        q = quantize(model, b)
        rows.append({"bits_per_param": int(b), "quantized": True, "weight_bits": model_bits(model.n_params, b),
                     "scale_bits": float(SCALE_BITS * n_tensors(model)), "data_bits": float(byte_bits(q, data).sum())})
    df = pd.DataFrame(rows)
    df["model_bits"] = df["weight_bits"] + df["scale_bits"]
    df["total_bits"] = df["model_bits"] + df["data_bits"]
    df["total_bits_per_byte"] = df["total_bits"] / max(1, len(data))
    return df


# ---- code lengths as the training set grows ---------------------------------------------------------
def prefix_result(data: bytes, boundaries: list[int], train, final, heldout: bytes | None, stream_seed: int | None,
                  job) -> tuple[dict, object, object]:
    """One task: the model of data[:size] for one seed, trained by train(prefix, seed); its training
    record, the bits of its prefix (the two-part code's data part), of the next block (its part of
    the prequential code) and per byte of the fixed `heldout` text (a learning curve that does not
    depend on which text falls in which block); and final(model, data_bits) for the model of the
    whole text; for the seed `stream_seed`, the next block range-coded with this model (its part of
    the prequential code as a real compressed stream, `online_coding`)."""
    seed, size = job
    model = train(bytes(data[:size]), seed)
    row = {"seed": seed, "train_bytes": size, "n_params": model.n_params,
           "data_bits": float(byte_bits(model, data[:size]).sum()),
           "heldout_bits_per_byte": float(byte_bits(model, heldout).mean()) if heldout else None}
    for key in ("fit_bytes", "train_steps", "step_ceiling", "best_step", "stopped_early", "validation_bits_per_byte"):
        row[key] = getattr(model, key, None)
    k = boundaries.index(size)
    if k + 1 < len(boundaries):
        end = boundaries[k + 1]
        row.update(next_block_bytes=end - size, next_block_bits=block_bits(model, data, size, end))
    words = None
    if seed == stream_seed and k + 1 < len(boundaries):
        words = online_coding.encode_block(model, online_coding.lead_bytes(model, data[:size]), data[size:end])[0]
    extra = final(model, row["data_bits"]) if final is not None and size == len(data) else None
    return row, extra, words


def code_lengths_by_size(data: bytes, boundaries: list[int], train: Callable[[bytes, int], object], seeds=(0,),
                         bits_per_param: int = 16, final: Callable | None = None, heldout: bytes | None = None,
                         stream_seed: int | None = None):
    """Uniform, two-part and prequential code lengths of data[:t] for every boundary t > 0 and seed.

    One model per (seed, prefix), all in one map_tasks call: it gives the two-part code of its prefix
    (its data bits plus bits_per_param a weight) and codes the next block of that seed's prequential
    code; with `heldout`, every model also codes that fixed text. Returns (one row per seed and prefix,
    {seed: final(model of the whole text, its data bits)}, and for `stream_seed` the range-coded words
    of every block from the second on, else None).
    """
    _check_boundaries(boundaries, len(data))
    jobs = [(seed, size) for seed in seeds for size in boundaries[1:]]
    done = parallel.map_tasks(partial(prefix_result, bytes(data), list(boundaries), train, final, heldout, stream_seed),
                              jobs,
                              desc="prequential models", cost=lambda job: job[1])
    rows, finals = [], {}
    stream = [words for row, _, words in done if row["seed"] == stream_seed and words is not None] or None
    for seed in seeds:
        mine = [(row, extra) for row, extra, _ in done if row["seed"] == seed]
        blocks = [uniform_bits(boundaries[1])] + [row["next_block_bits"] for row, _ in mine[:-1]]
        for (row, extra), total in zip(mine, itertools.accumulate(blocks)):
            row["prequential_bits"] = total  # block 0 uniform, block k coded by the model of data[:b_k]
            rows.append(row)
            if extra is not None:
                finals[seed] = extra
    df = pd.DataFrame(rows)
    df["uniform_bits"] = df["train_bytes"].map(uniform_bits)
    df["model_bits"] = df["n_params"].map(lambda n: model_bits(n, bits_per_param))
    df["two_part_bits"] = df["model_bits"] + df["data_bits"]
    for name in ("uniform", "two_part", "prequential", "data"):
        df[f"{name}_bits_per_byte"] = df[f"{name}_bits"] / df["train_bytes"]
    df["next_block_bits_per_byte"] = df["next_block_bits"] / df["next_block_bytes"]
    return df, finals, stream


def block_trend(bits_per_byte) -> dict:
    """Does the per-block rate fall as the prefix grows: the Spearman rank correlation of the rates
    with the block index (-1: falls at every block) and the number of blocks dearer than the one
    before."""
    rates = [float(r) for r in bits_per_byte]
    return {"spearman": trend(range(len(rates)), rates),
            "increases": int(sum(b > a for a, b in zip(rates, rates[1:])))}


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


def swapped(corpus: dict[str, bytes], work: str, substitute: bytes) -> dict[str, bytes]:
    """The corpus with every copy of `work` replaced, in its place, by `substitute` of the same length:
    the without-model's training set, of exactly as many bytes, laid out alike."""
    if work not in corpus:
        raise ValueError(f"{work!r} is not in the corpus")
    if len(substitute) != len(corpus[work]):
        raise ValueError(f"the substitute for {work!r} has {len(substitute)} bytes, the work {len(corpus[work])}")
    return {k: (bytes(substitute) if k == work or k.startswith(f"{work}#copy") else v) for k, v in corpus.items()}


def substitutes(works: dict[str, bytes], pool: dict[str, bytes]) -> dict[str, tuple[str, bytes]]:
    """For every work, a cut of exactly its length from one document of `pool` (held-out text): the
    longest documents first, several cuts from one document when it is long enough, no two cuts
    overlapping. Returns {work: (label "document[start:end]", bytes)}."""
    order = sorted(pool, key=lambda k: (-len(pool[k]), k))
    used = {k: 0 for k in order}
    out = {}
    for work, text in works.items():
        n = len(text)
        host = next((k for k in order if len(pool[k]) - used[k] >= n), None)
        if host is None:
            raise ValueError(f"no held-out document has {n} unused bytes left to stand in for {work!r}")
        start = used[host]
        out[work] = (f"{host}[{start}:{start + n}]", bytes(pool[host][start:start + n]))
        used[host] += n
    return out


def memorization_runs(corpus: dict[str, bytes], works: dict[str, bytes], stand_ins: dict[str, bytes],
                      train: Callable[[bytes, int], object], controls: dict[str, bytes] | None = None, seeds=(0,),
                      join: Callable[[dict], bytes] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The swap design of memorised bits, all models in one map_tasks call.

    For every seed, train(data, seed) gives one with-model on `corpus` and, for each work, one
    without-model on swapped(corpus, work, stand_ins[work]): the same number of bytes, the same
    windows, the same steps; only the work differs. Returns (one row per model: seed, swapped work,
    training bytes and steps; one row per difference: seed, text, kind, swap, bits_with, bits_without,
    memorized_bits). A work's difference is under its own without-model; a control (held-out text
    no model saw) gets one difference per without-model: training noise of the same design."""
    join = join or (lambda docs: b"".join(docs[k] for k in sorted(docs)))
    controls = controls or {}
    texts = {**works, **controls}
    data = {None: join(corpus), **{w: join(swapped(corpus, w, stand_ins[w])) for w in works}}
    jobs = [(seed, which) for seed in seeds for which in data]
    done = parallel.map_tasks(partial(_text_bits, train, data, texts), jobs, desc="memorisation models",
                              cost=lambda job: len(data[job[1]]))
    result = dict(zip(jobs, done))
    models = pd.DataFrame([{"seed": seed, "swapped": which, "train_bytes": result[seed, which]["train_bytes"],
                            "train_steps": result[seed, which]["train_steps"]} for seed, which in jobs])
    rows = []
    for seed in seeds:
        with_bits = result[seed, None]["bits"]
        for w in works:
            without_bits = result[seed, w]["bits"]
            for name in [w, *controls]:
                rows.append({"seed": seed, "text": name, "kind": "training work" if name in works else "held-out control",
                             "swap": w, "bits_with": with_bits[name], "bits_without": without_bits[name]})
    diffs = pd.DataFrame(rows)
    diffs["memorized_bits"] = diffs["bits_without"] - diffs["bits_with"]
    return models, diffs


def _text_bits(train, data: dict, texts: dict, job) -> dict:
    """One model (a task): trained with `seed` on data[which]; its training size and steps and the bits
    of every text."""
    seed, which = job
    model = train(data[which], seed)
    return {"train_bytes": len(data[which]), "train_steps": getattr(model, "train_steps", None),
            "bits": {name: float(byte_bits(model, text).sum()) for name, text in texts.items()}}


def memorization_table(diffs: pd.DataFrame, sizes: dict[str, int], copies: dict[str, int] | None = None,
                       level: float = 0.95) -> pd.DataFrame:
    """Memorised bits of each work and control, mean over seeds with a t interval over seeds (a
    control's differences are first averaged over the without-models of one seed)."""
    from copystudy.common.intervals import mean_ci

    copies = copies or {}
    rows = []
    order = list(dict.fromkeys(diffs.sort_values("kind", kind="stable", ascending=False)["text"]))  # works, then controls
    for name, g in sorted(diffs.groupby("text", sort=False), key=lambda item: order.index(item[0])):
        per_seed = g.groupby("seed")[["memorized_bits", "bits_with", "bits_without"]].mean()
        mean, lo, hi = mean_ci(per_seed["memorized_bits"], level)
        rows.append({"work": name, "kind": g["kind"].iloc[0], "bytes": sizes[name], "copies": copies.get(name, 0),
                     "n_seeds": len(per_seed), "bits_with": float(per_seed["bits_with"].mean()),
                     "bits_without": float(per_seed["bits_without"].mean()), "memorized_bits": mean,
                     "memorized_bits_low": lo, "memorized_bits_high": hi})
    table = pd.DataFrame(rows)
    for col in ("bits_with", "bits_without", "memorized_bits", "memorized_bits_low", "memorized_bits_high"):
        table[col.replace("bits", "bits_per_byte", 1)] = table[col] / table["bytes"]
    return table


def shuffled_join(docs: dict[str, bytes], seed: int = 0) -> bytes:
    """Documents concatenated in a seeded random order, so that the blocks of a prequential code are
    alike (not, say, all the topics starting with 'a' first)."""
    names = sorted(docs)
    return b"".join(docs[names[i]] for i in np.random.default_rng(seed).permutation(len(names)))
