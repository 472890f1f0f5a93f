"""Arithmetic (range) coding of bytes with a probability model: a language model as a compressor.

The coder is constriction's range coder (`stream.queue.RangeEncoder/RangeDecoder`) with a
`Categorical(perfect=False)` model per byte. Byte b_i costs about -log2 p(b_i | b_<i) bits, so the
coded size sits within a fraction of a percent of the ideal code length, and decoding gives the
input back exactly -- provided the decoder sees bit-identical probabilities to the encoder.

That proviso is the trap of LM compression. Here encoder and decoder get their probabilities from one
and the same code path: a *predictor* that is fed the bytes of a batch of streams one position at a
time (`start`, then `update`) and answers with next-byte probabilities for every stream. The encoder
feeds it the known bytes, the decoder the bytes it has just decoded; both run the same operations on
arrays of the same shapes, so the probabilities are bitwise equal by construction.

The predictors are in `copystudy.compression.predictors` (a byte-level GPT-2's float32 numpy re-run, any causal
LM's own forward pass, fixed tables for tests); this module codes with whichever it is given.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import constriction
import numpy as np
from threadpoolctl import threadpool_limits

WORD_BITS = 32  # constriction's range coder emits 32-bit words
PRECISION = 24  # constriction's categorical models: probabilities are integers out of 2**24
FAMILY = constriction.stream.model.Categorical(perfect=False)  # deterministic, fast quantisation


# ---- fixed probability tables -------------------------------------------------------------------
def _symbols(data) -> np.ndarray:
    """Symbols of a stream: the bytes of a bytes object, or an array of token ids as it is."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(data), dtype=np.uint8).astype(np.int32)
    return np.asarray(data, dtype=np.int32).reshape(-1)


