"""The one training loop every model uses (nanoGPT's), and what it needs: seeding, progress, schedule.

`train` runs AdamW with linear warm-up and cosine decay, gradient clipping and a progress bar; a
model supplies only `batch_loss(step)`, the loss of one random batch. Parameter groups with their
own learning-rate scale or weight decay are an option (the royalty fine-tunes move the prompt
embeddings faster than the rest).
"""

from __future__ import annotations

import math
import os
import random
import sys
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm  # plain text: widgets do not survive in stored notebooks

from copystudy import PROGRESS_TO


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch so a rerun on the same machine gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)




def progress(iterable=None, **kwargs):
    """A tqdm bar: live on the terminal, one summary line in a stored notebook.

    In a notebook run by `copystudy run`, the runner names its terminal in $COPYSTUDY_PROGRESS_TO: the
    live bar is drawn there (nowhere when the runner has no terminal), and the notebook gets one line
    when the loop ends (what, how many, how long). Elsewhere (a terminal, a Dask worker, whose output
    reaches the runner's terminal) it is an ordinary bar on stderr. COPYSTUDY_PROGRESS=0 silences it.
    """
    silenced = os.environ.get("COPYSTUDY_PROGRESS", "1") == "0"
    kwargs["disable"] = bool(kwargs.get("disable")) or silenced  # None would mean "hide off a terminal"
    kwargs.setdefault("dynamic_ncols", True)
    target = os.environ.get(PROGRESS_TO)
    if target is None or kwargs["disable"]:
        kwargs.setdefault("mininterval", 2.0 if not sys.stderr.isatty() else 0.1)
        kwargs.setdefault("file", sys.stderr)
        return tqdm(iterable, **kwargs)
    try:
        stream = open(target or os.devnull, "w")
    except OSError:  # the terminal went away
        stream = open(os.devnull, "w")
    kwargs.update(file=stream, mininterval=0.1 if target else 3600.0)
    bar = _SummaryBar(iterable, **kwargs)
    bar.own_stream = stream
    return bar


class _SummaryBar(tqdm):
    """A bar that writes one line to the notebook (stderr) when it closes, then closes its own stream."""

    def close(self):
        if not getattr(self, "_summarized", False):
            self._summarized = True
            d = self.format_dict
            total = f"/{d['total']}" if d.get("total") else ""
            print(f"{self.desc or 'progress'}: {d['n']}{total} in {d['elapsed']:.0f} s", file=sys.stderr)
        super().close()
        stream = getattr(self, "own_stream", None)
        if stream is not None and not stream.closed:
            stream.close()


def cosine_lr(step: int, total: int, lr: float, warmup: int | None = None) -> float:
    """Linear warm-up then cosine decay to 10% of lr (nanoGPT's schedule)."""
    warmup = max(1, total // 20) if warmup is None else warmup
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def constant_lr(step: int, total: int, lr: float, warmup: int | None = None) -> float:
    """Linear warm-up then a constant lr: no decay tied to `total`, so when early stopping ends a run
    the step count is the validation score's choice, not the end of a schedule."""
    warmup = max(1, total // 20) if warmup is None else warmup
    return lr * (step + 1) / warmup if step < warmup else lr


SCHEDULES = {"cosine": cosine_lr, "constant": constant_lr}


def decay_groups(module: torch.nn.Module, weight_decay: float = 0.01) -> list[dict]:
    """Trainable parameters in two groups: weight decay on matrices, none on biases and norms."""
    params = [p for p in module.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def train(module: torch.nn.Module, batch_loss: Callable[[int], torch.Tensor], steps: int, lr: float, *,
          groups: list[dict] | None = None, weight_decay: float = 0.01, betas=(0.9, 0.95), clip: float = 1.0,
          desc: str = "train", progress_bar: bool = True, postfix_every: int = 50,
          stop: Callable[[int], bool] | None = None, schedule="cosine") -> list[float]:
    """Optimise `module` for `steps` steps of AdamW on batch_loss(step); returns the loss per step.

    groups: optimiser parameter groups, each may carry an `lr_scale` (default: `decay_groups`).
    The learning rate follows `schedule` (a key of SCHEDULES, `cosine_lr` by default, or a function
    of (step, steps, lr) with the same signature); gradients are
    clipped to norm `clip`. stop(step), when given, is called after each step and ends training early
    when it returns True (early stopping; the schedule stays that of `steps`)."""
    if not callable(schedule) and schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)} or a function, got {schedule!r}")
    lr_at = schedule if callable(schedule) else SCHEDULES[schedule]
    groups = groups if groups is not None else decay_groups(module, weight_decay)
    opt = torch.optim.AdamW(groups, lr=lr, betas=betas)
    params = [p for p in module.parameters() if p.requires_grad]  # clipped in the module's order
    module.train()
    losses = []
    bar = progress(range(steps), desc=desc, disable=not progress_bar or None)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr) * group.get("lr_scale", 1.0)
        loss = batch_loss(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        losses.append(loss.item())
        if step % postfix_every == 0 and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if stop is not None and stop(step):
            break
    module.eval()
    return losses
