"""Notebook 02: memorised bits per work from a swap design (the without-model trains on the same corpus
with the work swapped for held-out text of the same length), with a duplicated work and held-out
controls. The quantities are in `copystudy.memorization.memorized_bits`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pandas as pd

from copystudy.memorization import memorized_bits as mb


def memorization_trainer(model: dict, batch_size: int, lr: float, steps: int):
    """train(data, seed) for the with- and without-models: exactly `steps` steps, no early stopping."""
    return partial(mb.train_fixed_steps, dict(model), batch_size, lr, steps)


# ---- memorised bits ---------------------------------------------------------------------------------
@dataclass
class Design:
    works: list[str]  # the first is duplicated
    corpus: dict[str, bytes]  # the with-model's training set
    stand_ins: dict[str, bytes]  # work -> held-out text of its length
    stand_in_labels: dict[str, str]  # work -> "document[start:end]"
    controls: dict[str, bytes]  # held-out texts no model sees


def memorization_design(train_docs: dict, heldout_docs: dict, n_works: int, work_bytes, duplicate_copies: int,
                        train_bytes: int, n_controls: int, seed: int = 0) -> Design:
    """The works measured (the first duplicated), the with-model training set, a held-out stand-in for
    each work, and controls from held-out documents that host no stand-in."""
    works = mb.choose_works(train_docs, n_works, work_bytes[0], work_bytes[1], seed=seed)
    corpus = mb.memorization_corpus(train_docs, works, works[0], duplicate_copies, max_bytes=train_bytes, seed=seed)
    cuts = mb.substitutes({w: train_docs[w] for w in works}, heldout_docs)
    hosts = {label.rsplit("[", 1)[0] for label, _ in cuts.values()}
    free = sorted((k for k in heldout_docs if k not in hosts and heldout_docs[k]), key=lambda k: (-len(heldout_docs[k]), k))
    if len(free) < n_controls:
        raise ValueError(f"only {len(free)} held-out documents are left for controls after the stand-ins; "
                         f"n_controls={n_controls} needs more (lower n_controls or n_works)")
    controls = {k: heldout_docs[k][:work_bytes[1]] for k in free[:n_controls]}
    return Design(works, corpus, {w: b for w, (_, b) in cuts.items()}, {w: lbl for w, (lbl, _) in cuts.items()},
                  controls)


@dataclass
class Memorized:
    """The swap design's results: one row per model, one row per difference, the table per work and control."""

    design: Design
    models: pd.DataFrame
    diffs: pd.DataFrame
    table: pd.DataFrame
    copies: int  # copies of the duplicated work, design.works[0]


def memorized(design: Design, train_docs: dict, train, seeds, copies: int) -> Memorized:
    """Every with- and without-model of the design trained and scored (`memorized_bits.memorization_runs`)."""
    works = {w: train_docs[w] for w in design.works}
    models, diffs = mb.memorization_runs(design.corpus, works, design.stand_ins, train, design.controls, seeds)
    counts = {w: sum(1 for k in design.corpus if k == w or k.startswith(f"{w}#copy")) for w in works}
    sizes = {**{w: len(t) for w, t in works.items()}, **{c: len(t) for c, t in design.controls.items()}}
    table = mb.memorization_table(diffs, sizes, counts)
    table.insert(4, "stand_in", table["work"].map(design.stand_in_labels))
    return Memorized(design, models, diffs, table, copies)


def sizes_equal(models: pd.DataFrame) -> bool:
    """Did every without-model train on exactly the bytes and steps of its seed's with-model?"""
    ref = models[models["swapped"].isna()].set_index("seed")
    rest = models[models["swapped"].notna()]
    return bool(len(rest) and all(ref.loc[r.seed, "train_bytes"] == r.train_bytes and
                                  ref.loc[r.seed, "train_steps"] == r.train_steps for r in rest.itertuples()))
