"""Fixed-point arithmetic that gives the same numbers on every machine, for `integer_lm`'s GPT-2.

The float predictor (`predictors.LMPredictor`) decodes exactly only where the encoder's BLAS kernel,
thread count and library ran: a float32 product's rounding depends on the order of its sums, and
kernels reorder them freely (OpenBLAS's SkylakeX and Haswell kernels give different float32 products
on this very machine). Here every number is an integer, held in a float64 array:

- Activations are integers in units of 2**-12 (`FRAC`), clipped to +-2**20 (256.0) at the input of
  every product; weights are integers of at most 15 bits, with one float64 scale per output column.
- Every sum -- inside a BLAS product, a row sum, an attention product -- adds integers and stays below
  2**53, so it is exact, whatever order a kernel, a thread count or a library picks.
- Every other step is one IEEE-754 operation (+, -, *, /, sqrt, floor, rint), which the standard
  rounds correctly, so it gives the same bits on every conforming machine, in numpy as in torch.
- exp and GELU are tables of integers, computed with Python's `decimal` module (exactly specified,
  no platform libm) and integer arithmetic, indexed by integers.
- The next-byte distribution is 256 integer frequencies summing to `PMF_TOTAL` = 2**24 - 256, which
  constriction's 24-bit categorical model turns into exactly (f + 1) / 2**24 (see `coding.quantised_pmf`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import lru_cache

import numpy as np

VERSION = 1  # of the arithmetic below; part of the program fingerprint
FRAC = 12  # activations: integers in units of 2**-FRAC
W_MAX = 2**15 - 1  # largest weight integer
ACT_LIMIT = 2.0**20  # |input| of every product (256.0)
PMF_TOTAL = 2**24 - 256  # the 256 frequencies sum to this
EXP_COARSE = 6  # the exp table is built from steps of 2**-6 and 2**-12
GELU_STEP, GELU_SPAN = 6, 8  # GELU: exact values 2**-6 apart on [-8, 8], linear in between; 0 below, x above


def resid_limit(width: int) -> float:
    """|residual stream| bound: width * (2 * bound)**2 < 2**53 keeps the layer norm's sum of squares exact."""
    return 2.0 ** ((53 - int(np.ceil(np.log2(width)))) // 2 - 1)


# ---- tables, computed exactly (decimal arithmetic is specified to the digit, unlike libm) -------------
def _round(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


@lru_cache(maxsize=None)
def exp_table(bits: int) -> np.ndarray:
    """exp(-d / 2**FRAC) * 2**bits within one unit, for d = 0, 1, ... while it is above 0, then a final 0.

    Built from exact decimal values 2**-6 apart times exact ones 2**-12 apart (each rounded at 2**-30),
    multiplied in integers and rounded."""
    fine_steps = 1 << (FRAC - EXP_COARSE)
    span = int(np.ceil((bits + 1) * np.log(2))) + 1  # exp(-span) * 2**bits < 1/2
    with localcontext() as ctx:
        ctx.prec = 40
        coarse = np.array([_round((Decimal(-j) / 2**EXP_COARSE).exp() * 2**30)
                           for j in range(span << EXP_COARSE)], dtype=object)
        fine = np.array([_round((Decimal(-k) / 2**FRAC).exp() * 2**30) for k in range(fine_steps)], dtype=object)
    q30 = (np.outer(coarse, fine).reshape(-1) + (1 << 29)) >> 30  # Python integers: no overflow
    table = (q30 + (1 << (29 - bits))) >> (30 - bits) if bits < 30 else q30
    return np.append(table.astype(np.float64), 0.0)


@lru_cache(maxsize=None)
def gelu_table() -> np.ndarray:
    """GPT-2's tanh GELU at every x = -8 .. 8 - 2**-12 (units 2**-FRAC): exact decimal values 2**-6
    apart, linear (integer arithmetic) in between."""
    with localcontext() as ctx:
        ctx.prec = 40
        pi = Decimal("3.14159265358979323846264338327950288419716939937510")
        c = (2 / pi).sqrt()
        knots = []
        for i in range((2 * GELU_SPAN << GELU_STEP) + 1):
            x = Decimal(i) / 2**GELU_STEP - GELU_SPAN
            tanh = 1 - 2 / ((2 * c * (x + Decimal("0.044715") * x**3)).exp() + 1)
            knots.append(_round(x * (1 + tanh) / 2 * 2**FRAC))
    knots = np.array(knots, dtype=np.int64)
    shift = FRAC - GELU_STEP
    offset = np.arange(1 << shift, dtype=np.int64)
    lo, step = knots[:-1, None], (knots[1:] - knots[:-1])[:, None]
    return (lo + ((step * offset + (1 << (shift - 1))) >> shift)).reshape(-1).astype(np.float64)


# ---- the operations, in numpy or torch ---------------------------------------------------------------
class NumpyOps:
    """The few operations whose spelling differs between numpy and torch (float64 arrays throughout)."""

    name = "numpy"

    def array(self, x):
        return np.asarray(x, dtype=np.float64)

    def zeros(self, shape):
        return np.zeros(shape, np.float64)

    def rint_(self, x):  # in place, ties to even
        return np.rint(x, out=x)

    def floor_(self, x):
        return np.floor(x, out=x)

    def sqrt_(self, x):
        return np.sqrt(x, out=x)

    def clip_(self, x, lo, hi):
        return np.clip(x, lo, hi, out=x)

    def rowsum(self, x):
        return x.sum(-1, keepdims=True)

    def rowmax(self, x):
        return x.max(-1, keepdims=True)

    def where(self, cond, a, b):
        return np.where(cond, a, b)

    def permute(self, x, *axes):
        return x.transpose(axes)

    def arange(self, n):
        return np.arange(n)

    def lookup(self, table, index):  # table[index], the float index truncated and clipped into the table
        return np.take(table, index.astype(np.int64), mode="clip")

    def add_to_first_max(self, x, scores, amount):  # x[i, argmax(scores[i])] += amount[i]
        x[np.arange(len(x)), scores.argmax(-1)] += amount[:, 0]
        return x

    def to_numpy(self, x):
        return x


class TorchOps(NumpyOps):
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch

    def array(self, x):
        return self.torch.as_tensor(np.asarray(x, dtype=np.float64))

    def zeros(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.float64)

    def rint_(self, x):  # torch.round rounds ties to even, as np.rint
        return x.round_()

    def floor_(self, x):
        return x.floor_()

    def sqrt_(self, x):
        return x.sqrt_()

    def clip_(self, x, lo, hi):
        return x.clamp_(lo, hi)

    def rowsum(self, x):
        return x.sum(-1, keepdim=True)

    def rowmax(self, x):
        return x.amax(-1, keepdim=True)

    def where(self, cond, a, b):
        t = self.torch
        return t.where(cond, t.as_tensor(a, dtype=t.float64), t.as_tensor(b, dtype=t.float64))

    def permute(self, x, *axes):
        return x.permute(*axes)

    def arange(self, n):
        return self.torch.arange(n)

    def lookup(self, table, index):
        return table[index.to(self.torch.int64).clamp_(0, len(table) - 1)]

    def add_to_first_max(self, x, scores, amount):
        x[self.torch.arange(len(x)), scores.argmax(-1)] += amount[:, 0]  # argmax: the first maximum
        return x

    def to_numpy(self, x):
        return x.numpy()


NUMPY = NumpyOps()


# ---- the operations of the network --------------------------------------------------------------------
@dataclass
class Linear:
    """x @ w * scale + bias, rounded: w integers [K, N] (|w| <= W_MAX), scale float64 [N], bias integers [N]."""

    w: object
    scale: object
    bias: object

    def __call__(self, ops, x, limit: float | None = ACT_LIMIT):
        y = x @ self.w  # exact
        y *= self.scale
        ops.rint_(y)
        y += self.bias
        return y if limit is None else ops.clip_(y, -limit, limit)


def layer_norm(ops, x, eps: int):
    """(x - mean) / sqrt(var + eps), units 2**-FRAC; eps in units of 2**-2FRAC (the affine part is
    folded into the next product). Row sums exact (resid_limit); /, sqrt, floor and rint IEEE-rounded."""
    n = x.shape[-1]
    mean = ops.rowsum(x)
    mean /= n
    d = x - ops.floor_(mean)
    var = ops.rowsum(d * d)
    var /= n
    ops.floor_(var)
    var += eps
    std = ops.floor_(ops.sqrt_(var))
    std *= 2.0**-FRAC
    d /= std  # = d * 2**FRAC / std, correctly rounded: both scalings by 2**FRAC are exact
    return ops.rint_(d)


def exp_neg(ops, d, table):
    """table's exp(-d) for d >= 0 in units of 2**-FRAC (fractions truncated; beyond the table it is 0).
    d stays below 2**62 (logits and scores are clipped), so its integer conversion is defined everywhere."""
    return ops.lookup(table, d)


def gelu(ops, u, table):
    """GPT-2's tanh GELU of u (units 2**-FRAC) from `gelu_table`; x itself above 8, 0 below -8."""
    half = len(table) // 2
    return ops.where(u >= half, u, ops.lookup(table, u + half))


def attention(ops, q, keys_t, values, mask, table):
    """softmax(q keys^T) values in integers (units 2**-FRAC in and out; the 1/sqrt(head size) is in q;
    keys_t: the keys transposed, [..., head size, positions]): exp(score - max) from the table in units
    of 2**-16, one exact product, one division per output."""
    scores = q @ keys_t  # units 2**-2FRAC, exact
    if mask is not None:
        scores = ops.where(mask, -(2.0**60), scores)
    d = ops.rowmax(scores) - scores
    d *= 2.0**-FRAC
    e = exp_neg(ops, d, table)  # d truncated: its floor, as d >= 0
    y = e @ values
    y /= ops.rowsum(e)
    return ops.rint_(y)


def frequencies(ops, logits, table):
    """The next-byte distribution as integer frequencies summing to PMF_TOTAL: exp(logit - max) from the
    table (units 2**-30), scaled down and floored, the rest added to the most probable byte."""
    e = exp_neg(ops, ops.rowmax(logits) - logits, table)
    f = e * (PMF_TOTAL / ops.rowsum(e))
    ops.floor_(f)
    return ops.add_to_first_max(f, e, PMF_TOTAL - ops.rowsum(f))
