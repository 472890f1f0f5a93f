"""Compression rates of a language model against classical compressors, and the size sweep.

Raw rate = compressed bytes / original bytes. Adjusted rate adds the model's own size once,
n_params x 2 bytes (float16): the two-part code that says whether the weights are worth their bits
(Deletang et al. 2023, "Language Modeling Is Compression"). Classical compressors ship no learned
weights, so their adjusted rate equals their raw rate (program size is not counted, as in the paper).
"""

from __future__ import annotations

import math
import time
from functools import partial

import numpy as np
import pandas as pd

from copystudy.compression import baselines, coding, predictors
from copystudy.common import parallel
from copystudy.models.causal_lm import CausalLM
from copystudy.models.training import progress

BITS_PER_PARAM = 16  # the weights are sent as float16


def model_bits(n_params: int, bits_per_param: int = BITS_PER_PARAM) -> float:
    """Bits needed to send the weights themselves (16 = float16, 32 = float32): the model part of every
    two-part code in the study (the adjusted rate here, the two-part code of description_length)."""
    if bits_per_param <= 0:
        raise ValueError(f"bits_per_param must be positive, got {bits_per_param}")
    return float(n_params) * bits_per_param


def model_bytes(n_params: int) -> int:
    """Bytes needed to send the weights in float16."""
    return int(n_params) * BITS_PER_PARAM // 8


def raw_rate(compressed_bytes: float, original_bytes: int) -> float:
    """Compressed size over original size."""
    return float(compressed_bytes) / original_bytes if original_bytes else float("nan")


def adjusted_rate(compressed_bytes: float, original_bytes: int, n_params: int) -> float:
    """(Compressed size + float16 weights) over original size."""
    return raw_rate(compressed_bytes + model_bytes(n_params), original_bytes)


def chunking_label(chunk_size: int | None) -> str:
    return "unchunked" if chunk_size is None else f"{chunk_size}-byte chunks"


# ---- the LM as a compressor ----------------------------------------------------------------------
def lm_chunks(lm: CausalLM, data: bytes, chunk_size: int | None) -> list[bytes]:
    """The chunks that are coded: whole UTF-8 characters for a model with a tokenizer."""
    return coding.chunks(data, chunk_size, utf8=not lm.byte_level)


def lm_code(lm: CausalLM, data: bytes, chunk_size: int | None = 2048, verify: bool = True,
            show_progress: bool = True, stream_batch: int = 32, processes: int | None = None,
            integer: bool = False) -> dict:
    """Range-code data with the LM, decode it again and compare.

    The chunks are coded in lock-step groups of at most `stream_batch` streams; a byte-level GPT-2's
    groups run side by side in `processes` single-threaded worker processes (default: one per core,
    one inside a Dask task), a model with its own torch forward pass (a tokenizer model, a GPU) codes
    them here in turn. A model with a tokenizer codes the token ids of each chunk; sizes are still per
    original byte. integer=True codes with the machine-independent integer program of a byte-level GPT-2
    (`integer_lm`, what the .lmz files use) instead of the float32 predictor. Returns coded and ideal
    sizes (ideal_bits: under the model's probabilities; quantised_bits: under the coder's own integer
    ones), the coder's overhead over each, whether the round trip was exact, and the wall times.
    """
    from copystudy.compression import integer_lm

    pieces = lm_chunks(lm, data, chunk_size)
    streams = pieces if lm.byte_level else [lm.tokens(p) for p in pieces]
    if integer:
        predictor = integer_lm.IntegerPredictor(integer_lm.IntegerGPT2.from_lm(lm))
    else:
        predictor = predictors.predictor_for(lm)
    if processes is None:
        numpy_only = isinstance(predictor, (predictors.LMPredictor, integer_lm.IntegerPredictor))
        processes = parallel.local_processes() if numpy_only else 1
    groups = [[streams[i] for i in g] for g in coding.stream_groups(len(streams), stream_batch)]
    desc = f"LM code {len(data) // 1000} KB, {chunking_label(chunk_size)}"

    def bar(what):
        if not show_progress:
            return None
        return lambda it, **kw: progress(it, desc=f"{desc} ({what}, {len(groups)} group{'s' * (len(groups) > 1)})",
                                         **kw)

    t0 = time.perf_counter()
    coded = coding.code_groups([("encode", predictor, g) for g in groups], processes, bar("encode"))
    t1 = time.perf_counter()
    exact = None
    if verify:
        jobs = [("decode", predictor, (c, lm.byte_level)) for c in coded]
        decoded = [d for group in coding.code_groups(jobs, processes, bar("decode")) for d in group]
        exact = b"".join(d if lm.byte_level else lm.detokenize(d) for d in decoded) == bytes(data)
    t2 = time.perf_counter()
    whole = coding.Coded([s for c in coded for s in c.streams], [n for c in coded for n in c.lengths],
                         sum(c.ideal_bits for c in coded), chunk_size,
                         quantised_bits=sum(c.quantised_bits for c in coded))
    return {"original_bytes": len(data), "n_chunks": len(whole.streams), "n_symbols": whole.n_symbols,
            "coded_bytes": whole.coded_bytes, "coded_bits": whole.coded_bits, "ideal_bits": whole.ideal_bits,
            "quantised_bits": whole.quantised_bits, "coder_overhead_pct": whole.coder_overhead_pct,
            "overhead_pct": whole.overhead_pct, "roundtrip_exact": exact,
            "encode_seconds": t1 - t0, "decode_seconds": t2 - t1, "coder_processes": min(processes, len(groups))}


