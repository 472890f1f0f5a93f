"""Memorised bits of individual works (after Morris et al. 2025): bits(x | model trained without x)
minus bits(x | model trained with x), with the without-model trained on the same corpus with x swapped
for held-out text of the same length (`swapped`): same bytes, same steps, same windows.

The one place the study computes memorised bits (`memorized_bits`); copyright_risk uses it too.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
import pandas as pd

from copystudy.common import parallel
from copystudy.compression.code_lengths import byte_bits


# ---- per-work memorised bits ------------------------------------------------------------------------
def memorized_bits(bits_without, bits_with):
    """Bits of a work the weights hold (Morris et al. 2025): its code length under a model that never
    saw it minus its code length under a model trained with it (floats, arrays or columns alike)."""
    if np.isscalar(bits_without) and np.isscalar(bits_with):
        return float(bits_without) - float(bits_with)
    return bits_without - bits_with


def choose_works(docs: dict[str, bytes], n_works: int, min_bytes: int, max_bytes: int,
                 seed: int = 0) -> list[str]:
    """n_works document names whose sizes lie in [min_bytes, max_bytes], in a seeded random order."""
    names = sorted(k for k, v in docs.items() if min_bytes <= len(v) <= max_bytes)
    if len(names) < n_works:
        raise ValueError(f"only {len(names)} documents have {min_bytes}..{max_bytes} bytes; "
                         f"n_works={n_works} needs more (widen work_bytes or lower n_works)")
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[i] for i in order[:n_works]]


def memorization_corpus(train_docs: dict[str, bytes], works: list[str], duplicated: str | None,
                        copies: int, max_bytes: int | None = None, seed: int = 0) -> dict[str, bytes]:
    """The training set of the with-model: the works, other training documents (in a seeded random
    order, up to max_bytes in all) and copies-1 extra copies of the duplicated work."""
    missing = [w for w in works if w not in train_docs]
    if missing:
        raise ValueError(f"works {missing} are not training documents")
    if duplicated is not None and duplicated not in works:
        raise ValueError(f"duplicated work {duplicated!r} must be one of the works {works}")
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    corpus = {w: train_docs[w] for w in works}
    size = sum(len(v) for v in corpus.values())
    others = [k for k in sorted(train_docs) if k not in corpus]
    for i in np.random.default_rng(seed).permutation(len(others)):
        name = others[i]
        if max_bytes is not None and size + len(train_docs[name]) > max_bytes:
            continue
        corpus[name] = train_docs[name]
        size += len(train_docs[name])
    if duplicated is not None:
        for c in range(1, copies):
            corpus[f"{duplicated}#copy{c}"] = train_docs[duplicated]
    return corpus


def without(corpus: dict[str, bytes], *works: str) -> dict[str, bytes]:
    """The corpus with every copy of each of `works` removed."""
    def is_copy(key, w):
        return key == w or key.startswith(f"{w}#copy")
    return {k: v for k, v in corpus.items() if not any(is_copy(k, w) for w in works)}


def swapped(corpus: dict[str, bytes], work: str, substitute: bytes) -> dict[str, bytes]:
    """The corpus with every copy of `work` replaced, in its place, by `substitute` of the same length:
    the without-model's training set, of exactly as many bytes, laid out alike."""
    if work not in corpus:
        raise ValueError(f"{work!r} is not in the corpus")
    if len(substitute) != len(corpus[work]):
        raise ValueError(f"the substitute for {work!r} has {len(substitute)} bytes, the work {len(corpus[work])}")
    return {k: (bytes(substitute) if k == work or k.startswith(f"{work}#copy") else v) for k, v in corpus.items()}


def substitutes(works: dict[str, bytes], pool: dict[str, bytes]) -> dict[str, tuple[str, bytes]]:
    """For every work, a cut of exactly its length from one document of `pool` (held-out text): the
    longest documents first, several cuts from one document when it is long enough, no two cuts
    overlapping. Returns {work: (label "document[start:end]", bytes)}."""
    order = sorted(pool, key=lambda k: (-len(pool[k]), k))
    used = {k: 0 for k in order}
    out = {}
    for work, text in works.items():
        n = len(text)
        host = next((k for k in order if len(pool[k]) - used[k] >= n), None)
        if host is None:
            raise ValueError(f"no held-out document has {n} unused bytes left to stand in for {work!r}")
        start = used[host]
        out[work] = (f"{host}[{start}:{start + n}]", bytes(pool[host][start:start + n]))
        used[host] += n
    return out


