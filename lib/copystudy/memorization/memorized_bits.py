"""Memorised bits of individual works (after Morris et al. 2025), with a noise floor.

memorised bits of a work x = bits(x | models trained without x) - bits(x | models trained with x).

The design (`Design`): a base corpus, works at several copy counts (1, 2, 4, 8), and `n_models`
models. Each work is in the training set of half the models (a seeded balanced draw) and out of the
other half; when it is out, every copy of it is replaced, in place, by a stand-in of exactly its
length, cut from a document no model trains on, and each of its out-models uses a stand-in from a
different document. So every model trains on the same number of bytes, laid out alike, for the same
steps; a work's out-models differ from its in-models only in that work (and in the other works drawn
in or out, which averages over the draw).

The noise floor: controls are texts no model trains on (cut from documents that host no stand-in).
For every control and every work's in/out pattern, the same difference (mean over the pattern's out-
models minus mean over its in-models) is what the statistic gives when nothing was memorised: its
distribution is the null, and a work counts as memorised only above the null's 95th percentile.

This is the one place the study computes memorised bits (`memorized_bits`); copyright_risk uses it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
import pandas as pd

from copystudy.common import parallel
from copystudy.compression.code_lengths import byte_bits


def memorized_bits(bits_without, bits_with):
    """Bits of a work the weights hold (Morris et al. 2025): its code length under a model that never
    saw it minus its code length under a model trained with it (floats, arrays or columns alike)."""
    if np.isscalar(bits_without) and np.isscalar(bits_with):
        return float(bits_without) - float(bits_with)
    return bits_without - bits_with


@dataclass
class Design:
    """Works with their copies, the base corpus, the in/out draw, stand-ins and controls."""

    works: dict[str, bytes]
    copies: dict[str, int]
    base: dict[str, bytes]
    member: np.ndarray  # bool [n_works, n_models]: work i in model m's training set
    stand_ins: dict[str, list[tuple[str, bytes]]]  # work -> [(label "document[a:b]", bytes)], one per out-model
    controls: dict[str, bytes]
    seeds: list[int] = field(default_factory=list)  # the training seed of each model

    @property
    def n_models(self) -> int:
        return self.member.shape[1]

    def training_set(self, m: int) -> dict[str, bytes]:
        """Model m's documents: the base, and each work's copies or, when it is out, its stand-in's."""
        docs = dict(self.base)
        for i, (w, text) in enumerate(self.works.items()):
            if self.member[i, m]:
                body = text
            else:
                body = self.stand_ins[w][int((~self.member[i, :m]).sum())][1]
            for c in range(self.copies[w]):
                docs[f"{w}#copy{c}"] = body
        return docs


def choose_works(docs: dict[str, bytes], n_works: int, min_bytes: int, max_bytes: int, seed: int = 0) -> list[str]:
    """n_works document names whose sizes lie in [min_bytes, max_bytes], in a seeded random order."""
    names = sorted(k for k, v in docs.items() if min_bytes <= len(v) <= max_bytes)
    if len(names) < n_works:
        raise ValueError(f"only {len(names)} documents have {min_bytes}..{max_bytes} bytes; "
                         f"n_works={n_works} needs more (widen work_bytes or lower n_works)")
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[i] for i in order[:n_works]]