def baseline_rates(texts: dict[str, bytes], chunk_sizes=(2048, None), verify: bool = True,
                   utf8: bool = False) -> pd.DataFrame:
    """Every classical compressor on the same texts and chunks as the LM: one row per compressor x text
    x chunking (raw rate = adjusted rate: they send no learned weights)."""
    rows = []
    for text_name, data in texts.items():
        for chunk_size in chunk_sizes:
            pieces = coding.chunks(data, chunk_size, utf8=utf8)
            for name, comp in baselines.COMPRESSORS.items():
                size = baselines.compressed_size(name, pieces, verify=verify)
                rows.append({"compressor": name, "label": comp.label, "text": text_name,
                             "chunking": chunking_label(chunk_size), "original_bytes": len(data),
                             "compressed_bytes": size, "raw_rate": raw_rate(size, len(data)),
                             "adjusted_rate": raw_rate(size, len(data)), "roundtrip_exact": True if verify else None})
    return pd.DataFrame(rows)


PRIMED_LABELS = {"zstd": "zstd -19, dictionary trained on the training text"}


def primed_rates(texts: dict[str, bytes], side: bytes, chunk_sizes=(2048, None), verify: bool = True,
                 utf8: bool = False) -> pd.DataFrame:
    """Every classical compressor given the LM's side information, the text the LM trained on: zstd with
    a dictionary trained on it (in chunks of the first chunk size), the others primed with it (a chunk
    costs size(side + chunk) - size(side)). One task per compressor; one row per compressor x text x
    chunking, compressor `<name>_primed`."""
    jobs = list(baselines.COMPRESSORS)
    done = parallel.map_tasks(partial(_primed_rows, texts, bytes(side), tuple(chunk_sizes), verify, utf8), jobs,
                              desc="primed classical compressors")
    return pd.DataFrame([row for rows in done for row in rows])


def _primed_rows(texts, side, chunk_sizes, verify, utf8, name) -> list[dict]:
    """One compressor (a task), primed, on every text and chunking."""
    comp = baselines.get(name)
    if name == "zstd":
        size = chunk_sizes[0] or 2048
        dictionary = baselines.zstd_dictionary([side[i:i + size] for i in range(0, len(side), size)])
    else:
        side_size = len(comp.compress(side))
    rows = []
    for text_name, data in texts.items():
        for chunk_size in chunk_sizes:
            pieces = coding.chunks(data, chunk_size, utf8=utf8)
            if name == "zstd":
                total = baselines.zstd_dictionary_size(pieces, dictionary, verify=verify)
            else:
                total = sum(baselines.primed_size(name, side, p, side_size, verify=verify) for p in pieces)
            rows.append({"compressor": f"{name}_primed", "label": PRIMED_LABELS.get(name, f"{comp.label}, primed with the "
                                                                                          "training text"),
                         "text": text_name, "chunking": chunking_label(chunk_size), "original_bytes": len(data),
                         "compressed_bytes": total, "raw_rate": raw_rate(total, len(data)),
                         "adjusted_rate": raw_rate(total, len(data)), "roundtrip_exact": True if verify else None})
    return rows


def adaptive_ideal_bits(lm: CausalLM, data: bytes, block: int = 4096, steps: int = 20, window: int = 16384,
                        batch_size: int = 16, lr: float = 1e-3, seed: int = 0) -> float:
    """The adaptive coder's code length (sum of -log2 p, no range coder) of `data`: the learner of
    `adaptive_code`, block by block, each block conditioned on the bytes before it. For choosing the
    adaptive learning rate on validation text."""
    from copystudy.compression import online_coding
    from copystudy.compression.code_lengths import block_bits

    boundaries = online_coding.equal_blocks(len(data), block)
    learner = online_coding.AdaptiveLearner(lm, steps=steps, window=window, batch_size=batch_size, lr=lr, seed=seed)
    total, model = 0.0, None
    for k, (a, b) in enumerate(zip(boundaries, boundaries[1:])):
        model = learner(k, bytes(data[:a]), model)
        total += block_bits(model, data, a, b)
    return total


