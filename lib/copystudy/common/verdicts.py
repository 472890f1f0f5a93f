"""Small tests the notebooks' verdicts share: does a measured curve rise, fall or neither."""

from __future__ import annotations

import pandas as pd


def trend(xs, ys) -> float:
    """Spearman rank correlation of ys with xs: +1 rises monotonically, -1 falls (nan if ys is constant)."""
    s = pd.Series(list(ys), dtype=float).rank().corr(pd.Series(list(xs), dtype=float).rank())
    return float(s) if s == s else float("nan")


def rises(curve: dict, yes: str, no: str, threshold: float = 0.5) -> tuple[float, str]:
    """The rank correlation of a curve {x: y} and `yes` when it rises clearly (above threshold), else `no`."""
    t = trend(list(curve), list(curve.values()))
    return t, yes if t > threshold else no
