"""The two-part code with its weights quantised: the precision that makes weights + data shortest."""

from __future__ import annotations

import copy

import pandas as pd

from copystudy.compression.code_lengths import byte_bits
from copystudy.compression.rates import model_bits

# ---- the two-part code at the best precision --------------------------------------------------------
SCALE_BITS = 32  # one float32 scale per quantised tensor


def quantized_tensor(t, bits: int):
    """t rounded to the 2^bits - 1 symmetric levels k x s, |k| <= 2^(bits-1) - 1, s = max|t| / that."""
    import torch

    if bits < 2:
        raise ValueError(f"quantisation needs at least 2 bits a weight, got {bits}")
    top = float(t.abs().max()) if t.numel() else 0.0
    if top == 0.0:
        return t.clone()
    scale = top / (2 ** (bits - 1) - 1)
    return torch.round(t / scale) * scale


def quantize(model, bits: int):
    """A copy of a CausalLM with every parameter tensor quantised to `bits` bits (symmetric, per tensor)."""
    import torch

    q = copy.deepcopy(model)
    with torch.no_grad():
        for p in q.model.parameters():
            p.copy_(quantized_tensor(p, bits))
    return q


def n_tensors(model) -> int:
    """Parameter tensors of a CausalLM (tied ones once): each quantised tensor sends one scale."""
    return sum(1 for _ in model.model.parameters())


def two_part_by_precision(model, data: bytes, precisions=(16, 8, 4), data_bits: float | None = None) -> pd.DataFrame:
    """The two-part code of `data` with the weights sent at each precision b: weight bits n_params x b,
    one 32-bit scale per tensor, and the data coded by the quantised model. A first row gives the
    unquantised float32 model at 32 bits a weight (data_bits, when known, saves coding it again)."""
    full = float(byte_bits(model, data).sum()) if data_bits is None else float(data_bits)
    rows = [{"bits_per_param": 32, "quantized": False, "weight_bits": model_bits(model.n_params, 32),
             "scale_bits": 0.0, "data_bits": full}]
    for b in precisions:
        q = quantize(model, b)
        rows.append({"bits_per_param": int(b), "quantized": True, "weight_bits": model_bits(model.n_params, b),
                     "scale_bits": float(SCALE_BITS * n_tensors(model)), "data_bits": float(byte_bits(q, data).sum())})
    df = pd.DataFrame(rows)
    df["model_bits"] = df["weight_bits"] + df["scale_bits"]
    df["total_bits"] = df["model_bits"] + df["data_bits"]
    df["total_bits_per_byte"] = df["total_bits"] / max(1, len(data))
    return df