def adaptive_code(lm: CausalLM, data: bytes, block: int = 4096, steps: int = 20, window: int = 16384,
                  batch_size: int = 16, lr: float = 1e-3, seed: int = 0, verify: bool = True) -> dict:
    """Code data as one stream with a model that keeps training on what it has coded (NNCP-style,
    `online_coding.AdaptiveLearner`), starting from `lm`; the decoder replays the same updates from the
    bytes it decodes. Returns the same fields as `lm_code`."""
    from copystudy.compression import online_coding

    boundaries = online_coding.equal_blocks(len(data), block)

    def learner():
        return online_coding.AdaptiveLearner(lm, steps=steps, window=window, batch_size=batch_size, lr=lr, seed=seed)

    t0 = time.perf_counter()
    code = online_coding.encode(data, boundaries, learner())
    t1 = time.perf_counter()
    exact = None
    if verify:
        try:
            exact = online_coding.decode(code, learner()) == bytes(data)
        except online_coding.DecodeError:
            exact = False
    t2 = time.perf_counter()
    return {"original_bytes": len(data), "n_chunks": len(code.streams), "n_symbols": code.n_symbols,
            "coded_bytes": code.coded_bytes, "coded_bits": code.coded_bits, "ideal_bits": code.ideal_bits,
            "overhead_pct": code.overhead_pct, "roundtrip_exact": exact,
            "encode_seconds": t1 - t0, "decode_seconds": t2 - t1, "coder_processes": 1}


# ---- model size x data size sweep ------------------------------------------------------------------
def sweep_corpus(train_docs: dict[str, bytes], stdlib_bytes: int = 0, seed: int = 0) -> bytes:
    """The sweep's training text: the training documents, plus up to `stdlib_bytes` of the standard
    library's source, in one seeded random order of documents, so every prefix is a similar mix and
    the largest data size can exceed the documentation alone."""
    from copystudy.common.data import stdlib_source

    docs = dict(train_docs)
    if stdlib_bytes > 0:
        docs.update({f"stdlib/{k}": v for k, v in stdlib_source(stdlib_bytes).items()})
    names = sorted(docs)
    order = np.random.default_rng(seed).permutation(len(names))
    return b"".join(docs[names[i]] for i in order)


def sweep(train_text: bytes, heldout_text: bytes, model_sizes: dict[str, dict], data_sizes: list[int],
          steps: int, batch_size: int = 16, lr: float = 2e-3, seeds=(0,), epochs: float = 0.0,
          show_progress: bool = True) -> pd.DataFrame:
    """Train each model size on the first D bytes of train_text for each D and seed; one row per
    (D, model, seed). See `submit_sweep`."""
    return pd.DataFrame(submit_sweep(train_text, heldout_text, model_sizes, data_sizes, steps, batch_size, lr, seeds,
                                     epochs, show_progress).result())


def submit_sweep(train_text: bytes, heldout_text: bytes, model_sizes: dict[str, dict], data_sizes: list[int],
                 steps: int, batch_size: int = 16, lr: float = 2e-3, seeds=(0,), epochs: float = 0.0,
                 show_progress: bool = True, background: bool = False):
    """The sweep's models as tasks, handed to the cluster at once (`parallel.submit_tasks`); the
    pending result's rows are one per (D, model, seed).

    Every model trains for at least `steps` steps, and for at least `epochs` passes over its D bytes
    (so a large data set is not left half seen; small ones are seen for more epochs).
    Columns: the two-part code of the training data, adjusted_rate = (bits(D | model)/8 + 2 n_params)/D,
    its raw part train_rate, and heldout_rate on held-out text of the same source.
    """
    if not data_sizes or not model_sizes:
        raise ValueError("sweep needs at least one data size and one model size")
    too_big = [d for d in data_sizes if d > len(train_text)]
    if too_big:
        raise ValueError(f"sweep_data_sizes {too_big} exceed the {len(train_text)} training bytes available")
    if isinstance(seeds, int):
        seeds = [seeds]
    combos = [(d, name, seed) for d in data_sizes for name in model_sizes for seed in seeds]
    cell = partial(_sweep_cell, train_text, heldout_text, model_sizes, steps, batch_size, lr, epochs)

    def cost(combo):  # bytes trained on and scored, times the weights: the large model on the most data first
        d, name, _ = combo
        shape = model_sizes[name]
        context = shape.get("context", 128)
        n = sweep_steps(d, steps, epochs, batch_size, context) * batch_size * context + d
        return n * shape.get("n_layer", 2) * shape.get("n_embd", 64) ** 2

    return parallel.submit_tasks(cell, combos, desc="sweep", progress_bar=show_progress, cost=cost, background=background)


