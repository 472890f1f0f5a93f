"""The learner of the prequential code: a model trained on a prefix of the text, stopped early on the
end of that prefix.

`train_early_stopped(recipe, prefix, seed, init)` is a deterministic function of the prefix bytes, the
seed and the model it starts from (from scratch, or warm from the previous block's model): on one
thread a decoder that holds the prefix, and has rebuilt the previous model, retrains bit for bit the
model that coded the next block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np


def training_steps(n_bytes: int, epochs: float, batch_size: int, context: int,
                   min_steps: int, max_steps: int) -> int:
    """The prequential recipe's step count: `epochs` passes over n_bytes, clipped to [min, max].

    A step sees batch_size windows of `context` predicted bytes; small prefixes get min_steps so the
    first models are not left untrained, large ones max_steps to bound the run time.
    """
    steps = math.ceil(epochs * n_bytes / (batch_size * context))
    return int(min(max_steps, max(min_steps, steps)))


# ---- the learner: early stopping on the end of the prefix -------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """How every model of the code lengths is trained from scratch.

    AdamW on random windows of the prefix minus its validation split, with a warm-up and then the
    learning-rate `schedule`: "plateau" (constant, cut by `decay_factor` at each of the first `decays`
    plateaus, the best weights put back), "constant", or "cosine" (decay over the ceiling, which keeps
    improving the score to the last step and so rarely lets early stopping fire). The ceiling is
    `epochs` passes over the fitted bytes, clipped to [min_steps, max_steps]; no schedule but the
    cosine ends at it. Every `eval_every` steps (and at the ceiling) the validation split is scored;
    the best weights are kept, and training stops after `patience` scores without improvement (with
    "plateau": the plateau after the last cut)."""

    model: dict = field(default_factory=lambda: {"family": "causal_lm"})
    batch_size: int = 32
    lr: float = 3e-3
    epochs: float = 8.0
    min_steps: int = 100
    max_steps: int = 300
    validation_fraction: float = 0.1
    eval_every: int = 25
    patience: int = 3
    max_validation_bytes: int | None = None  # cap on the validation split (None: the fraction alone)
    schedule: str = "plateau"
    decays: int = 2  # "plateau": learning-rate cuts before a plateau stops training
    decay_factor: float = 0.25


def validation_split(prefix: bytes, fraction: float, min_bytes: int, max_bytes: int | None = None) -> tuple[bytes, bytes]:
    """(fit, validation): the last ceil(fraction x n) bytes of the prefix (at most max_bytes), at least
    min_bytes, are held out. A function of the prefix alone, so a decoder that holds the prefix makes
    the same split."""
    n, k = len(prefix), math.ceil(fraction * len(prefix))
    k = max(min_bytes, min(k, max_bytes) if max_bytes else k)
    if n - k < min_bytes:
        raise ValueError(f"a prefix of {n} bytes cannot give {k} validation bytes and keep {min_bytes} to fit")
    return bytes(prefix[:n - k]), bytes(prefix[n - k:])


def validation_bits(model, data: bytes, batch: int = 64) -> float:
    """Mean bits per predicted byte of `data` cut into consecutive windows of context + 1 bytes (the
    first byte of each is context only): the quick, fixed score early stopping compares."""
    import torch

    arr = np.frombuffer(bytes(data), dtype=np.uint8).astype(np.int64)
    c = model.context
    n = (len(arr) - 1) // c
    if n < 1:
        raise ValueError(f"validation needs more than {c} bytes, got {len(arr)}")
    windows = torch.from_numpy(np.stack([arr[i * c:i * c + c + 1] for i in range(n)]))
    was_training, total = model.model.training, 0.0
    model.model.eval()
    with torch.no_grad():
        for i in range(0, n, batch):
            w = windows[i:i + batch]
            logits = model.model(input_ids=w[:, :-1]).logits.double()
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1),
                                                             reduction="sum"))
    model.model.train(was_training)
    return total / math.log(2) / (n * c)


class EarlyStopping:
    """stop(step) for CausalLM.fit: scores the validation bytes every `every` steps and at `last_step`,
    keeps a copy of the best weights (the earliest of equal scores), and says stop after `patience`
    scores without improvement. `restore()` puts the best weights back.

    With decays > 0 a plateau first lowers the learning rate instead (reduce on plateau): the best
    weights are put back and `lr_factor` is multiplied by `decay_factor`, up to `decays` times; only
    the plateau after the last decay stops training. A schedule reads `lr_factor` (`plateau_schedule`)."""

    def __init__(self, model, validation: bytes, every: int, patience: int, last_step: int,
                 decays: int = 0, decay_factor: float = 0.25):
        if every < 1 or patience < 1:
            raise ValueError(f"eval_every and patience must be >= 1, got {every} and {patience}")
        if decays < 0 or not 0 < decay_factor < 1:
            raise ValueError(f"decays must be >= 0 and decay_factor in (0, 1), got {decays} and {decay_factor}")
        self.model, self.validation, self.every, self.patience, self.last_step = model, validation, every, patience, last_step
        self.best_bits, self.best_step, self.best_state, self.since, self.scores = math.inf, 0, None, 0, []
        self.decays_left, self.decay_factor, self.lr_factor = decays, decay_factor, 1.0

    def __call__(self, step: int) -> bool:
        if (step + 1) % self.every and step != self.last_step:
            return False
        bits = validation_bits(self.model, self.validation)
        self.scores.append((step + 1, bits))
        if bits < self.best_bits:
            self.best_bits, self.best_step, self.since = bits, step + 1, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.model.state_dict().items()}
        else:
            self.since += 1
        if self.since >= self.patience and self.decays_left:
            self.restore()
            self.decays_left, self.lr_factor, self.since = self.decays_left - 1, self.lr_factor * self.decay_factor, 0
        return self.since >= self.patience

    def plateau_schedule(self, step: int, total: int, lr: float) -> float:
        """Warm-up, then lr times the factor the plateaus so far have set."""
        from copystudy.models.training import constant_lr

        return constant_lr(step, total, lr) * self.lr_factor

    def restore(self) -> None:
        if self.best_state is not None:
            self.model.model.load_state_dict(self.best_state)


def train_early_stopped(recipe: Recipe, prefix: bytes, seed: int, init=None):
    """train(prefix, seed, init) -> a CausalLM fitted on the prefix minus its validation split, stopped
    early and restored to its best validation score; from scratch, or (warm start) from a copy of
    `init`, with a fresh optimiser and schedule.

    A deterministic function of (recipe, prefix bytes, seed): on one thread the same arguments give
    bitwise the same weights, so a decoder holding the prefix can retrain the model that coded the
    next block. The model carries its record: train_steps, step_ceiling, best_step, stopped_early,
    validation_bits_per_byte, fit_bytes, validation_bytes."""
    import copy

    from copystudy import models

    model = models.build(recipe.model, seed=seed) if init is None else copy.deepcopy(init)
    fit, val = validation_split(bytes(prefix), recipe.validation_fraction, model.context + 1,
                                recipe.max_validation_bytes)
    ceiling = training_steps(len(fit), recipe.epochs, recipe.batch_size, model.context, recipe.min_steps,
                             recipe.max_steps)
    plateau = recipe.schedule == "plateau"
    stopper = EarlyStopping(model, val, recipe.eval_every, recipe.patience, ceiling - 1,
                            recipe.decays if plateau else 0, recipe.decay_factor)
    losses = model.fit(fit, steps=ceiling, batch_size=recipe.batch_size, lr=recipe.lr, seed=seed, progress_bar=False,
                       stop=stopper, schedule=stopper.plateau_schedule if plateau else recipe.schedule)
    stopper.restore()
    model.train_steps, model.step_ceiling, model.best_step = len(losses), ceiling, stopper.best_step
    model.stopped_early = len(losses) < ceiling
    model.validation_bits_per_byte = stopper.best_bits
    model.fit_bytes, model.validation_bytes = len(fit), len(val)
    return model


def prefix_trainer(recipe: Recipe) -> Callable[..., object]:
    """The prequential learner as a picklable callable train(prefix, seed, init=None)."""
    return partial(train_early_stopped, recipe)
