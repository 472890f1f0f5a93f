"""Notebook 01, LM compression: a language model with arithmetic coding against classical compressors.

The main model is trained on the training documents and codes held-out text and a training sample of
the same size, in independent chunks and unchunked, beside gzip, bz2, LZMA, zstd, brotli and PPMd on
the same bytes; a sweep over model and data sizes gives the adjusted rate (code + weights) of
Deletang et al. Each function is one step of the notebook; `summarize` and `summarize_sweep` give
metrics.json, `verdicts` and `sweep_verdicts` the sentences the notebook prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from copystudy import baselines, compression, models
from copystudy.data import join_documents, split_documents, text_corpus
from copystudy.report import run_path


@dataclass
class Texts:
    train_docs: dict
    train_text: bytes
    heldout_text: bytes  # what is coded: held-out documents, capped at eval_bytes
    train_sample: bytes  # a contiguous training sample of the same size

    def describe(self, n_docs: int, n_heldout_docs: int) -> str:
        return (f"{n_docs} documents: {len(self.train_docs)} for training ({len(self.train_text):,} bytes), "
                f"{n_heldout_docs} held out; {len(self.heldout_text):,} held-out bytes are coded, "
                f"and a training sample of {len(self.train_sample):,} bytes")


def texts(text_files, heldout_fraction: float, eval_bytes: int | None, seed: int = 0) -> tuple[Texts, str]:
    """Documents split (whole) into training and held-out text; and a one-line description."""
    docs = text_corpus(text_files)
    train_docs, heldout_docs = split_documents(docs, heldout_fraction=heldout_fraction, seed=seed)
    train_text = join_documents(train_docs)
    heldout_text = join_documents(heldout_docs)[:eval_bytes]
    out = Texts(train_docs, train_text, heldout_text, train_text[:len(heldout_text)])
    return out, out.describe(len(docs), len(heldout_docs))


def train_main_model(model: dict, train_text: bytes, steps: int, batch_size: int, lr: float, seed: int = 0):
    """The main LM from its spec, trained (or fine-tuned) for `steps` steps and saved to models/lm/ (a
    pretrained model used as it is saves only where it comes from). Returns (lm, losses, seconds)."""
    lm = models.build(model, seed=seed)
    start = time.time()
    losses = lm.fit(train_text, steps=steps, batch_size=batch_size, lr=lr, seed=seed, desc="train main LM") if steps else []
    seconds = time.time() - start
    if model.get("name_or_path") and not steps:
        lm.save_reference(run_path("models", "lm"))
    else:
        lm.save(run_path("models", "lm"))
    return lm, losses, seconds


def describe_model(lm, steps: int, seconds: float) -> str:
    tokens = f"tokenizer with {lm.vocab_size:,} tokens" if lm.tokenizer is not None else "bytes as tokens"
    trained = f"trained {steps} steps in {seconds:.0f} s" if steps else "not trained here"
    return (f"{lm.name}: {lm.n_params:,} parameters = {compression.model_bytes(lm.n_params):,} bytes in float16; "
            f"{tokens}, context {lm.context}; {trained}; saved to models/lm/")


def code(lm, texts: Texts, chunk_size: int, verify: bool):
    """Every compressor on the held-out text and the training sample, chunked and unchunked.

    Returns (rates: one row per compressor, text and chunking; details of the LM's coding)."""
    rates, lm_details = compression.compare(lm, {"heldout": texts.heldout_text, "train": texts.train_sample},
                                            chunk_sizes=(chunk_size, None), verify=verify)
    details = pd.DataFrame([{"text": t, "chunking": c, **d} for (t, c), d in lm_details.items()])
    details["coded_bits_per_byte"] = details["coded_bits"] / details["original_bytes"]
    details["ideal_bits_per_byte"] = details["ideal_bits"] / details["original_bytes"]
    if verify and not details["roundtrip_exact"].all():
        raise AssertionError("the LM round trip did not reproduce the input")
    return rates, details


def rates_table(rates: pd.DataFrame) -> pd.DataFrame:
    """Raw rates in %, one row per compressor, one column per text and chunking."""
    wide = rates.pivot_table(index=["compressor", "label"], columns=["text", "chunking"], values="raw_rate", sort=False)
    wide.columns = [f"{t} {c}" for t, c in wide.columns]
    return (100 * wide).round(1).reset_index()


def summarize(lm, texts: Texts, rates: pd.DataFrame, details: pd.DataFrame, chunk_size: int, verify: bool) -> dict:
    """The numbers of metrics.json for the coding comparison."""
    chunked, unchunked = compression.chunking_label(chunk_size), compression.chunking_label(None)

    def rate(name, text="heldout", chunking=chunked, col="raw_rate"):
        row = rates[(rates.compressor == name) & (rates.text == text) & (rates.chunking == chunking)]
        return float(row[col].iloc[0])

    def lm_row(text, chunking):
        return details[(details.text == text) & (details.chunking == chunking)].iloc[0]

    held_chunked, held_whole, train_whole = lm_row("heldout", chunked), lm_row("heldout", unchunked), lm_row("train", unchunked)
    m = {
        "roundtrip_exact": bool(details["roundtrip_exact"].all()) if verify else None,
        "model": lm.name, "pretrained": bool(getattr(lm, "name_or_path", None)), "tokenizer": lm.tokenizer is not None,
        "n_params": lm.n_params, "model_bytes_float16": compression.model_bytes(lm.n_params),
        "heldout_bytes": len(texts.heldout_text), "train_sample_bytes": len(texts.train_sample),
        "train_text_bytes": len(texts.train_text),
        "model_bits_per_byte_heldout": held_whole["ideal_bits"] / held_whole["original_bytes"],
        "model_bits_per_byte_train": train_whole["ideal_bits"] / train_whole["original_bytes"],
        "coded_bits_overhead_pct": held_chunked["overhead_pct"],
        "coded_bits_overhead_pct_unchunked": held_whole["overhead_pct"],
    }
    names = ["lm", *baselines.COMPRESSORS]
    for name in names:
        m[f"rate_chunked_{name}"] = rate(name)
        m[f"rate_unchunked_{name}"] = rate(name, chunking=unchunked)
        m[f"train_rate_chunked_{name}"] = rate(name, "train")
        m[f"train_rate_unchunked_{name}"] = rate(name, "train", unchunked)
    m["adjusted_rate_chunked_lm"] = rate("lm", col="adjusted_rate")
    m["adjusted_rate_unchunked_lm"] = rate("lm", chunking=unchunked, col="adjusted_rate")
    m["train_adjusted_rate_chunked_lm"] = rate("lm", "train", col="adjusted_rate")
    m["lm_vs_gzip_chunked_ratio"] = m["rate_chunked_lm"] / m["rate_chunked_gzip"]
    m["lm_vs_lzma_chunked_ratio"] = m["rate_chunked_lm"] / m["rate_chunked_lzma"]
    m["lm_beats_gzip_and_lzma_chunked"] = bool(m["lm_vs_gzip_chunked_ratio"] < 1 and m["lm_vs_lzma_chunked_ratio"] < 1)
    m["best_compressor_chunked"] = min(names, key=lambda n: m[f"rate_chunked_{n}"])
    # training sample vs held-out text: the LM's gap, against the gap of a compressor that learnt nothing
    m["lm_heldout_minus_train_bits_per_byte"] = 8 * (m["rate_chunked_lm"] - m["train_rate_chunked_lm"])
    m["ppmd_heldout_minus_train_bits_per_byte"] = 8 * (m["rate_chunked_ppmd"] - m["train_rate_chunked_ppmd"])
    return m


def verdicts(m: dict, chunk_size: int) -> list[str]:
    chunked = compression.chunking_label(chunk_size)
    out = [f"held-out text, {chunked}: LM {100 * m['rate_chunked_lm']:.1f} % ({m['model_bits_per_byte_heldout']:.3f} "
           f"bits/byte unchunked), gzip {100 * m['rate_chunked_gzip']:.1f} %, LZMA {100 * m['rate_chunked_lzma']:.1f} %"]
    for other in ("gzip", "lzma"):
        ratio = m[f"lm_vs_{other}_chunked_ratio"]
        verdict = (f"beats {other}: its output is {100 * (1 - ratio):.1f} % smaller" if ratio < 1 else
                   f"does NOT beat {other}: its output is {100 * (ratio - 1):.1f} % larger")
        out.append(f"  the LM {verdict} than {other}'s on the same chunks (ratio {ratio:.3f})")
    gap_lm, gap_ppmd = m["lm_heldout_minus_train_bits_per_byte"], m["ppmd_heldout_minus_train_bits_per_byte"]
    out += [f"coded size vs ideal sum of -log2 p: +{m['coded_bits_overhead_pct']:.3f} % ({chunked}), "
            f"+{m['coded_bits_overhead_pct_unchunked']:.4f} % (unchunked)",
            f"adjusted rate (weights counted): {100 * m['adjusted_rate_chunked_lm']:.0f} % on the held-out text",
            f"held-out minus training-sample code length, {chunked}: LM {gap_lm:+.3f} bits/byte, PPMd {gap_ppmd:+.3f} "
            "bits/byte (PPMd saw neither text, so its gap is the texts' own difference)",
            "the LM codes its training text better than held-out text by more than the texts' own difference"
            if gap_lm > gap_ppmd else "the LM shows no extra advantage on its training text at this scale"]
    return out


def sweep(train_docs: dict, heldout_text: bytes, model_sizes: dict, data_sizes: list[int], steps: int,
          batch_size: int, lr: float, epochs: float, stdlib_bytes: int, seed: int = 0):
    """The model x data sweep on the training documents (plus standard-library source when asked, so the
    data can grow past them): (one row per data size and model, the best model per data size)."""
    text = compression.sweep_corpus(train_docs, stdlib_bytes, seed=seed)
    table = compression.sweep(text, heldout_text, model_sizes, data_sizes, steps=steps, batch_size=batch_size,
                              lr=lr, seed=seed, epochs=epochs)
    table["data"] = table["data_bytes"].map(lambda d: f"{d / 1000:.0f} KB")
    return text, table, compression.best_model_per_data_size(table)


def summarize_sweep(table: pd.DataFrame, best: pd.DataFrame) -> dict:
    u_shape = {int(d): compression.is_u_shaped(g.sort_values("n_params")["adjusted_rate"].tolist())
               for d, g in table.groupby("data_bytes")}
    best_params = {int(r.data_bytes): int(r.n_params) for r in best.itertuples()}
    sizes = [best_params[d] for d in sorted(best_params)]
    grows = all(b >= a for a, b in zip(sizes, sizes[1:])) and sizes[-1] > sizes[0]
    return {"sweep_adjusted_rate": {f"{int(r.data_bytes)}/{r.model}": r.adjusted_rate for r in table.itertuples()},
            "sweep_best_model_params_by_data_bytes": best_params, "sweep_u_shape_by_data_bytes": u_shape,
            "sweep_best_grows_with_data": bool(grows)}


def sweep_verdicts(m: dict, table: pd.DataFrame) -> list[str]:
    out, smallest = [], table["n_params"].min()
    for d, params in sorted(m["sweep_best_model_params_by_data_bytes"].items()):
        shape = "a U (minimum inside the range)" if m["sweep_u_shape_by_data_bytes"][d] else (
            "no U: the smallest model is best" if params == smallest else "no U: the largest model is best")
        out.append(f"D = {d:>7,} bytes: best model {params:>8,} params, adjusted rate "
                   f"{table[table.data_bytes == d].adjusted_rate.min():.3f}; {shape}")
    out.append("the best model size grows with the data" if m["sweep_best_grows_with_data"] else
               "the best model size does NOT grow with the data at this scale")
    return out


# ---- figures ----------------------------------------------------------------------------------------
def plot_training_loss(lm, losses: list[float], train_text: bytes):
    """Training loss in bits per byte with a moving mean (None when nothing was trained)."""
    import matplotlib.pyplot as plt

    if not losses:
        return None
    tokens_per_byte = len(lm.tokens(train_text)) / len(train_text)  # 1 for a byte-level model
    loss_bits = np.array(losses) / np.log(2) * tokens_per_byte
    window = max(1, len(loss_bits) // 30)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(loss_bits, lw=0.6, alpha=0.4, label="per step")
    ax.plot(np.arange(window - 1, len(loss_bits)), np.convolve(loss_bits, np.ones(window) / window, "valid"),
            lw=2, label=f"moving mean ({window} steps)")
    ax.axhline(8, color="grey", ls=":", label="uniform code (8 bits/byte)")
    ax.set(xlabel="training step", ylabel="training loss (bits per byte)",
           title=f"Training {lm.name} ({lm.n_params:,} parameters)")
    ax.legend()
    return fig


def plot_rates(rates: pd.DataFrame, lm, chunk_size: int, corpus: str):
    import seaborn as sns

    chunked, unchunked = compression.chunking_label(chunk_size), compression.chunking_label(None)
    data = rates.assign(rate_pct=100 * rates["raw_rate"], compressor=rates["compressor"].replace({"lm": lm.name}))
    g = sns.catplot(data=data, x="compressor", y="rate_pct", hue="text", col="chunking", kind="bar",
                    order=[lm.name, *baselines.COMPRESSORS], col_order=[chunked, unchunked], height=4, aspect=1.3,
                    palette="deep")
    g.set_axis_labels("", "raw compression rate (%)")
    g.set_titles("{col_name}")
    g.figure.suptitle(f"Compressed size / original size on {corpus} (LM: {lm.n_params:,} params, weights not counted)",
                      y=1.04)
    for ax in g.axes.flat:
        ax.tick_params(axis="x", rotation=30)
    return g.figure


def plot_sweep(table: pd.DataFrame, best: pd.DataFrame):
    """The adjusted rate against model size per data size (best marked), and the raw rates."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    adjusted, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=table, x="n_params", y="adjusted_rate", hue="data", marker="o", ax=ax, palette="viridis")
    ax.scatter(best["n_params"], best["adjusted_rate"], s=160, facecolors="none", edgecolors="red", zorder=5,
               label="best size per data size")
    ax.set(xscale="log", yscale="log", xlabel="model parameters", ylabel="adjusted rate ((code + 2 bytes/param) / data)",
           title="Two-part code of the training data vs model size")
    ax.axhline(1, color="grey", ls=":", lw=1)
    ax.legend(title="training data")
    raw, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=table, x="n_params", y="train_rate", hue="data", marker="o", ax=ax, palette="viridis")
    sns.lineplot(data=table, x="n_params", y="heldout_rate", hue="data", marker="s", ls="--", ax=ax,
                 palette="viridis", legend=False)
    ax.set(xscale="log", xlabel="model parameters", ylabel="raw rate (compressed / original)",
           title="Raw rate vs model size: training data (solid) and held-out text (dashed)")
    ax.legend(title="training data")
    return adjusted, raw