def _check_table(probs: np.ndarray, n: int) -> np.ndarray:
    probs = np.ascontiguousarray(probs, dtype=np.float64)
    if probs.shape != (n, 256):
        raise ValueError(f"probs must have shape ({n}, 256) for {n} bytes, got {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0) or np.any(probs.sum(1) <= 0):
        raise ValueError("probs must be finite, non-negative, with a positive sum in every row")
    return probs


def encode(data: bytes, probs: np.ndarray) -> np.ndarray:
    """Range-code `data` with one probability row per byte (float64 [len(data), 256]) -> uint32 words."""
    symbols = _symbols(data)
    encoder = constriction.stream.queue.RangeEncoder()
    if len(symbols):
        encoder.encode(symbols, FAMILY, _check_table(probs, len(symbols)))
    return encoder.get_compressed()


def decode(compressed: np.ndarray, probs: np.ndarray) -> bytes:
    """Invert `encode`: len(probs) bytes decoded with the same probability rows."""
    probs = _check_table(probs, len(probs))
    decoder = constriction.stream.queue.RangeDecoder(np.asarray(compressed, dtype=np.uint32))
    out = decoder.decode(FAMILY, probs) if len(probs) else np.zeros(0, np.int32)
    return bytes(np.asarray(out, dtype=np.uint8))


def ideal_bits(data: bytes, probs: np.ndarray) -> float:
    """Ideal code length sum_i -log2 p(b_i) in bits under the model's own probabilities (rows renormalised)."""
    symbols = _symbols(data)
    if not len(symbols):
        return 0.0
    probs = _check_table(probs, len(symbols))
    p = probs[np.arange(len(symbols)), symbols] / probs.sum(1)
    return float(-np.log2(p).sum())


def quantised_pmf(probs: np.ndarray) -> np.ndarray:
    """The integer probabilities (out of 2**PRECISION) that constriction's range coder gives each row.

    constriction 0.5's `Categorical(perfect=False)` (`LazyContiguousCategoricalEntropyModel::
    from_floating_point_probabilities_fast`) puts the left end of symbol s at
    floor(scale * (p_0 + ... + p_{s-1})) + s, summing from the left in float64, with
    scale = (2**24 - n) / (p_0 + ... + p_{n-1}), and the right end of the last symbol at 2**24. The same
    float64 operations in the same order here give the same integers (`np.cumsum` adds from the left);
    a test reads them back from constriction's decoder. Every symbol gets at least 1."""
    probs = np.asarray(probs, dtype=np.float64)
    n = probs.shape[-1]
    cum = np.cumsum(probs, axis=-1)
    scale = float(2**PRECISION - n) / cum[..., -1:]
    left = np.floor(np.concatenate([np.zeros_like(cum[..., :1]), cum[..., :-1]], axis=-1) * scale) + np.arange(n)
    right = np.concatenate([left[..., 1:], np.full_like(left[..., :1], 2.0**PRECISION)], axis=-1)
    return (right - left).astype(np.int64)


def quantised_probability(probs: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """`quantised_pmf(probs)[i, symbols[i]]` for every row i, without the whole table: the integer
    probability (out of 2**PRECISION) that the coder gives the symbol it codes."""
    probs, symbols = np.asarray(probs, dtype=np.float64), np.asarray(symbols, dtype=np.int64)
    n, rows = probs.shape[-1], np.arange(len(symbols))
    cum = np.cumsum(probs, axis=-1)
    scale = float(2**PRECISION - n) / cum[:, -1]
    left = np.floor(np.where(symbols > 0, cum[rows, symbols - 1], 0.0) * scale) + symbols
    right = np.where(symbols == n - 1, 2.0**PRECISION, np.floor(cum[rows, symbols] * scale) + symbols + 1)
    return (right - left).astype(np.int64)


def quantised_bits(data: bytes, probs: np.ndarray) -> float:
    """Ideal code length under the coder's own quantised probabilities (`quantised_pmf`): what the range
    coder can at best achieve with these rows."""
    symbols = _symbols(data)
    if not len(symbols):
        return 0.0
    q = quantised_probability(_check_table(probs, len(symbols)), symbols)
    return float(PRECISION * len(symbols) - np.log2(q).sum())


# ---- coding many streams in lock step ----------------------------------------------------------------
@dataclass
class Coded:
    """Range-coded streams (one per chunk) with their lengths in symbols and ideal code lengths: under
    the model's probabilities (ideal_bits) and under the coder's quantised ones (quantised_bits)."""

    streams: list[np.ndarray]
    lengths: list[int]
    ideal_bits: float
    chunk_size: int | None = None
    bits_per_stream: list[float] = field(default_factory=list)
    quantised_bits: float | None = None

    @property
    def n_symbols(self) -> int:
        return int(sum(self.lengths))

    @property
    def coded_bits(self) -> int:
        return WORD_BITS * int(sum(len(s) for s in self.streams))

    @property
    def coded_bytes(self) -> int:
        return self.coded_bits // 8

    @property
    def overhead_pct(self) -> float:
        """Coded bits over the model's ideal sum of -log2 p, in percent (word padding and quantisation)."""
        return 100.0 * (self.coded_bits / self.ideal_bits - 1.0) if self.ideal_bits else 0.0

    @property
    def coder_overhead_pct(self) -> float | None:
        """Coded bits over the ideal under the coder's own quantised probabilities, in percent: what
        the range coder adds to the best it could do with them (word padding; never far below 0)."""
        if self.quantised_bits is None:
            return None
        return 100.0 * (self.coded_bits / self.quantised_bits - 1.0) if self.quantised_bits else 0.0


def chunks(data: bytes, chunk_size: int | None, utf8: bool = False) -> list[bytes]:
    """Consecutive chunks of chunk_size bytes (the last may be shorter); None: one chunk.

    utf8=True moves each cut back (by at most 3 bytes) so that no UTF-8 character is split, as a
    model with a tokenizer needs whole characters."""
    if chunk_size is None:
        return [bytes(data)]
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
    if not utf8:
        return [bytes(data[i:i + chunk_size]) for i in range(0, len(data), chunk_size)]

    def inside(j):  # data[j] continues the character before it
        return 0 < j < len(data) and (data[j] & 0xC0) == 0x80

    out, i = [], 0
    while i < len(data):
        end = min(i + chunk_size, len(data))
        j = end
        while inside(j) and j > max(i, end - 3):
            j -= 1  # cut before the character that data[j] belongs to
        if j == i or inside(j):  # the chunk is shorter than the character: take it whole
            j = end
            while inside(j) and j < end + 3:
                j += 1
        out.append(bytes(data[i:j]))
        i = j
    return out


def _lock_step(predictor, lengths: list[int], code_column, progress=None) -> None:
    """Drive the predictor over all streams together; code_column(t, probs) -> bytes at t [B]."""
    steps = max(lengths, default=0)
    if steps == 0:
        return
    # One BLAS thread: the per-byte matrices are tiny, and threaded BLAS on a busy machine was 15x slower.
    with threadpool_limits(limits=1, user_api="blas"):
        probs = predictor.start(len(lengths))
        positions = range(steps) if progress is None else progress(range(steps))
        for t in positions:
            column = code_column(t, probs)
            if t + 1 < steps:
                probs = predictor.update(column)


def encode_streams(predictor, streams: list, progress=None, block_values: int = 2**22) -> Coded:
    """Range-code every stream (bytes, or arrays of token ids) with the predictor's probabilities;
    all streams advance together.

    The predictor's rows are kept for a block of positions (at most `block_values` probabilities,
    32 MB) and then coded with one call per stream: the range coder is a queue, so coding a block at
    a time writes the same words as coding a symbol at a time."""
    arrays = [_symbols(s) for s in streams]
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    steps = int(lengths.max(initial=0))
    padded = np.zeros((len(arrays), steps), dtype=np.int32)
    for b, a in enumerate(arrays):
        padded[b, :len(a)] = a
    encoders = [constriction.stream.queue.RangeEncoder() for _ in arrays]
    bits, coder_bits = np.zeros(len(arrays)), np.zeros(len(arrays))
    exact = getattr(predictor, "exact_pmf", False)  # rows of integer frequencies: the model is the coder's pmf
    rows: list[np.ndarray] = []  # the probability rows [B, V] of the positions not yet coded
    block = None

    def flush(end):
        first = end - len(rows)
        table = np.stack(rows, axis=1)  # [B, positions, V]
        for b, n in enumerate(lengths):
            if n > first:
                last = min(end, n)
                symbols, probs = padded[b, first:last], table[b, :last - first]
                encoders[b].encode(symbols, FAMILY, probs)
                coder_bits[b] += PRECISION * len(symbols) - np.log2(quantised_probability(probs, symbols)).sum()
        rows.clear()

    def code_column(t, probs):
        nonlocal block
        block = block or max(1, block_values // probs.size)
        if not exact:
            active, symbols = lengths > t, padded[:, t]
            picked = probs[np.arange(len(symbols)), symbols] / probs.sum(1)
            bits[active] -= np.log2(picked[active])
        rows.append(probs)
        if len(rows) == block or t + 1 == steps:
            flush(t + 1)
        return padded[:, t]

    _lock_step(predictor, lengths.tolist(), code_column, progress)
    bits = coder_bits if exact else bits
    return Coded([e.get_compressed() for e in encoders], lengths.tolist(), float(bits.sum()),
                 bits_per_stream=bits.tolist(), quantised_bits=float(coder_bits.sum()))


def decode_streams(predictor, coded: Coded, progress=None, as_bytes: bool = True) -> list:
    """Invert `encode_streams` with a predictor in the same state as the encoder's: bytes, or arrays
    of token ids with as_bytes=False."""
    lengths = list(coded.lengths)
    decoders = [constriction.stream.queue.RangeDecoder(np.asarray(s, dtype=np.uint32)) for s in coded.streams]
    out = np.zeros((len(lengths), max(lengths, default=0)), dtype=np.int32)

    def code_column(t, probs):
        for b, n in enumerate(lengths):
            if t < n:
                out[b, t] = decoders[b].decode(FAMILY, probs[b:b + 1])[0]
        return out[:, t]

    _lock_step(predictor, lengths, code_column, progress)
    if not as_bytes:
        return [out[b, :n].astype(np.int64) for b, n in enumerate(lengths)]
    return [bytes(out[b, :n].astype(np.uint8)) for b, n in enumerate(lengths)]


# ---- groups of streams, coded side by side in worker processes --------------------------------------
def stream_groups(n_streams: int, group_size: int) -> list[range]:
    """Consecutive groups of near-equal size, at most group_size streams each.

    The groups depend on the data alone, never on the number of processes: float32 products round
    differently for different batch shapes, so the same groups on every machine give the same code."""
    if group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size}")
    k = max(1, -(-n_streams // group_size))
    bounds = [round(i * n_streams / k) for i in range(k + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _code_group(job, progress=None):
    """One group: ("encode", predictor, streams) or ("decode", predictor, (coded, as_bytes))."""
    kind, predictor, payload = job
    if kind == "encode":
        return encode_streams(predictor, payload, progress)
    return decode_streams(predictor, payload[0], progress, as_bytes=payload[1])


def code_groups(jobs: list[tuple], processes: int = 1, progress=None) -> list:
    """Run coding jobs (see `_code_group`) in order here, or side by side in `processes` forked worker
    processes, one BLAS thread each; results in the order of `jobs`. progress wraps the positions of
    each job run here, or the jobs as they finish in workers.

    Processes rather than threads: a coder step is many small numpy operations that hold the GIL, so
    two threads were 1.1x one, two processes 1.6x. Forked rather than spawned: a spawned worker
    re-imports the caller's script, which fails in any script without a __main__ guard; the workers
    run numpy and constriction only, never torch."""
    if processes <= 1 or len(jobs) <= 1:
        return [_code_group(job, progress) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)  # Python 3.12, threads
        with ProcessPoolExecutor(min(processes, len(jobs)), mp_context=multiprocessing.get_context("fork")) as pool:
            results = pool.map(_code_group, jobs)
            return list(results if progress is None else progress(results, total=len(jobs)))


def compress(data: bytes, predictor, chunk_size: int | None = 2048, progress=None) -> Coded:
    """Range-code data in chunks of chunk_size bytes (None: one stream); the chunks code as a batch."""
    coded = encode_streams(predictor, chunks(data, chunk_size), progress)
    coded.chunk_size = chunk_size
    return coded


def decompress(coded: Coded, predictor, progress=None) -> bytes:
    """The original bytes of `compress`'s output."""
    return b"".join(decode_streams(predictor, coded, progress))
