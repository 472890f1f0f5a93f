"""How many bits of the training set do the weights hold: code lengths of text under trained models.

Every quantity here is a code length in bits, the length of a message from which a receiver can
rebuild the text exactly:

- uniform code: 8 bits a byte, the cost of sending the text with no model at all;
- two-part code: first the weights, then the text coded by the model, sum of -log2 p(b_i | b_<i)
  (`quantization.two_part_by_precision` sends the weights at the precision that makes it shortest);
- prequential (online) code (Blier & Ollivier 2018): the text is cut into blocks whose boundaries
  double; the first block is sent uniformly, every later block is coded by a model trained (same seed,
  same recipe) on all blocks before it. The receiver can retrain the same models itself, so no weights
  are sent (the learner: `early_stopping.train_early_stopped`).

The generalisation gap is in `generalization`, memorised bits per work in
`copystudy.memorization.memorized_bits`. Models are anything with `.bits(data) -> np.ndarray` (bits per
byte), `.n_params` and `.context` (copystudy.models.causal_lm.CausalLM); training is a callable
`train(data: bytes, seed: int) -> model`, so the bookkeeping can be tested with fake models.
"""

from __future__ import annotations

import itertools
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


# ---- code lengths as the training set grows ---------------------------------------------------------
def prefix_result(data: bytes, boundaries: list[int], train, final, heldout: bytes | None, stream_seed: int | None,
                  job) -> tuple[dict, object, object]:
    """One task: the model of data[:size] for one seed, trained from scratch by train(prefix, seed);
    see `prefix_row`."""
    seed, size = job
    return prefix_row(data, boundaries, train(bytes(data[:size]), seed), seed, size, final, heldout, stream_seed)


def prefix_chain(data: bytes, boundaries: list[int], train, final, heldout: bytes | None, stream_seed: int | None,
                 seed: int) -> list[tuple[dict, object, object]]:
    """One task: every prefix model of one seed in turn, each warm-started from the one before
    (train(prefix, seed, init=previous)), as a decoder would rebuild them; `prefix_row` of each. For
    `stream_seed` the same task then decodes the coded stream, rebuilding the chain from the decoded
    bytes alone (`stream_decodes_exactly`), and every row of the seed says whether it came back."""
    out, model = [], None
    for size in boundaries[1:]:
        model = train(bytes(data[:size]), seed, init=model)
        out.append(prefix_row(data, boundaries, model, seed, size, final, heldout, stream_seed))
    if seed == stream_seed:
        exact = stream_decodes_exactly(data, boundaries, [w for _, _, w in out if w is not None], train, seed)
        for row, _, _ in out:
            row["stream_roundtrip_exact"] = exact
    return out


def stream_decodes_exactly(data: bytes, boundaries: list[int], words: list, train, seed: int) -> bool:
    """The prequential stream's decoder: block 0's uniform code and the range-coded words of every later
    block, decoded with models it retrains (warm, from the model before) from the bytes it has decoded;
    True if the data comes back."""
    from copystudy.compression import coding

    first = online_coding.encode_block(None, b"", data[:boundaries[1]])[0]
    code = coding.Coded([first, *words], [b - a for a, b in zip(boundaries, boundaries[1:])], 0.0)
    try:
        decoded = online_coding.decode(code, online_coding.PrequentialLearner(train, seed, warm=True))
    except online_coding.DecodeError:
        return False
    return decoded == bytes(data)


def prefix_row(data: bytes, boundaries: list[int], model, seed: int, size: int, final, heldout: bytes | None,
               stream_seed: int | None) -> tuple[dict, object, object]:
    """The model of data[:size]: its training record, the bits of its prefix (the two-part code's data
    part), of the next block (its part of the prequential code) and per byte of the fixed `heldout`
    text (a learning curve that does not depend on which text falls in which block); final(model,
    data_bits, seed) for the model of the whole text; for the seed `stream_seed`, the next block range-coded
    with this model (its part of the prequential code as a real compressed stream, `online_coding`)."""
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
    extra = final(model, row["data_bits"], seed) if final is not None and size == len(data) else None
    return row, extra, words


def code_lengths_by_size(data: bytes, boundaries: list[int], train: Callable[[bytes, int], object], seeds=(0,),
                         bits_per_param: int = 16, final: Callable | None = None, heldout: bytes | None = None,
                         stream_seed: int | None = None, warm: bool = False):
    """Uniform, two-part and prequential code lengths of data[:t] for every boundary t > 0 and seed.

    One model per (seed, prefix), all in one map_tasks call (`warm`: one task per seed, each prefix
    model warm-started from the one before, `prefix_chain`): it gives the two-part code of its prefix
    (its data bits plus bits_per_param a weight) and codes the next block of that seed's prequential
    code; with `heldout`, every model also codes that fixed text. Returns (one row per seed and prefix,
    {seed: final(model of the whole text, its data bits, seed)}, and for `stream_seed` the range-coded words
    of every block from the second on, else None).
    """
    _check_boundaries(boundaries, len(data))
    args = (bytes(data), list(boundaries), train, final, heldout, stream_seed)
    if warm:
        chains = parallel.map_tasks(partial(prefix_chain, *args), list(seeds), desc="prequential models, one chain a seed",
                                    cost=lambda seed: 2 if seed == stream_seed else 1)  # it also decodes
        done = [item for chain in chains for item in chain]
    else:
        jobs = [(seed, size) for seed in seeds for size in boundaries[1:]]
        done = parallel.map_tasks(partial(prefix_result, *args), jobs, desc="prequential models", cost=lambda job: job[1])
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


def shuffled_join(docs: dict[str, bytes], seed: int = 0) -> bytes:
    """Documents concatenated in a seeded random order, so that the blocks of a prequential code are
    alike (not, say, all the topics starting with 'a' first); `generalization.shuffled_join`."""
    from copystudy.compression.generalization import shuffled_join as join

    return join(docs, seed)
