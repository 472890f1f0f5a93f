"""Notebook 02, description length: the code lengths of the training text as the training set grows.

Uniform, two-part and prequential code lengths of growing prefixes of the training text, for several
training seeds (each prefix model stopped early on the end of its prefix); the two-part code of the
whole text with its weights at the precision that makes it shortest; the bits of every document under
the model of the whole text (the generalisation gap). The quantities are in
`copystudy.compression.code_lengths`; this module runs them in the notebook's order. The prequential
stream is in `stream`, memorised bits in `memorized`, metrics.json and the verdicts in `summary`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pandas as pd

from copystudy.common import intervals
from copystudy.compression import code_lengths as codes, generalization, quantization


RATE_COLUMNS = ["uniform_bits_per_byte", "two_part_bits_per_byte", "data_bits_per_byte", "prequential_bits_per_byte",
                "next_block_bits_per_byte", "heldout_bits_per_byte", "validation_bits_per_byte", "train_steps"]


@dataclass(frozen=True)
class CodeLengthSpec:
    """The code lengths' design: the first block (later boundaries double), weight precisions, the fixed
    held-out text of the learning curve, whether each prefix model starts warm from the one before,
    and how the two-part model is trained further (lm_compression's recipe: lr, batch, steps on the
    whole text, no validation split: a two-part code sends its weights, so fitting the text is its aim)."""

    first_block: int = 4096
    bits_per_param: int = 16
    precisions: tuple = (16, 8, 4)
    curve_heldout_bytes: int = 16384
    warm: bool = True
    two_part_steps: int = 1200
    two_part_lr: float = 4e-3
    two_part_batch_size: int = 32


# ---- code lengths -----------------------------------------------------------------------------------
@dataclass
class CodeLengths:
    boundaries: list[int]
    runs: pd.DataFrame  # one row per (seed, prefix)
    finals: dict  # seed -> {"two_part": by precision and model, "doc_bits": per document} of the whole-text models
    stream: list | None = None  # the stream seed's blocks 1.. range-coded by their prefix models
    warm: bool = False  # each prefix model started from the one before


def final_model_analysis(train_text: bytes, train_docs: dict, heldout_docs: dict, spec: CodeLengthSpec, model,
                         data_bits: float, seed: int) -> dict:
    """What the model of the whole text gives besides its block: the bits of every document it was
    fitted on and every held-out document (the generalisation gap), and the two-part code at each
    precision, of this early-stopped model and of a copy trained further on the whole text (column
    `model`; the shortest total is the two-part code)."""
    import copy

    fit_text = train_text[:getattr(model, "fit_bytes", len(train_text))]
    docs = pd.concat([generalization.document_bits(model, generalization.fit_documents(train_docs, fit_text), "train"),
                      generalization.document_bits(model, heldout_docs, "heldout")], ignore_index=True)
    tables = [quantization.two_part_by_precision(model, train_text, spec.precisions, data_bits).assign(model="early-stopped")]
    if spec.two_part_steps:
        further = copy.deepcopy(model)
        further.fit(train_text, steps=spec.two_part_steps, batch_size=spec.two_part_batch_size, lr=spec.two_part_lr,
                    seed=seed, progress_bar=False)
        tables.append(quantization.two_part_by_precision(further, train_text, spec.precisions).assign(model="trained further"))
    return {"two_part": pd.concat(tables, ignore_index=True), "doc_bits": docs}


def code_lengths(train_text: bytes, train_docs: dict, heldout_docs: dict, train, seeds, spec: CodeLengthSpec,
                 stream: bool = True) -> CodeLengths:
    """One model per seed and doubling prefix (one chain a seed when warm); each also codes the first
    `curve_heldout_bytes` of the held-out text (the learning curve), and the first seed's models
    range-code their next block (the prequential code as a real stream, see `stream`)."""
    boundaries = codes.block_schedule(len(train_text), spec.first_block)
    if len(boundaries) < 3:
        raise ValueError(f"first_block ({spec.first_block}) must be at most half the training text ({len(train_text)} bytes)")
    final = partial(final_model_analysis, bytes(train_text), dict(train_docs), dict(heldout_docs), spec)
    heldout = b"".join(heldout_docs[k] for k in sorted(heldout_docs))[:spec.curve_heldout_bytes]
    runs, finals, words = codes.code_lengths_by_size(train_text, boundaries, train, seeds, spec.bits_per_param, final,
                                                     heldout, stream_seed=seeds[0] if stream else None, warm=spec.warm)
    return CodeLengths(boundaries, runs, finals, words, spec.warm)


def by_size(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% interval over seeds of every rate, per prefix size; the share of models that
    stopped early (the rest ran to their step ceiling)."""
    rows = []
    for size, g in runs.groupby("train_bytes"):
        row = {"train_bytes": size, "n_seeds": len(g), "stopped_early": float(g["stopped_early"].astype(float).mean()),
               "step_ceiling": float(g["step_ceiling"].mean())}
        for col in RATE_COLUMNS:
            values = g[col].dropna()
            if len(values):
                row[col], row[f"{col}_low"], row[f"{col}_high"] = intervals.mean_ci(values)
        rows.append(row)
    return pd.DataFrame(rows)


def block_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """Bits per byte of every model-coded block (rows) for every seed (columns)."""
    coded = runs.dropna(subset=["next_block_bits"])
    return coded.pivot(index="train_bytes", columns="seed", values="next_block_bits_per_byte")


def two_part_table(cl: CodeLengths) -> pd.DataFrame:
    """The two-part code of the whole text at each precision: mean over seeds with a 95% interval."""
    long = pd.concat([f["two_part"].assign(seed=s) for s, f in cl.finals.items()], ignore_index=True)
    if "model" not in long:
        long["model"] = "early-stopped"
    rows = []
    for (name, b), g in long.groupby(["model", "bits_per_param"], sort=False):
        row = {"model": name, "bits_per_param": int(b), "quantized": bool(g["quantized"].iloc[0]),
               "weight_bits": float(g["weight_bits"].iloc[0]), "model_bits": float(g["model_bits"].iloc[0])}
        for col in ("data_bits", "total_bits", "total_bits_per_byte"):
            row[col], row[f"{col}_low"], row[f"{col}_high"] = intervals.mean_ci(g[col])
        rows.append(row)
    return pd.DataFrame(rows)


def classical_bits_per_byte(text: bytes) -> dict:
    """Every classical compressor on the whole training text (one stream), in bits per byte."""
    from copystudy.compression import baselines

    return {name: 8.0 * baselines.compressed_size(name, [bytes(text)]) / len(text) for name in baselines.COMPRESSORS}


def document_table(cl: CodeLengths) -> pd.DataFrame:
    """Bits of every document under the model of the whole text, one row per (seed, document)."""
    return pd.concat([f["doc_bits"].assign(seed=s) for s, f in cl.finals.items()], ignore_index=True)