def _sweep_cell(train_text, heldout_text, model_sizes, steps, batch_size, lr, epochs, combo) -> dict:
    """One cell of the sweep (a task): model size `name` trained on the first d bytes with one seed."""
    d, name, seed = combo
    data = train_text[:d]
    lm = CausalLM.from_config(**model_sizes[name], seed=seed)
    n_steps = sweep_steps(d, steps, epochs, batch_size, lm.context)
    t0 = time.perf_counter()
    losses = lm.fit(data, steps=n_steps, batch_size=batch_size, lr=lr, seed=seed, progress_bar=False)
    seconds = time.perf_counter() - t0
    train_bits = float(lm.batched_bits(data, batch_size=32).sum())
    held_bits = float(lm.batched_bits(heldout_text, batch_size=32).sum())
    return {"data_bytes": d, "model": name, "seed": seed, "n_params": lm.n_params, "model_bytes": model_bytes(lm.n_params),
            "train_rate": train_bits / 8 / d, "adjusted_rate": adjusted_rate(train_bits / 8, d, lm.n_params),
            "heldout_rate": held_bits / 8 / len(heldout_text),
            "steps": n_steps, "epochs": n_steps * batch_size * min(lm.context, d - 1) / d,
            "final_loss_nats": float(np.mean(losses[-10:])), "train_seconds": seconds}


def sweep_steps(data_bytes: int, steps: int, epochs: float, batch_size: int, context: int) -> int:
    """Training steps for one sweep model: `steps`, or enough for `epochs` passes over the data if more."""
    return max(int(steps), math.ceil(epochs * data_bytes / (batch_size * min(context, data_bytes - 1))))


def sweep_means(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (D, model): the adjusted, train and held-out rates as means over seeds, with the
    95% interval of the adjusted rate (adjusted_low, adjusted_high)."""
    from copystudy.common import intervals

    rows = []
    for (d, name), g in table.groupby(["data_bytes", "model"], sort=False):
        mean, lo, hi = intervals.mean_ci(g["adjusted_rate"])
        rows.append({"data_bytes": d, "model": name, "n_params": int(g["n_params"].iloc[0]), "n_seeds": len(g),
                     "adjusted_rate": mean, "adjusted_low": lo, "adjusted_high": hi,
                     "train_rate": g["train_rate"].mean(), "heldout_rate": g["heldout_rate"].mean()})
    return pd.DataFrame(rows)


def best_model_per_data_size(table: pd.DataFrame) -> pd.DataFrame:
    """The model size with the lowest (mean) adjusted rate for each data size (does it grow with the
    data?), and the sizes whose 95% interval overlaps the best one's: tied with it within seed noise."""
    means = sweep_means(table) if "seed" in table else table
    rows = []
    for d, g in means.groupby("data_bytes"):
        best = g.loc[g["adjusted_rate"].idxmin()]
        hi = best.get("adjusted_high", best["adjusted_rate"])
        tied = g[g.get("adjusted_low", g["adjusted_rate"]) <= hi]
        rows.append({"data_bytes": d, "model": best["model"], "n_params": int(best["n_params"]),
                     "adjusted_rate": best["adjusted_rate"], "tied_models": ",".join(tied["model"]),
                     "tied_min_params": int(tied["n_params"].min()), "tied_max_params": int(tied["n_params"].max())})
    return pd.DataFrame(rows)


def is_u_shaped(rates: list[float]) -> bool:
    """True if the minimum of a sequence (ordered by model size) lies strictly inside it."""
    i = int(np.argmin(rates))
    return 0 < i < len(rates) - 1


def u_shape_separated(means: pd.DataFrame) -> bool:
    """A U that survives seed noise: the minimum of the mean adjusted rate (rows ordered by model size)
    lies strictly inside, and its 95% interval lies below both end models' intervals."""
    rates = means["adjusted_rate"].tolist()
    i = int(np.argmin(rates))
    if not 0 < i < len(rates) - 1:
        return False
    hi = means["adjusted_high"].iloc[i]
    return bool(hi < means["adjusted_low"].iloc[0] and hi < means["adjusted_low"].iloc[-1])
