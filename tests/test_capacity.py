"""Capacity on uniformly random data (Morris et al. 2025): closed forms, and a model small enough to
saturate within the test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from copystudy.memorization import capacity as C


def test_random_sequences_are_seeded_uniform_and_their_entropy_is_closed_form():
    a, b = C.random_sequences(200, 9, 4, seed=3), C.random_sequences(200, 9, 4, seed=3)
    assert a.shape == (200, 9) and (a == b).all() and a.min() == 0 and a.max() == 3
    assert not (a == C.random_sequences(200, 9, 4, seed=4)).all()
    assert C.entropy_bits(a, 4) == 200 * 8 * 2.0  # the first token of a sequence is not counted
    assert C.memorized_bits_random(100.0, 130.0) == -30.0  # worse than uniform is negative, not clipped
    with pytest.raises(ValueError):
        C.random_sequences(1, 1, 4, 0)


def test_an_untrained_model_memorises_nothing_and_a_uniform_code_costs_the_entropy():
    from copystudy.models.causal_lm import CausalLM

    lm = CausalLM.from_config(n_layer=1, n_head=1, n_embd=4, context=8, vocab_size=4, seed=0)
    data = C.random_sequences(64, 8, 4, seed=0)
    bits = C.sequence_bits(lm, data)
    # a fresh model predicts nearly uniformly: its code length is within a few percent of the entropy
    assert abs(bits - C.entropy_bits(data, 4)) / C.entropy_bits(data, 4) < 0.05


@pytest.mark.slow
def test_capacity_of_a_tiny_model_rises_with_data_then_levels_off():
    """A ~300-parameter model on 4-symbol sequences: with one sequence it memorises nearly all of its
    14 bits; its memorised bits rise with more data, then stop growing while the entropy keeps growing
    4x a step (the plateau); the trivial 'memorises everything' line would keep rising."""
    spec = {"n_layer": 1, "n_head": 1, "n_embd": 4}
    recipe = C.CapacityRecipe(epochs=100, min_steps=150, max_steps=150, batch_size=64, lr=0.03)
    rows = [{"model": "tiny", **C.capacity_cell(spec, n, 8, 4, recipe, seed=0)} for n in (1, 4, 16, 64)]
    mem = [r["memorized_bits"] for r in rows]
    h = [r["entropy_bits"] for r in rows]
    assert mem[0] > 0.7 * h[0]  # one sequence: nearly all of it
    assert mem[1] > mem[0] + 10  # rises with the data
    assert mem[3] < 1.5 * mem[2] and mem[3] < 0.2 * h[3]  # levels off far below the entropy
    plat = C.plateaus(pd.DataFrame(rows)).iloc[0]
    assert plat["saturated"] and plat["plateau_at_sequences"] > 1
    assert plat["plateau_bits"] == pytest.approx(max(mem))


def _cells(per_param: dict[str, tuple[int, float]], sizes=(10, 100, 1000), seeds=(0, 1, 2)) -> pd.DataFrame:
    """Synthetic cells: a model of p params memorises min(entropy, c x p) bits, seed noise +-1%."""
    rows = []
    for name, (p, c) in per_param.items():
        for n in sizes:
            for s in seeds:
                h = 50.0 * n
                rows.append({"model": name, "n_params": p, "n_sequences": n, "seed": s, "entropy_bits": h,
                             "memorized_bits": min(h, c * p) * (1 + 0.01 * (s - 1))})
    return pd.DataFrame(rows)


def test_plateaus_and_the_bits_per_parameter_fit_recover_a_known_capacity():
    cells = _cells({"a": (500, 2.0), "b": (1000, 2.0), "c": (2000, 2.0), "d": (4000, 2.0)}, sizes=(10, 100, 1000, 5000))
    plat = C.plateaus(cells).set_index("model")
    assert plat.loc["a", "plateau_bits"] == pytest.approx(1000.0) and plat["saturated"].all()
    fit = C.bits_per_param_fit(cells, n_boot=300)
    assert fit["bits_per_param"] == pytest.approx(2.0)
    assert 0 <= fit["low"] <= 2.0 <= fit["high"] and fit["high"] - fit["low"] < 0.1
    # a size whose data never reaches its capacity is not saturated
    short = C.plateaus(_cells({"big": (10_000, 3.6)})).iloc[0]
    assert not short["saturated"]
    bound = C.capacity_bound(2.0, 1000, 500)
    assert bound == {"capacity_bits": 2000.0, "capacity_share_of_training_bits": 0.5}
    assert math.isclose(C.CapacityRecipe(epochs=10, min_steps=5, max_steps=50, batch_size=8).steps(16), 20)
    assert np.isfinite(fit["low"])
