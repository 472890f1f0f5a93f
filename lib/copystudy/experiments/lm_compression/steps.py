"""Notebook 01, LM compression: a language model with arithmetic coding against classical compressors.

The main model is trained on the training documents and codes held-out text and a training sample of
the same size, in independent chunks and unchunked, beside gzip, bz2, LZMA, zstd, brotli and PPMd on
the same bytes; a sweep over model and data sizes gives the adjusted rate (code + weights) of
Deletang et al. (`sweep`). Each function is one step of the notebook; `summary` gives metrics.json and
the sentences the notebook prints, `figures` the figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from copystudy.compression import rates
from copystudy.common import parallel
from copystudy import models
from copystudy.common.data import join_documents, split_documents, text_corpus
from copystudy.common.report import run_path

@dataclass
class Texts:
    train_docs: dict
    train_text: bytes
    heldout_text: bytes  # what is coded: held-out documents, capped at eval_bytes
    train_sample: bytes  # a contiguous training sample of the same size
    heldout_docs: dict = field(default_factory=dict)

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
    out = Texts(train_docs, train_text, heldout_text, train_text[:len(heldout_text)], heldout_docs)
    return out, out.describe(len(docs), len(heldout_docs))


@dataclass
class Trained:
    """The main LM of one seed, its loss curve, training time, and its bits on every document."""

    seed: int
    lm: object
    losses: list
    seconds: float
    doc_bits: pd.DataFrame


def start_main_models(model: dict, texts: Texts, steps: int, batch_size: int, lr: float, seeds):
    """The main LM once per seed (initialisation and training windows), each a task trained (or
    fine-tuned) for `steps` steps, handed to the cluster; `finish_main_models` collects them."""
    seeds = list(seeds)[:1] if (model.get("name_or_path") and not steps) else list(seeds)
    task = partial(_main_model, model, texts, steps, batch_size, lr)
    return parallel.submit_tasks(task, seeds, desc="main LM, one per seed")


def finish_main_models(pending, model: dict, steps: int) -> list[Trained]:
    """The trained main LMs; the first seed's model is saved to models/lm/ (a pretrained model used as
    it is saves only where it comes from, and is one model whatever the seeds)."""
    trained = pending.result()
    first = trained[0].lm
    if model.get("name_or_path") and not steps:
        first.save_reference(run_path("models", "lm"))
    else:
        first.save(run_path("models", "lm"))
    return trained


def _main_model(model: dict, texts: Texts, steps: int, batch_size: int, lr: float, seed: int) -> Trained:
    """One seed's main LM (a task), with its code length of every training and held-out document."""
    lm = models.build(model, seed=seed)
    start = time.time()
    losses = lm.fit(texts.train_text, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                    desc=f"train main LM, seed {seed}") if steps else []
    seconds = time.time() - start
    rows = [{"seed": seed, "split": split, "document": name, "bytes": len(text),
             "bits": float(lm.batched_bits(text).sum()) if lm.tokenizer is None else lm.total_bits(text)}
            for split, docs in (("train", texts.train_docs), ("heldout", texts.heldout_docs))
            for name, text in docs.items()]
    return Trained(seed, lm, losses, seconds, pd.DataFrame(rows))


def describe_model(trained: list[Trained], steps: int) -> str:
    lm = trained[0].lm
    tokens = f"tokenizer with {lm.vocab_size:,} tokens" if lm.tokenizer is not None else "bytes as tokens"
    seconds = np.mean([t.seconds for t in trained])
    done = (f"trained {steps} steps ({seconds:.0f} s each) with {len(trained)} seed(s)" if steps
            else "not trained here")
    return (f"{lm.name}: {lm.n_params:,} parameters = {rates.model_bytes(lm.n_params):,} bytes in float16; "
            f"{tokens}, context {lm.context}; {done}; seed {trained[0].seed}'s model saved to models/lm/")


@dataclass
class Coding:
    """What `code` gives: one row per compressor, seed, text and chunking; the LM's coding details; and
    the chunk size and whether every round trip was checked."""

    rates: pd.DataFrame
    details: pd.DataFrame
    chunk_size: int
    verify: bool


def code(trained: list[Trained], texts: Texts, chunk_size: int, verify: bool, adaptive: dict) -> Coding:
    """Every seed's LM on the held-out text and the training sample, chunked and unchunked, plus the
    adaptive coder on the held-out text (byte-level models), each a task; and the classical
    compressors once (they have no seed).

    Returns a `Coding` (rates: one row per compressor, seed, text and chunking; details of the LM's coding)."""
    data = {"heldout": texts.heldout_text, "train": texts.train_sample}
    jobs = [(t.seed, text, c) for t in trained for text in data for c in (chunk_size, None)]
    if trained[0].lm.tokenizer is None and adaptive.get("block"):
        jobs += [(t.seed, "heldout", ADAPTIVE) for t in trained]
    lms = {t.seed: t.lm for t in trained}
    task = partial(_code_task, lms, data, verify, adaptive)

    def cost(job):  # an unchunked or adaptive stream is one slow stream
        return len(data[job[1]]) * (1 if isinstance(job[2], int) else 20)

    done = parallel.map_tasks(task, jobs, desc="LM coding, every seed", cost=cost)
    details = pd.DataFrame(done)
    details["coded_bits_per_byte"] = details["coded_bits"] / details["original_bytes"]
    details["ideal_bits_per_byte"] = details["ideal_bits"] / details["original_bytes"]
    if verify and not details["roundtrip_exact"].all():
        raise AssertionError("the LM round trip did not reproduce the input")
    lm = trained[0].lm
    rows = [{"compressor": "lm", "label": f"{lm.name} ({lm.n_params:,} params)", "seed": d.seed, "text": d.text,
             "chunking": d.chunking, "original_bytes": d.original_bytes, "compressed_bytes": d.coded_bytes,
             "raw_rate": rates.raw_rate(d.coded_bytes, d.original_bytes),
             "adjusted_rate": rates.adjusted_rate(d.coded_bytes, d.original_bytes, lm.n_params),
             "roundtrip_exact": d.roundtrip_exact} for d in details.itertuples()]
    classical = rates.baseline_rates(data, (chunk_size, None), verify, utf8=lm.tokenizer is not None)
    table = pd.concat([pd.DataFrame(rows), classical], ignore_index=True)
    table["bits_per_byte"] = 8 * table["raw_rate"]
    return Coding(table, details, chunk_size, verify)


ADAPTIVE = "unchunked, adaptive"


def _code_task(lms: dict, data: dict, verify: bool, adaptive: dict, job) -> dict:
    """One coding job (a task): seed's LM on one text, in chunks, unchunked, or adaptive."""
    seed, text, chunking = job
    lm = lms[seed]
    if chunking == ADAPTIVE:
        info = rates.adaptive_code(lm, data[text], seed=seed, verify=verify, **adaptive)
    else:
        info = rates.lm_code(lm, data[text], chunking, verify=verify, show_progress=False)
        chunking = rates.chunking_label(chunking)
    return {"seed": seed, "text": text, "chunking": chunking, **info}


def rates_table(table: pd.DataFrame) -> pd.DataFrame:
    """Raw rates in %, one row per compressor, one column per text and chunking (the LM: mean over seeds)."""
    wide = table.pivot_table(index=["compressor", "label"], columns=["text", "chunking"], values="raw_rate",
                             sort=False, aggfunc="mean")
    wide.columns = [f"{t} {c}" for t, c in wide.columns]
    return (100 * wide).round(2).reset_index()
