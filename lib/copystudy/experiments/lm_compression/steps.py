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
from copystudy.common.data import join_documents, split_documents, stdlib_source, text_corpus
from copystudy.compression.generalization import fitted_documents
from copystudy.common.report import run_path


@dataclass
class Texts:
    train_docs: dict  # what the LM trains on: the fitted documents
    train_text: bytes
    heldout_text: bytes  # what is coded: held-out documents, capped at eval_bytes
    train_sample: bytes  # a contiguous training sample of the same size
    heldout_docs: dict = field(default_factory=dict)
    validation_docs: dict = field(default_factory=dict)  # choose the training length and the adaptive rate
    ood_text: bytes = b""  # a text of another kind (the standard library's source), never trained on

    @property
    def validation_text(self) -> bytes:
        return join_documents(self.validation_docs)

    def describe(self, n_docs: int) -> str:
        return (f"{n_docs} documents: {len(self.train_docs)} for training ({len(self.train_text):,} bytes), "
                f"{len(self.validation_docs)} for validation ({len(self.validation_text):,} bytes), "
                f"{len(self.heldout_docs)} held out; {len(self.heldout_text):,} held-out bytes are coded, a training "
                f"sample of {len(self.train_sample):,} bytes, and {len(self.ood_text):,} bytes of Python source")


def texts(text_files, heldout_fraction: float, eval_bytes: int | None, validation_fraction: float,
          ood_bytes: int = 0, skip_source_bytes: int = 0, seed: int = 0) -> tuple[Texts, str]:
    """Documents split (whole) into held-out text (`split_documents`, as description_length splits
    them) and training documents, and these into the fitted documents and a validation tail
    (`generalization.fitted_documents`, the documents description_length's final model fits and
    validates on); the out-of-domain text: ood_bytes of standard-library source after the first
    skip_source_bytes (the sweep's). Returns the texts and a one-line description."""
    docs = text_corpus(text_files)
    train_docs, heldout_docs = split_documents(docs, heldout_fraction=heldout_fraction, seed=seed)
    fitted, validation = fitted_documents(train_docs, validation_fraction, seed)
    train_text = join_documents(fitted)
    heldout_text = join_documents(heldout_docs)[:eval_bytes]
    ood = b"".join(stdlib_source(ood_bytes + 200_000, skip_bytes=skip_source_bytes).values())[:ood_bytes]
    out = Texts(fitted, train_text, heldout_text, train_text[:len(heldout_text)], heldout_docs, validation, ood)
    return out, out.describe(len(docs))


@dataclass(frozen=True)
class MainRecipe:
    """How the main LM trains: at most `steps` steps (AdamW, warm-up, cosine decay over them), scored on
    the validation text every `eval_every` steps; the best weights are kept and training stops after
    `patience` scores without improvement, so the training length is chosen on the validation text."""

    steps: int
    batch_size: int = 32
    lr: float = 4e-3
    eval_every: int = 200
    patience: int = 3


@dataclass
class Trained:
    """The main LM of one seed, its loss curve, training time, its bits on every document, and the
    step its validation score chose."""

    seed: int
    lm: object
    losses: list
    seconds: float
    doc_bits: pd.DataFrame
    best_step: int | None = None
    stopped_early: bool | None = None
    validation_bits_per_byte: float | None = None


def start_main_models(model: dict, texts: Texts, recipe: MainRecipe, seeds):
    """The main LM once per seed (initialisation and training windows), each a task, handed to the
    cluster; `finish_main_models` collects them."""
    seeds = list(seeds)[:1] if (models.is_pretrained(model) and not recipe.steps) else list(seeds)
    task = partial(_main_model, model, texts, recipe)
    return parallel.submit_tasks(task, seeds, desc="main LM, one per seed")


def finish_main_models(pending, model: dict, steps: int) -> list[Trained]:
    """The trained main LMs; the first seed's model is saved to models/lm/ (a pretrained model used as
    it is saves only where it comes from, and is one model whatever the seeds)."""
    trained = pending.result()
    first = trained[0].lm
    if models.is_pretrained(model) and not steps:
        first.save_reference(run_path("models", "lm"))
    else:
        first.save(run_path("models", "lm"))
    return trained