def balanced_membership(n_works: int, n_models: int, seed: int = 0) -> np.ndarray:
    """bool [n_works, n_models]: each work in exactly half the models (n_models even), drawn with `seed`."""
    if n_models < 2 or n_models % 2:
        raise ValueError(f"n_models must be an even number >= 2, got {n_models}")
    rng = np.random.default_rng(seed)
    member = np.zeros((n_works, n_models), dtype=bool)
    for i in range(n_works):
        member[i, rng.permutation(n_models)[:n_models // 2]] = True
    return member


def cut_stand_ins(works: dict[str, bytes], pool: dict[str, bytes], per_work: int) -> dict[str, list[tuple[str, bytes]]]:
    """For every work, `per_work` cuts of exactly its length, each from a different document of `pool`,
    no two cuts overlapping: the documents with the most room left first. Returns
    {work: [(label "document[start:end]", bytes), ...]}."""
    used = {k: 0 for k in pool}
    out = {}
    for work, text in sorted(works.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        n = len(text)
        hosts = sorted((k for k in pool if len(pool[k]) - used[k] >= n), key=lambda k: (used[k] - len(pool[k]), k))
        if len(hosts) < per_work:
            raise ValueError(f"only {len(hosts)} unseen documents have {n} bytes left to stand in for {work!r}; "
                             f"{per_work} are needed (lower n_works or memorization_train_bytes)")
        cuts = []
        for host in hosts[:per_work]:
            a = used[host]
            cuts.append((f"{host}[{a}:{a + n}]", bytes(pool[host][a:a + n])))
            used[host] += n
        out[work] = cuts
    return {w: out[w] for w in works}


def stand_in_hosts(design: Design) -> set[str]:
    """The documents stand-ins are cut from."""
    return {label.rsplit("[", 1)[0] for cuts in design.stand_ins.values() for label, _ in cuts}


def make_design(train_docs: dict[str, bytes], unseen_docs: dict[str, bytes], spec: "DesignSpec") -> Design:
    """The works (sizes in spec.work_bytes, copies cycling through spec.copy_levels), a base corpus of
    other training documents up to spec.base_bytes, a balanced in/out draw over spec.n_models models, a
    stand-in from a different document for each out-model of each work, and spec.n_controls controls
    of spec.control_bytes from documents that host no stand-in. Stand-ins and controls come from
    `unseen_docs` plus the training documents the design leaves unused: no model trains on them."""
    names = choose_works(train_docs, spec.n_works, spec.work_bytes[0], spec.work_bytes[1], spec.seed)
    works = {w: train_docs[w] for w in names}
    copies = {w: spec.copy_levels[i % len(spec.copy_levels)] for i, w in enumerate(names)}
    rng = np.random.default_rng(spec.seed + 1)
    others = [k for k in sorted(train_docs) if k not in works]
    base, size = {}, 0
    for i in rng.permutation(len(others)):
        if size + len(train_docs[others[i]]) <= spec.base_bytes:
            base[others[i]] = train_docs[others[i]]
            size += len(train_docs[others[i]])
    pool = {**{k: v for k, v in train_docs.items() if k not in works and k not in base}, **unseen_docs}
    by_size = sorted(pool, key=lambda k: (-len(pool[k]), k))
    controls_from = by_size[spec.n_hosts:]
    stand_ins = cut_stand_ins(works, {k: pool[k] for k in by_size[:spec.n_hosts]}, spec.n_models // 2)
    pieces = [(k, a) for k in controls_from for a in range(0, len(pool[k]) - spec.control_bytes + 1, spec.control_bytes)]
    if len(pieces) < spec.n_controls:
        raise ValueError(f"only {len(pieces)} control pieces of {spec.control_bytes} bytes are left; lower n_controls")
    picks = sorted(np.random.default_rng(spec.seed + 2).choice(len(pieces), spec.n_controls, replace=False))
    controls = {f"{pieces[i][0]}[{pieces[i][1]}:{pieces[i][1] + spec.control_bytes}]":
                pool[pieces[i][0]][pieces[i][1]:pieces[i][1] + spec.control_bytes] for i in picks}
    member = balanced_membership(len(works), spec.n_models, spec.seed + 3)
    return Design(works, copies, base, member, stand_ins, controls, list(range(spec.n_models)))


@dataclass(frozen=True)
class DesignSpec:
    """The memorisation design's sizes (the notebook's parameters)."""

    n_works: int = 20
    work_bytes: tuple[int, int] = (300, 1500)
    copy_levels: tuple[int, ...] = (1, 2, 4, 8)
    base_bytes: int = 24000
    n_models: int = 6
    n_hosts: int = 6
    n_controls: int = 12
    control_bytes: int = 800
    seed: int = 0


def shuffled_docs(docs: dict[str, bytes], seed: int) -> bytes:
    """Documents concatenated in a seeded random order (copies of a work land apart)."""
    names = sorted(docs)
    return b"".join(docs[names[i]] for i in np.random.default_rng(seed).permutation(len(names)))


def train_fixed_steps(spec: dict, batch_size: int, lr: float, steps: int, data: bytes, seed: int):
    """train(data, seed) -> a CausalLM trained from scratch for exactly `steps` steps on all of `data`:
    the memorisation models, which must all train alike."""
    from copystudy import models

    model = models.build(spec, seed=seed)
    model.fit(bytes(data), steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress_bar=False)
    model.train_steps, model.fit_bytes = steps, len(data)
    return model


def score_models(design: Design, train: Callable[[bytes, int], object]) -> pd.DataFrame:
    """Every model of the design trained (one task each) and made to code every work and control alone:
    one row per (model, text) with its bits, and each model's training bytes and steps."""
    texts = {**design.works, **design.controls}
    done = parallel.map_tasks(partial(train_and_score, design, train, texts), list(range(design.n_models)),
                              desc="memorisation models")
    return pd.DataFrame([row for rows in done for row in rows])


def train_and_score(design: Design, train, texts: dict, m: int) -> list[dict]:
    """Model m (a task): trained on its training set, shuffled with its seed; the bits of every text."""
    data = shuffled_docs(design.training_set(m), design.seeds[m])
    model = train(data, design.seeds[m])
    return [{"model": m, "text": name, "bytes": len(text), "bits": float(byte_bits(model, text).sum()),
             "train_bytes": len(data), "train_steps": getattr(model, "train_steps", None)}
            for name, text in texts.items()]


def pattern_difference(bits: np.ndarray, member: np.ndarray) -> float:
    """Mean bits over the out-models minus mean over the in-models (member: bool per model)."""
    return float(bits[~member].mean() - bits[member].mean())


def work_table(design: Design, scores: pd.DataFrame) -> pd.DataFrame:
    """Memorised bits of every work (out-models minus in-models), in bits and per byte."""
    bits = scores.pivot(index="text", columns="model", values="bits")
    rows = []
    for i, (w, text) in enumerate(design.works.items()):
        diff = pattern_difference(bits.loc[w].to_numpy(), design.member[i])
        rows.append({"work": w, "bytes": len(text), "copies": design.copies[w],
                     "stand_ins": "; ".join(label for label, _ in design.stand_ins[w]),
                     "bits_in": float(bits.loc[w].to_numpy()[design.member[i]].mean()),
                     "bits_out": float(bits.loc[w].to_numpy()[~design.member[i]].mean()),
                     "memorized_bits": diff, "memorized_bits_per_byte": diff / len(text)})
    return pd.DataFrame(rows)


def null_table(design: Design, scores: pd.DataFrame) -> pd.DataFrame:
    """The null: every control under every work's in/out pattern, in bits and per byte."""
    bits = scores.pivot(index="text", columns="model", values="bits")
    rows = [{"control": c, "pattern_of": w, "bytes": len(text),
             "difference_bits": (d := pattern_difference(bits.loc[c].to_numpy(), design.member[i])),
             "difference_bits_per_byte": d / len(text)}
            for c, text in design.controls.items() for i, w in enumerate(design.works)]
    return pd.DataFrame(rows)


def null_quantile(null: pd.DataFrame, q: float = 0.95) -> float:
    """The null's q-quantile of the per-byte difference: the floor a work must clear to count as memorised."""
    return float(np.quantile(null["difference_bits_per_byte"], q))


def dose_response(works: pd.DataFrame, floor: float, n_boot: int = 2000, level: float = 0.95,
                  seed: int = 0) -> pd.DataFrame:
    """Per copy count: mean memorised bits per byte over its works with a bootstrap interval over the
    works, and the share of works above the null's floor with a Wilson interval."""
    from copystudy.common.intervals import wilson

    rng = np.random.default_rng(seed)
    rows = []
    for c, g in works.groupby("copies"):
        v = g["memorized_bits_per_byte"].to_numpy()
        boots = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1)
        lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
        k = int((v > floor).sum())
        share, slo, shi = wilson(k, len(v), level)
        rows.append({"copies": int(c), "n_works": len(v), "memorized_bits_per_byte": float(v.mean()),
                     "memorized_bits_per_byte_low": float(lo), "memorized_bits_per_byte_high": float(hi),
                     "memorized_bits": float(g["memorized_bits"].mean()), "n_above_null": k,
                     "share_above_null": share, "share_above_null_low": slo, "share_above_null_high": shi})
    return pd.DataFrame(rows)


def dose_slope(works: pd.DataFrame, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Least-squares slope of memorised bits per byte on log2(copies): bits per byte gained per
    doubling of the copies, with a bootstrap interval over works."""
    x = np.log2(works["copies"].to_numpy(float))
    y = works["memorized_bits_per_byte"].to_numpy(float)
    rng = np.random.default_rng(seed)

    def slope(idx):
        xs, ys = x[idx], y[idx]
        return float(np.polyfit(xs, ys, 1)[0]) if np.ptp(xs) > 0 else np.nan

    boots = np.array([slope(rng.integers(0, len(x), len(x))) for _ in range(n_boot)])
    lo, hi = np.nanquantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return {"slope": slope(np.arange(len(x))), "low": float(lo), "high": float(hi)}
