"""How many bits the weights can hold at most: capacity measured on uniformly random data.

Morris et al. 2025 ("How much do language models memorize?") train GPT-style models on sequences of
tokens drawn uniformly at random, where nothing can be generalised: every bit a model saves on them
is a bit stored in its weights. Memorised bits = the data's entropy minus its code length under the
model. As the data set grows past what a model can hold, its memorised bits stop growing: that
plateau is the model's capacity, and capacity / parameters is the bits a parameter can store (about
3.6 in their runs).

Here: N sequences of `length` tokens from an alphabet of `vocab` symbols, drawn with a seed; a
byte-level GPT-2 with a `vocab`-symbol vocabulary (`CausalLM.from_config(vocab_size=...)`) trained on
whole sequences for a fixed number of passes; the first token of each sequence has no context and
is not counted (its entropy is neither charged nor credited).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


def random_sequences(n: int, length: int, vocab: int, seed: int) -> np.ndarray:
    """n sequences of `length` tokens drawn uniformly from range(vocab) with `seed`, int64 [n, length]."""
    if n < 1 or length < 2 or vocab < 2:
        raise ValueError(f"need n >= 1, length >= 2 and vocab >= 2, got {n}, {length}, {vocab}")
    return np.random.default_rng(seed).integers(0, vocab, size=(n, length), dtype=np.int64)


def entropy_bits(sequences: np.ndarray, vocab: int) -> float:
    """Entropy of the counted tokens (all but the first of each sequence): log2(vocab) bits each."""
    n, length = sequences.shape
    return float(n * (length - 1) * math.log2(vocab))


@dataclass(frozen=True)
class CapacityRecipe:
    """How every capacity model trains: AdamW (warm-up, cosine decay) on batches of whole sequences for
    `epochs` passes over the data, at least `min_steps` steps (small data sets are seen more often)."""

    epochs: float = 100.0
    min_steps: int = 500
    max_steps: int = 4000
    batch_size: int = 64
    lr: float = 3e-3

    def steps(self, n_sequences: int) -> int:
        return int(min(self.max_steps, max(self.min_steps, math.ceil(self.epochs * n_sequences / self.batch_size))))


def fit_sequences(lm, sequences: np.ndarray, recipe: CapacityRecipe, seed: int) -> list[float]:
    """Train `lm` (a CausalLM) on random batches of whole sequences; returns the loss per step (nats)."""
    import torch

    from copystudy.models.training import train

    data = torch.from_numpy(np.asarray(sequences, dtype=np.int64))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    batch = min(recipe.batch_size, len(data))

    def batch_loss(step: int):
        rows = data[torch.randint(0, len(data), (batch,), generator=gen)]
        logits = lm.model(input_ids=rows[:, :-1]).logits.float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))

    return train(lm.model, batch_loss, recipe.steps(len(data)), recipe.lr, progress_bar=False)


def sequence_bits(lm, sequences: np.ndarray, batch: int = 256) -> float:
    """Code length in bits of every token but the first of each sequence, given the tokens before it."""
    import torch

    data = torch.from_numpy(np.asarray(sequences, dtype=np.int64))
    total = 0.0
    lm.model.eval()
    with torch.no_grad():
        for i in range(0, len(data), batch):
            rows = data[i:i + batch]
            logits = lm.model(input_ids=rows[:, :-1]).logits.double()
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                             rows[:, 1:].reshape(-1), reduction="sum"))
    return total / math.log(2)


def memorized_bits_random(entropy: float, code_bits: float) -> float:
    """Bits stored in the weights about random data: its entropy minus its code length under the model
    (Morris et al.'s H(X) - H(X | model)); negative when the model codes worse than uniform."""
    return float(entropy) - float(code_bits)


def capacity_cell(spec: dict, n_sequences: int, length: int, vocab: int, recipe: CapacityRecipe, seed: int) -> dict:
    """One model of one size trained on one random data set (seeded by `seed`): its memorised bits."""
    from copystudy.models.causal_lm import CausalLM

    data = random_sequences(n_sequences, length, vocab, seed=10_007 * seed + n_sequences)
    lm = CausalLM.from_config(**{"context": length, **spec}, vocab_size=vocab, seed=seed)
    losses = fit_sequences(lm, data, recipe, seed)
    h, code = entropy_bits(data, vocab), sequence_bits(lm, data)
    return {"n_params": lm.n_params, "n_sequences": n_sequences, "seed": seed, "entropy_bits": h, "code_bits": code,
            "memorized_bits": memorized_bits_random(h, code), "steps": len(losses),
            "final_loss_bits": float(np.mean(losses[-10:])) / math.log(2)}


def plateaus(cells: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Each model size's capacity: the largest mean memorised bits over its data sizes (mean over seeds,
    with a t interval over seeds), whether it is a plateau (from the second-largest data size to the
    largest, the memorised bits grow by less than 10% and stay below 90% of the data's entropy: more data
    no longer buys more memory), and its bits per parameter."""
    from copystudy.common.intervals import mean_ci

    rows = []
    for model, g in cells.groupby("model", sort=False):
        by_size = []
        for n, h in g.groupby("n_sequences"):
            mean, lo, hi = mean_ci(h["memorized_bits"], level)
            by_size.append((n, mean, lo, hi, float(h["entropy_bits"].mean())))
        n_best, best, lo, hi, entropy = max(by_size, key=lambda r: r[1])
        last = by_size[-1]
        saturated = bool(len(by_size) > 1 and last[1] <= 1.1 * by_size[-2][1] and last[1] < 0.9 * last[4])
        params = int(g["n_params"].iloc[0])
        rows.append({"model": model, "n_params": params, "plateau_bits": best, "plateau_bits_low": max(lo, 0.0),
                     "plateau_bits_high": hi, "plateau_at_sequences": int(n_best), "entropy_bits_at_plateau": entropy,
                     "saturated": saturated, "bits_per_param": best / params})
    return pd.DataFrame(rows)


def bits_per_param_fit(cells: pd.DataFrame, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Capacity per parameter: the least-squares slope through the origin of the plateaus against the
    parameter counts, with a bootstrap interval that resamples the seeds of every (size, data) cell
    (and so each size's plateau) and the model sizes."""
    rng = np.random.default_rng(seed)
    point = plateaus(cells)
    slope = _slope(point["n_params"].to_numpy(float), point["plateau_bits"].to_numpy(float))
    groups = {k: g["memorized_bits"].to_numpy(float) for k, g in cells.groupby(["model", "n_sequences"], sort=False)}
    params = cells.groupby("model", sort=False)["n_params"].first()
    models = list(params.index)
    draws = []
    for _ in range(n_boot):
        means = {k: v[rng.integers(0, len(v), len(v))].mean() for k, v in groups.items()}
        tops = np.array([max(m for (mod, _), m in means.items() if mod == model) for model in models])
        pick = rng.integers(0, len(models), len(models))
        draws.append(_slope(params.to_numpy(float)[pick], tops[pick]))
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return {"bits_per_param": slope, "low": float(max(lo, 0.0)), "high": float(hi), "level": level}


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y = s x through the origin."""
    return float((x * y).sum() / (x * x).sum())


def capacity_bound(bits_per_param: float, n_params: int, train_bytes: int) -> dict:
    """What a model of n_params can hold at most (capacity x parameters), and that as a share of its
    training set's raw bits (8 a byte): an upper bound on how much of the set it could store verbatim."""
    bits = float(bits_per_param) * n_params
    return {"capacity_bits": bits, "capacity_share_of_training_bits": bits / (8.0 * train_bytes)}
