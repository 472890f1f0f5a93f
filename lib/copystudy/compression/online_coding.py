"""Coding with a model that learns as it codes: the prequential code and the adaptive coder as real streams.

The data is cut into blocks. Block k is range-coded with a model built from the bytes before it
(block 0 with the learner's start model, or with the uniform code when there is none). The decoder
is never sent a model: it rebuilds model k from the bytes it has already decoded, with the same
learner, and decodes block k with it. The round trip is exact if and only if every rebuilt model gives
bitwise the probabilities the encoder used; training here is deterministic (one thread, seeded
batches, a fresh optimiser per call), so it does, and `decode` checks it by comparing the bytes.

Two learners make two compressors out of one training run:
- `PrequentialLearner` (Blier & Ollivier 2018): model k is trained from scratch on all the bytes
  before block k. The code length is the prequential description length of the data, sent without
  ever sending weights -- the first paper's claim that a training run is a compressor, made literal.
- `AdaptiveLearner` (NNCP, Bellard 2019): one model, trained a few steps further on the text it has
  just coded (from a start model both sides hold), so it adapts to the document it is coding.

Each block is one stream; up to `context` bytes before the block condition the model, as in
`description_length.block_bits`, so the coded size tracks the ideal prequential code length.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import constriction
import numpy as np
from threadpoolctl import threadpool_limits

from copystudy.compression import coding, predictors

Learner = Callable  # learner(k, prefix: bytes, previous model or None) -> the model for block k, or None


def lead_bytes(model, prefix: bytes) -> bytes:
    """The bytes before a block that condition its first predictions (up to the model's context)."""
    n = min(len(prefix), int(getattr(model, "context", 0) or 0))
    return bytes(prefix[len(prefix) - n:]) if n else b""


def _block_probs(model, lead: bytes):
    """A generator of next-byte probability rows for one stream after `lead`: send() each byte to get
    the next row. A None model is the uniform code."""
    if model is None:
        while True:
            yield predictors.UNIFORM
    predictor = predictors.predictor_for(model)
    probs = predictor.start(1)
    for b in lead:
        probs = predictor.update(np.array([b]))
    while True:
        symbol = yield probs[0]
        probs = predictor.update(np.array([symbol]))


def encode_block(model, lead: bytes, block: bytes) -> tuple[np.ndarray, float]:
    """Range-code `block` with the model after `lead` -> (words, ideal bits)."""
    if not block:
        return np.zeros(0, np.uint32), 0.0
    with threadpool_limits(limits=1, user_api="blas"):
        rows = _block_probs(model, lead)
        table = [next(rows)]
        for b in block[:-1]:
            table.append(rows.send(b))
    table = np.stack(table)
    return coding.encode(block, table), coding.ideal_bits(block, table)


def decode_block(model, lead: bytes, words: np.ndarray, n: int) -> bytes:
    """Invert `encode_block`: n bytes decoded one at a time, each fed back to the model."""
    if n == 0:
        return b""
    decoder = constriction.stream.queue.RangeDecoder(np.asarray(words, dtype=np.uint32))
    out = bytearray()
    with threadpool_limits(limits=1, user_api="blas"):
        rows = _block_probs(model, lead)
        row = next(rows)
        while True:
            try:
                symbol = int(decoder.decode(coding.FAMILY, row[None].astype(np.float64))[0])
            except AssertionError as err:  # constriction's word for "these are not the encoder's probabilities"
                raise DecodeError(f"byte {len(out)} of the block does not decode: {err}") from None
            out.append(symbol)
            if len(out) == n:
                return bytes(out)
            row = rows.send(symbol)


class DecodeError(ValueError):
    """The words do not decode under the rebuilt model: it is not the model the encoder used."""


def check_boundaries(boundaries: list[int], n_bytes: int) -> None:
    if len(boundaries) < 1 or boundaries[0] != 0 or boundaries[-1] != n_bytes:
        raise ValueError(f"block boundaries must run from 0 to {n_bytes}, got {boundaries}")
    if any(b <= a for a, b in zip(boundaries, boundaries[1:])):
        raise ValueError(f"block boundaries must increase strictly, got {boundaries}")


def encode(data: bytes, boundaries: list[int], learner: Learner, models: list | None = None,
           progress=None) -> coding.Coded:
    """Code data block by block, block k with learner(k, data[:b_k], model k-1): one stream per block
    (`coding.Coded`, with each block's ideal bits in bits_per_stream).

    models: the block models when they were already built (e.g. trained side by side as tasks); they
    must be what the learner would build, or the decoder will fail to reproduce the data."""
    data = bytes(data)
    check_boundaries(boundaries, len(data))
    streams, bits, model = [], [], None
    blocks = list(zip(boundaries, boundaries[1:]))
    for k, (a, b) in enumerate(blocks if progress is None else progress(blocks)):
        model = models[k] if models is not None else learner(k, data[:a], model)
        words, block_bits = encode_block(model, lead_bytes(model, data[:a]), data[a:b])
        streams.append(words)
        bits.append(block_bits)
    return coding.Coded(streams, [b - a for a, b in blocks], float(sum(bits)), bits_per_stream=bits)


def decode(code: coding.Coded, learner: Learner, progress=None) -> bytes:
    """The bytes of `encode`'s output, rebuilding every block's model from the bytes decoded so far."""
    out, model = b"", None
    items = list(enumerate(zip(code.streams, code.lengths)))
    for k, (words, n) in (items if progress is None else progress(items)):
        model = learner(k, out, model)
        out += decode_block(model, lead_bytes(model, out), words, n)
    return out


# ---- learners -----------------------------------------------------------------------------------------
@dataclass
class PrequentialLearner:
    """Model k = train(all bytes before block k, seed), from scratch or, with `warm`, starting from model
    k-1 (train(prefix, seed, init=previous)); block 0 is sent uniformly.

    train must be deterministic: the decoder calls it again on the bytes it decoded (and, warm, on the
    model it rebuilt for the block before)."""

    train: Callable
    seed: int = 0
    warm: bool = False

    def __call__(self, k: int, prefix: bytes, previous=None):
        if k == 0 or not prefix:
            return None
        if self.warm:
            return self.train(bytes(prefix), self.seed, init=previous)
        return self.train(bytes(prefix), self.seed)


@dataclass
class AdaptiveLearner:
    """One model that keeps learning: block 0 is coded by (a copy of) `start`; after each block, the
    model trains `steps` more steps on the last `window` bytes coded (a fresh AdamW and schedule each
    time, seeded by the block number), so it adapts to the text it is coding."""

    start: object
    steps: int = 20
    window: int = 16384
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0

    def __call__(self, k: int, prefix: bytes, previous=None):
        if k == 0 or previous is None:
            return copy.deepcopy(self.start)
        recent = bytes(prefix[-self.window:])
        if len(recent) > 1 and self.steps > 0:
            previous.fit(recent, steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                         seed=self.seed * 100003 + k, progress_bar=False)
        return previous


def equal_blocks(n_bytes: int, block: int) -> list[int]:
    """Boundaries of consecutive blocks of `block` bytes (the last may be shorter); [0] when empty."""
    if block < 1:
        raise ValueError(f"block must be a positive number of bytes, got {block}")
    return list(range(0, n_bytes, block)) + [n_bytes] if n_bytes else [0]


def roundtrip(data: bytes, boundaries: list[int], learner_factory: Callable[[], Learner], models=None,
              progress=None) -> dict:
    """Encode with one learner, decode with a fresh one built the same way, compare: the coded and
    ideal bits, the bits of each block, and whether the bytes came back exactly."""
    code = encode(data, boundaries, learner_factory(), models=models, progress=progress)
    try:
        decoded = decode(code, learner_factory(), progress=progress)
    except DecodeError:
        decoded = None
    return {"n_bytes": code.n_symbols, "coded_bits": code.coded_bits, "ideal_bits": code.ideal_bits,
            "block_bits": list(code.bits_per_stream), "roundtrip_exact": decoded == bytes(data)}
