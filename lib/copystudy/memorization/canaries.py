"""Planted canaries: does a language model memorise a random secret it saw k times?

After Carlini et al. 2019 ("The Secret Sharer") and 2022 ("Quantifying Memorization Across Neural
Language Models").

- A canary is one line of text in a fixed format, `<prefix><secret>`, e.g.
  ``account 0417 has PIN 4 8 1 9 2 7``: the prefix names the account, the secret is `n_digits` random
  digits separated by spaces. The format space has 10**n_digits secrets.
- Each canary is planted `dup` times (1, 2, 4, 8, ...) as its own line at random line breaks of the
  training text.
- k-extractable: greedy decoding from the prefix reproduces the secret exactly.
- exposure (bits) = log2 |R| - log2 rank(canary among R), R = the canary plus |R|-1 secrets drawn at
  random from the same format, ranked by the model's code length (bits) for the secret given the
  prefix (rank 1 = most likely). This is the *sampled rank estimate*: exposure runs from 0 (ranked
  last) to log2 |R| (ranked first); it cannot exceed log2 |R| however strongly the canary is memorised,
  so the full format space (10**n_digits) is not enumerated. `exposure_skewnorm` is the paper's
  extrapolation (a skew-normal fitted to the candidates' code lengths, exposure =
  -log2 of the fitted probability that a random secret gets at most the canary's code length), which
  can go beyond log2 |R|, up to log2 of the full space; `exposure_extrapolated` is the same with a
  normal fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

# score_fn(prefix, suffixes) -> bits of each suffix given the prefix, shape [len(suffixes)]
ScoreFn = Callable[[bytes, Sequence[bytes]], np.ndarray]


@dataclass(frozen=True)
class Canary:
    prefix: bytes  # e.g. b"account 0417 has PIN "
    secret: bytes  # e.g. b"4 8 1 9 2 7"
    dup: int  # how many times it is planted in the training text

    @property
    def text(self) -> bytes:
        return self.prefix + self.secret


def random_secret(rng: np.random.Generator, n_digits: int = 6) -> bytes:
    """n_digits random decimal digits separated by spaces, e.g. b"4 8 1 9 2 7"."""
    return " ".join(str(d) for d in rng.integers(0, 10, n_digits)).encode()


def make_canaries(dups: Sequence[int] = (1, 2, 4, 8, 16), per_dup: int = 4, n_digits: int = 6,
                  seed: int = 0) -> list[Canary]:
    """per_dup canaries for every duplication count, each with its own account number and secret."""
    if per_dup < 1 or any(int(d) < 1 for d in dups):
        raise ValueError(f"per_dup and every duplication count must be >= 1, got {per_dup}, {list(dups)}")
    rng = np.random.default_rng(seed)
    accounts = rng.choice(10_000, size=len(dups) * per_dup, replace=False)
    out, i = [], 0
    for dup in dups:
        for _ in range(per_dup):
            out.append(Canary(f"account {accounts[i]:04d} has PIN ".encode(), random_secret(rng, n_digits), int(dup)))
            i += 1
    return out


def analytic_bits(n_digits: int) -> float:
    """Information of a secret of n_digits uniform random digits: log2(10**n_digits) bits (19.9 for 6)."""
    return n_digits * math.log2(10)


def template_lines(n: int, n_digits: int = 6, taken: Sequence[Canary] = (), seed: int = 0) -> list[Canary]:
    """n lines of the canary format, each with a fresh account (none of `taken`'s) and a fresh random
    secret, planted once each (dup 1). They are training text, not works: a model that sees them learns
    the format and that secrets are uniform, so a reference that never saw a canary's secret pays about
    analytic_bits for it instead of betting on the few secrets it memorised."""
    used = {c.prefix for c in taken}
    free = [a for a in range(10_000) if f"account {a:04d} has PIN ".encode() not in used]
    if n > len(free):
        raise ValueError(f"template_lines: {n} lines need {n} free account numbers, only {len(free)} are left")
    rng = np.random.default_rng(seed)
    accounts = rng.choice(free, size=n, replace=False)
    return [Canary(f"account {a:04d} has PIN ".encode(), random_secret(rng, n_digits), 1) for a in accounts]


def plant(docs: dict[str, bytes], canaries: Sequence[Canary], seed: int = 0) -> dict[str, bytes]:
    """Insert every canary `dup` times, each copy as its own line at a random line break of a random
    document (documents chosen in proportion to their size). Returns new documents, same keys."""
    rng = np.random.default_rng(seed)
    names = sorted(docs)
    sizes = np.array([len(docs[k]) for k in names], dtype=float)
    inserts: dict[str, list[tuple[int, bytes]]] = {k: [] for k in names}
    for c in canaries:
        for _ in range(c.dup):
            name = names[rng.choice(len(names), p=sizes / sizes.sum())]
            text = docs[name]
            breaks = [i + 1 for i in range(len(text)) if text[i] == 10] or [len(text)]
            inserts[name].append((int(rng.choice(breaks)), c.text + b"\n"))
    out = {}
    for name in names:
        text, pieces, last = docs[name], [], 0
        for pos, line in sorted(inserts[name], key=lambda x: x[0]):
            if pos == len(text) and not text.endswith(b"\n"):
                line = b"\n" + line
            pieces += [text[last:pos], line]
            last = pos
        out[name] = b"".join(pieces) + text[last:]
    return out


def is_extractable(generate: Callable[[bytes, int], bytes], canary: Canary, context: bytes = b"\n") -> bool:
    """Greedy decoding from `context + prefix` reproduces the secret exactly (k = len(prefix))."""
    return generate(context + canary.prefix, len(canary.secret)) == canary.secret


def exposure_from_bits(canary_bits: float, candidate_bits: np.ndarray) -> float:
    """log2 |R| - log2 rank, R = canary + candidates; rank 1 = fewest bits. Ties count against
    the canary (a model that cannot tell them apart shows no exposure)."""
    candidate_bits = np.asarray(candidate_bits, dtype=float)
    rank = 1 + int(np.sum(candidate_bits <= canary_bits))
    return math.log2(len(candidate_bits) + 1) - math.log2(rank)


def exposure_extrapolated(canary_bits: float, candidate_bits: np.ndarray, space_size: float) -> float:
    """Secret Sharer's estimate: -log2 P(candidate bits <= canary bits) under a normal fitted to the
    candidates, capped at log2 of the whole format space."""
    from scipy.stats import norm

    mu, sd = float(np.mean(candidate_bits)), float(np.std(candidate_bits)) + 1e-9
    log2_p = norm.logcdf((canary_bits - mu) / sd) / math.log(2)
    return float(min(-log2_p, math.log2(space_size)))


def exposure_skewnorm(canary_bits: float, candidate_bits: np.ndarray, space_size: float | None = None) -> float:
    """The Secret Sharer's extrapolated exposure: -log2 P(X <= canary bits) for X skew-normal, fitted
    (maximum likelihood, scipy.stats.skewnorm) to the candidates' code lengths. The fit reaches into
    the tail the |R| candidates cannot rank, so the estimate can exceed log2 |R|; it is capped at
    log2 space_size (the whole format space: no secret can be ranked above all of it) and is that cap
    when the fitted probability underflows (a canary far below every candidate); uncapped, that case
    is inf."""
    from scipy.stats import skewnorm

    x = np.asarray(candidate_bits, dtype=float)
    cap = math.inf if space_size is None else math.log2(space_size)
    if x.size < 3 or np.ptp(x) == 0:  # no spread to fit: only "below all" / "not below all" is known
        return cap if canary_bits < x.min() else 0.0
    a, loc, scale = skewnorm.fit(x)
    with np.errstate(all="ignore"):
        p = float(skewnorm.cdf(canary_bits, a, loc, scale))
    if not p > 0 or not math.isfinite(p):  # underflow (or the cdf's cancellation) far in the left tail
        return cap
    return float(min(max(-math.log2(min(p, 1.0)), 0.0), cap))


def exposure(score: ScoreFn, canary: Canary, n_candidates: int = 999, seed: int = 0,
             context: bytes = b"\n") -> dict:
    """Exposure of a canary among n_candidates random secrets of its format, scored by `score`.

    Returns {"bits": canary's code length, "exposure": sampled-rank exposure (bits, <= log2
    (n_candidates + 1)), "exposure_skewnorm": the Secret Sharer's skew-normal extrapolation,
    "exposure_extrapolated": normal-fit estimate, "rank": rank among R}.
    """
    rng = np.random.default_rng(seed)
    n_digits = len(canary.secret.split())
    candidates, seen = [], {canary.secret}
    while len(candidates) < n_candidates:
        s = random_secret(rng, n_digits)
        if s not in seen:
            seen.add(s)
            candidates.append(s)
    bits = np.asarray(score(context + canary.prefix, [canary.secret] + candidates), dtype=float)
    return {
        "bits": float(bits[0]),
        "exposure": exposure_from_bits(bits[0], bits[1:]),
        "exposure_skewnorm": exposure_skewnorm(bits[0], bits[1:], 10.0**n_digits),
        "exposure_extrapolated": exposure_extrapolated(bits[0], bits[1:], 10.0**n_digits),
        "rank": 1 + int(np.sum(bits[1:] <= bits[0])),
    }


def lm_scorer(lm, batch_size: int = 256) -> ScoreFn:
    """A score function for a copystudy CausalLM: bits of each suffix given the prefix (one batched
    forward pass per batch of candidates; prefix + suffix must fit in the model's context)."""
    import torch

    def score(prefix: bytes, suffixes: Sequence[bytes]) -> np.ndarray:
        lengths = {len(s) for s in suffixes}
        if len(lengths) != 1:
            raise ValueError("lm_scorer: all suffixes must have the same length")
        n = lengths.pop()
        if len(prefix) + n > lm.context:
            raise ValueError(f"prefix + suffix ({len(prefix) + n} bytes) exceed the context ({lm.context})")
        model = lm.model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(suffixes), batch_size):
                seq = torch.tensor([list(prefix + s) for s in suffixes[i:i + batch_size]], dtype=torch.long)
                logp = torch.log_softmax(model(input_ids=seq).logits.double(), -1)
                target = seq[:, len(prefix):]
                lp = logp[:, len(prefix) - 1:-1].gather(-1, target[..., None])[..., 0]
                out.append((-lp.sum(1) / math.log(2)).numpy())
        return np.concatenate(out)

    return score


