"""The windows a causal LM with a fixed context reads a long sequence through (shared by the torch
model, `CausalLM`, and the coder's numpy predictor, which needs no torch).

Windows of `context` symbols start every context // 2 symbols; each predicts the symbols of its last
half (the first window predicts all of its own), so every symbol after the first is predicted with
at least context // 2 symbols before it, and exactly once.
"""

from __future__ import annotations


def window_start(position: int, context: int) -> int:
    """Start of the window that predicts symbol `position` (>= 1): stride context//2, last half used."""
    stride = context // 2
    if position <= context:
        return 0
    return ((position - 1) // stride - 1) * stride


def window_spans(n: int, context: int) -> list[tuple[int, int, int]]:
    """(start, first, last) of every window for a sequence of n symbols: the window at `start`
    predicts symbols first..last; together they predict symbols 1..n-1, each exactly once."""
    stride = context // 2
    starts = sorted({window_start(p, context) for p in range(1, n)})
    return [(s, 1 if s == 0 else s + stride + 1, min(s + context, n - 1)) for s in starts]