def memorization_runs(corpus: dict[str, bytes], works: dict[str, bytes], stand_ins: dict[str, bytes],
                      train: Callable[[bytes, int], object], controls: dict[str, bytes] | None = None, seeds=(0,),
                      join: Callable[[dict], bytes] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The swap design of memorised bits, all models in one map_tasks call.

    For every seed, train(data, seed) gives one with-model on `corpus` and, for each work, one
    without-model on swapped(corpus, work, stand_ins[work]): the same number of bytes, the same
    windows, the same steps; only the work differs. Returns (one row per model: seed, swapped work,
    training bytes and steps; one row per difference: seed, text, kind, swap, bits_with, bits_without,
    memorized_bits). A work's difference is under its own without-model; a control (held-out text
    no model saw) gets one difference per without-model: training noise of the same design."""
    join = join or (lambda docs: b"".join(docs[k] for k in sorted(docs)))
    controls = controls or {}
    texts = {**works, **controls}
    data = {None: join(corpus), **{w: join(swapped(corpus, w, stand_ins[w])) for w in works}}
    jobs = [(seed, which) for seed in seeds for which in data]
    done = parallel.map_tasks(partial(_text_bits, train, data, texts), jobs, desc="memorisation models",
                              cost=lambda job: len(data[job[1]]))
    result = dict(zip(jobs, done))
    models = pd.DataFrame([{"seed": seed, "swapped": which, "train_bytes": result[seed, which]["train_bytes"],
                            "train_steps": result[seed, which]["train_steps"]} for seed, which in jobs])
    rows = []
    for seed in seeds:
        with_bits = result[seed, None]["bits"]
        for w in works:
            without_bits = result[seed, w]["bits"]
            for name in [w, *controls]:
                rows.append({"seed": seed, "text": name, "kind": "training work" if name in works else "held-out control",
                             "swap": w, "bits_with": with_bits[name], "bits_without": without_bits[name]})
    diffs = pd.DataFrame(rows)
    diffs["memorized_bits"] = memorized_bits(diffs["bits_without"], diffs["bits_with"])
    return models, diffs


def _text_bits(train, data: dict, texts: dict, job) -> dict:
    """One model (a task): trained with `seed` on data[which]; its training size and steps and the bits
    of every text."""
    seed, which = job
    model = train(data[which], seed)
    return {"train_bytes": len(data[which]), "train_steps": getattr(model, "train_steps", None),
            "bits": {name: float(byte_bits(model, text).sum()) for name, text in texts.items()}}


def memorization_table(diffs: pd.DataFrame, sizes: dict[str, int], copies: dict[str, int] | None = None,
                       level: float = 0.95) -> pd.DataFrame:
    """Memorised bits of each work and control, mean over seeds with a t interval over seeds (a
    control's differences are first averaged over the without-models of one seed)."""
    from copystudy.common.intervals import mean_ci

    copies = copies or {}
    rows = []
    order = list(dict.fromkeys(diffs.sort_values("kind", kind="stable", ascending=False)["text"]))  # works, then controls
    for name, g in sorted(diffs.groupby("text", sort=False), key=lambda item: order.index(item[0])):
        per_seed = g.groupby("seed")[["memorized_bits", "bits_with", "bits_without"]].mean()
        mean, lo, hi = mean_ci(per_seed["memorized_bits"], level)
        rows.append({"work": name, "kind": g["kind"].iloc[0], "bytes": sizes[name], "copies": copies.get(name, 0),
                     "n_seeds": len(per_seed), "bits_with": float(per_seed["bits_with"].mean()),
                     "bits_without": float(per_seed["bits_without"].mean()), "memorized_bits": mean,
                     "memorized_bits_low": lo, "memorized_bits_high": hi})
    table = pd.DataFrame(rows)
    for col in ("bits_with", "bits_without", "memorized_bits", "memorized_bits_low", "memorized_bits_high"):
        table[col.replace("bits", "bits_per_byte", 1)] = table[col] / table["bytes"]
    return table


def train_fixed_steps(spec: dict, batch_size: int, lr: float, steps: int, data: bytes, seed: int):
    """train(data, seed) -> a CausalLM trained from scratch for exactly `steps` steps on all of `data`:
    the memorisation models, where a model with a work and one without it must train alike."""
    from copystudy import models

    model = models.build(spec, seed=seed)
    model.fit(bytes(data), steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress_bar=False)
    model.train_steps, model.fit_bytes = steps, len(data)
    return model