def canary_report(lm, canaries: Sequence[Canary], n_candidates: int = 999, seed: int = 0):
    """One row per canary: dup, extractable (greedy), bits, exposure (sampled rank and extrapolated)."""
    import pandas as pd

    score = lm_scorer(lm)
    rows = []
    for i, c in enumerate(canaries):
        e = exposure(score, c, n_candidates, seed + i)
        rows.append({"prefix": c.prefix.decode(), "secret": c.secret.decode(), "dup": c.dup,
                     "extractable": is_extractable(lm.generate, c), **e})
    return pd.DataFrame(rows)


def summarize(report, by=("dup",)):
    """Mean extractable fraction and exposures per group (e.g. per duplication count), from
    canary_report rows (possibly stacked over model sizes with extra columns)."""
    return (report.groupby(list(by))
            .agg(n=("extractable", "size"), extractable_fraction=("extractable", "mean"),
                 exposure=("exposure", "mean"), exposure_extrapolated=("exposure_extrapolated", "mean"),
                 bits=("bits", "mean"))
            .reset_index())


def text_budget(docs: dict[str, bytes], max_bytes: int | None) -> dict[str, bytes]:
    """The smallest documents first until max_bytes (None = all): a smaller corpus means more epochs,
    so canaries are seen more often within a fixed training budget."""
    if max_bytes is None:
        return dict(docs)
    out, total = {}, 0
    for name in sorted(docs, key=lambda k: (len(docs[k]), k)):
        if total + len(docs[name]) > max_bytes:
            continue
        out[name] = docs[name]
        total += len(docs[name])
    if not out:
        raise ValueError(f"text_bytes={max_bytes} is smaller than every document")
    return dict(sorted(out.items()))