def _main_model(model: dict, texts: Texts, recipe: MainRecipe, seed: int) -> Trained:
    """One seed's main LM (a task), stopped on the validation text (a byte-level model; a model with a
    tokenizer is fine-tuned for all its steps), with its code length of every fitted and held-out
    document."""
    from copystudy.compression.early_stopping import EarlyStopping

    lm = models.build(model, seed=seed)
    start = time.time()
    stopper = None
    if recipe.steps and lm.byte_level and len(texts.validation_text) > lm.context + 1:
        stopper = EarlyStopping(lm, texts.validation_text, recipe.eval_every, recipe.patience, recipe.steps - 1)
    losses = lm.fit(texts.train_text, steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr, seed=seed,
                    desc=f"train main LM, seed {seed}", stop=stopper) if recipe.steps else []
    if stopper is not None:
        stopper.restore()
    seconds = time.time() - start
    rows = [{"seed": seed, "split": split, "document": name, "bytes": len(text),
             "bits": float(lm.batched_bits(text).sum()) if lm.byte_level else lm.total_bits(text)}
            for split, docs in (("train", texts.train_docs), ("heldout", texts.heldout_docs))
            for name, text in docs.items()]
    return Trained(seed, lm, losses, seconds, pd.DataFrame(rows), stopper.best_step if stopper else len(losses),
                   bool(len(losses) < recipe.steps) if stopper else False, stopper.best_bits if stopper else None)


def choose_adaptive_lr(lm, validation_text: bytes, adaptive: dict, lrs, seed: int = 0) -> pd.DataFrame:
    """The adaptive coder's code length of the validation text (no held-out byte) under each learning
    rate in `lrs`, one task each, from the first seed's model; the shortest is chosen (column chosen)."""
    task = partial(_adaptive_bits, lm, bytes(validation_text), adaptive, seed)
    bits = parallel.map_tasks(task, list(lrs), desc="adaptive learning rate on the validation text")
    table = pd.DataFrame({"lr": list(lrs), "bits": bits})
    table["bits_per_byte"] = table["bits"] / max(1, len(validation_text))
    table["chosen"] = table["bits"] == table["bits"].min()
    return table


def _adaptive_bits(lm, text: bytes, adaptive: dict, seed: int, lr: float) -> float:
    return rates.adaptive_ideal_bits(lm, text, seed=seed, lr=lr, **adaptive)


def describe_model(trained: list[Trained], steps: int) -> str:
    lm = trained[0].lm
    tokens = f"tokenizer with {lm.vocab_size:,} tokens" if not lm.byte_level else "bytes as tokens"
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
    """Every seed's LM on the held-out text, the training sample and the out-of-domain text, chunked and
    unchunked, plus the adaptive coder on the held-out text (byte-level models), each a task; the
    classical compressors once (they have no seed), plain and given the LM's side information (primed
    with, or a dictionary trained on, the LM's training text: `rates.primed_rates`) on the held-out and
    out-of-domain texts.

    Returns a `Coding` (rates: one row per compressor, seed, text and chunking; details of the LM's coding)."""
    data = {"heldout": texts.heldout_text, "train": texts.train_sample, **({"ood": texts.ood_text} if texts.ood_text else {})}
    jobs = [(t.seed, text, c) for t in trained for text in data for c in (chunk_size, None)]
    if trained[0].lm.byte_level and adaptive.get("block"):
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
    classical = rates.baseline_rates(data, (chunk_size, None), verify, utf8=not lm.byte_level)
    primed = rates.primed_rates({k: v for k, v in data.items() if k != "train"}, texts.train_text, (chunk_size, None),
                                verify, utf8=not lm.byte_level)
    table = pd.concat([pd.DataFrame(rows), classical, primed], ignore_index=True)
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
