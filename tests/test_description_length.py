"""Code-length bookkeeping of description_length, checked with fake models whose bits are known."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
import pytest

from copystudy.compression import rates
from copystudy.compression import code_lengths as dl
from copystudy.compression import early_stopping as es
from copystudy.compression import generalization as gen
from copystudy.compression import quantization as quant
from copystudy.memorization import memorized_bits as mb


class UniformModel:
    """Knows nothing: every byte costs 8 bits."""

    n_params = 1000
    context = 16

    def bits(self, data):
        return np.full(len(data), 8.0)


class FixedModel:
    """The first byte of any input costs 8 bits, every later byte `rate` bits."""

    def __init__(self, rate=2.0, n_params=10, context=4):
        self.rate, self.n_params, self.context = rate, n_params, context

    def bits(self, data):
        out = np.full(len(data), self.rate)
        if len(data):
            out[0] = 8.0
        return out


class KnowsModel:
    """A model that has memorised its training text: any piece of it costs 0.5 bits a byte, any other
    text 8 bits a byte."""

    n_params = 50
    context = 8

    def __init__(self, data: bytes):
        self.data = bytes(data)

    def bits(self, x):
        x = bytes(x)
        return np.full(len(x), 0.5 if x and x in self.data else 8.0)


def random_text(n, seed):
    return bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8))


@pytest.mark.parametrize("n,first", [(1, 1), (100, 7), (4096, 4096), (4097, 4096), (402_672, 4096), (1000, 1)])
def test_block_schedule_doubles_and_covers_exactly(n, first):
    b = dl.block_schedule(n, first)
    assert b[0] == 0 and b[1] == first and b[-1] == n
    assert all(y > x for x, y in zip(b, b[1:]))
    assert all(b[k + 1] == 2 * b[k] for k in range(1, len(b) - 2)), b  # doubling up to the cut
    assert len(b) == 2 or b[-1] <= 2 * b[-2]
    assert sum(y - x for x, y in zip(b, b[1:])) == n


def test_block_schedule_rejects_bad_first_block():
    with pytest.raises(ValueError, match="first_block"):
        dl.block_schedule(100, 0)
    with pytest.raises(ValueError, match="shorter than first_block"):
        dl.block_schedule(100, 200)


def test_prequential_of_uniform_model_is_8_bits_per_byte_exactly():
    data = random_text(5000, 0)
    bounds = dl.block_schedule(len(data), 300)
    out = dl.prequential_bits(data, bounds, lambda d: UniformModel())
    assert out["total_bits"] == 8.0 * len(data)
    assert out["block_bits"] == [8.0 * (y - x) for x, y in zip(bounds, bounds[1:])]


def test_prequential_trains_each_block_on_everything_before_it():
    data = random_text(1000, 1)
    seen = []
    dl.prequential_bits(data, dl.block_schedule(len(data), 100), lambda d: seen.append(d) or UniformModel())
    assert seen == [data[:100], data[:200], data[:400], data[:800]]


def test_block_bits_uses_earlier_bytes_as_free_context():
    data = random_text(100, 2)
    m = FixedModel(rate=2.0, context=4)
    assert dl.block_bits(m, data, 0, 10) == 8.0 + 9 * 2.0  # no context: first byte uniform
    assert dl.block_bits(m, data, 10, 30) == 20 * 2.0  # context bytes are not charged
    assert dl.block_bits(m, data, 30, 30) == 0.0
    with pytest.raises(ValueError):
        dl.block_bits(m, data, 50, 200)


def test_two_part_bookkeeping():
    data = random_text(200, 3)
    m = FixedModel(rate=2.0, n_params=10)
    out = dl.two_part_bits(m, data)
    assert out["model_bits"] == 10 * 16
    assert out["data_bits"] == 8.0 + 199 * 2.0
    assert out["total_bits"] == out["model_bits"] + out["data_bits"]
    assert dl.two_part_bits(m, data, bits_per_param=32)["model_bits"] == 320
    assert dl.uniform_bits(200) == 1600
    with pytest.raises(ValueError):
        rates.model_bits(10, 0)


def test_code_lengths_by_size_with_uniform_learner():
    data = random_text(3000, 4)
    bounds = dl.block_schedule(len(data), 250)
    seen = []
    df, finals, _ = dl.code_lengths_by_size(data, bounds, lambda d, s: seen.append((len(d), s)) or UniformModel(),
                                         seeds=(0, 1), final=lambda m, bits, seed: {"bits": bits})
    assert sorted(seen) == sorted((b, s) for s in (0, 1) for b in bounds[1:])  # one model per (seed, prefix)
    k = len(bounds) - 1
    assert list(df["train_bytes"]) == bounds[1:] * 2 and list(df["seed"]) == [0] * k + [1] * k
    assert np.all(df["prequential_bits"] == df["uniform_bits"])
    assert np.all(df["two_part_bits"] == df["uniform_bits"] + UniformModel.n_params * 16)
    assert np.all(df["prequential_bits_per_byte"] == 8.0)
    assert finals == {0: {"bits": 8.0 * 3000}, 1: {"bits": 8.0 * 3000}}  # final(model of the whole text, its bits)


def test_code_lengths_by_size_two_part_with_memorising_learner():
    data = random_text(2048, 6)
    df, _, _ = dl.code_lengths_by_size(data, dl.block_schedule(len(data), 256), lambda d, s: KnowsModel(d))
    # each model saw its whole prefix: 0.5 bits a byte for it, plus the weights
    assert np.all(df["data_bits"] == 0.5 * df["train_bytes"])
    assert np.all(df["two_part_bits"] == df["data_bits"] + KnowsModel.n_params * 16)
    # the prequential blocks: each is new to the model of the prefix before it, so 8 bits a byte
    assert np.all(df["prequential_bits"] == df["uniform_bits"])


def test_block_trend_counts_increases_and_ranks():
    assert dl.block_trend([5.0, 4.0, 3.5, 3.0]) == {"spearman": pytest.approx(-1.0), "increases": 0}
    out = dl.block_trend([4.6, 4.48, 5.01, 4.54])
    assert out["increases"] == 1 and -1 < out["spearman"] < 1


def test_fitted_documents_are_the_ones_before_the_validation_tail():
    docs = {f"d{i}": bytes([65 + i]) * (100 + 10 * i) for i in range(12)}
    fitted, validation = gen.fitted_documents(docs, 0.2, seed=3)
    text = gen.shuffled_join(docs, 3)
    cut = len(text) - math.ceil(0.2 * len(text))
    assert set(fitted) | set(validation) == set(docs) and not set(fitted) & set(validation)
    assert all(text.index(docs[d]) + len(docs[d]) <= cut for d in fitted)
    assert all(text.index(docs[d]) + len(docs[d]) > cut for d in validation)
    # the same documents an early-stopped model of the whole text is fitted on
    fit_bytes = es.validation_split(text, 0.2, 1)[0]
    assert set(gen.fit_documents(docs, fit_bytes)) == set(fitted)


def test_choose_works_size_range_and_error():
    docs = {f"d{i}": b"x" * (100 * i) for i in range(1, 10)}
    chosen = mb.choose_works(docs, 3, 200, 500, seed=1)
    assert len(set(chosen)) == 3 and all(200 <= len(docs[c]) <= 500 for c in chosen)
    with pytest.raises(ValueError, match="n_works"):
        mb.choose_works(docs, 5, 200, 500)


def test_training_steps_recipe():
    assert es.training_steps(4096 * 10, epochs=2, batch_size=32, context=128, min_steps=5, max_steps=100) == 20
    assert es.training_steps(100, 2, 32, 128, min_steps=5, max_steps=100) == 5
    assert es.training_steps(10**9, 2, 32, 128, min_steps=5, max_steps=100) == 100


def test_bootstrap_gap_point_estimate_is_byte_weighted():
    df = pd.DataFrame({"document": ["a", "b", "c"], "split": ["train", "train", "heldout"], "bytes": [100, 300, 200],
                       "bits": [200.0, 300.0, 800.0]})
    out = gen.bootstrap_gap(df, n_boot=200)
    assert math.isclose(out["gap_bits_per_byte"], 800 / 200 - 500 / 400)
    assert out["low"] <= out["gap_bits_per_byte"] + 1e-12 and out["high"] >= out["low"]


def test_bootstrap_gap_over_seeds_means_the_seeds():
    rows = [{"seed": s, "document": d, "split": split, "bytes": 100, "bits": bits + 10 * s}
            for s in (0, 1, 2) for d, split, bits in [("t1", "train", 300.0), ("t2", "train", 500.0),
                                                       ("h1", "heldout", 600.0), ("h2", "heldout", 400.0)]]
    out = gen.bootstrap_gap(pd.DataFrame(rows), n_boot=500)
    assert out["per_seed"] == [pytest.approx(1.0)] * 3  # 5 - 4 bits/byte under every seed
    assert out["gap_bits_per_byte"] == pytest.approx(1.0) and out["n_documents"] == {"train": 2, "heldout": 2}
    assert out["low"] < 1.0 < out["high"]  # which documents fell where still moves it
    with pytest.raises(ValueError, match="both splits"):
        gen.bootstrap_gap(pd.DataFrame(rows).query("split == 'train'"))


# ---- the prequential learner: early stopping, deterministic ------------------------------------------
TINY = {"family": "causal_lm", "n_layer": 1, "n_head": 1, "n_embd": 8, "context": 16}


def test_validation_split_is_the_end_of_the_prefix():
    prefix = random_text(1000, 11)
    fit, val = es.validation_split(prefix, 0.1, 17)
    assert fit + val == prefix and len(val) == 100
    assert es.validation_split(prefix[:100], 0.1, 17)[1] == prefix[83:100]  # at least min_bytes
    assert es.validation_split(bytes(prefix), 0.1, 17) == (fit, val)  # a function of the bytes alone
    with pytest.raises(ValueError, match="cannot give"):
        es.validation_split(prefix[:30], 0.1, 17)


def test_early_stopping_keeps_the_best_weights_and_stops_after_patience(monkeypatch):
    import torch

    class Holder:
        model = torch.nn.Linear(2, 2)

    holder, scores = Holder(), iter([5.0, 4.0, 4.5, 4.0, 4.7, 9.9])
    monkeypatch.setattr(es, "validation_bits", lambda model, data: next(scores))
    stop = es.EarlyStopping(holder, b"", every=10, patience=3, last_step=99)
    said = []
    for step in range(100):
        with torch.no_grad():
            holder.model.weight.fill_(step)
        said.append(stop(step))
        if said[-1]:
            break
    assert step == 49 and said.count(True) == 1  # scores at 10..50; no improvement on 4.0 at 30, 40, 50
    assert stop.best_step == 20 and stop.best_bits == 4.0  # an equal score is not an improvement
    stop.restore()
    assert float(holder.model.weight.detach()[0, 0]) == 19.0  # the weights after step index 19, i.e. 20 steps


def test_a_plateau_cuts_the_learning_rate_and_restores_the_best_before_the_last_one_stops(monkeypatch):
    import torch

    class Holder:
        model = torch.nn.Linear(2, 2)

    # scores after 10, 20, ... steps: best 4.0 at 20, a plateau at 30-40 (cut 1, back to 20's weights), best 3.0
    # at 50, a plateau at 60-70 (cut 2, back to 50's weights), a plateau at 80-90: stop
    holder, scores = Holder(), iter([5.0, 4.0, 4.1, 4.2, 3.0, 3.5, 3.6, 3.7, 3.1])
    monkeypatch.setattr(es, "validation_bits", lambda model, data: next(scores))
    stop = es.EarlyStopping(holder, b"", every=10, patience=2, last_step=999, decays=2, decay_factor=0.5)
    factors, weights_after_cut = [], []
    for step in range(1000):
        with torch.no_grad():
            holder.model.weight.fill_(step)
        before = stop.lr_factor
        if stop(step):
            break
        factors.append(stop.lr_factor)
        if stop.lr_factor != before:
            weights_after_cut.append(float(holder.model.weight.detach()[0, 0]))
    assert step == 89 and stop.best_bits == 3.0 and stop.best_step == 50
    assert sorted(set(factors), reverse=True) == [1.0, 0.5, 0.25]
    assert weights_after_cut == [19.0, 49.0]  # each cut puts the best weights back
    assert stop.plateau_schedule(500, 1000, 0.1) == 0.1 * 0.25  # past the warm-up: lr x the cuts so far


def test_the_constant_and_plateau_schedules_do_not_end_at_the_ceiling():
    import torch

    from copystudy.models import training

    assert training.constant_lr(500, 1000, 0.1) == training.constant_lr(999, 1000, 0.1) == 0.1
    assert training.cosine_lr(999, 1000, 0.1) < 0.011  # the cosine ends at 10% of lr
    with pytest.raises(ValueError, match="schedule must be one of"):
        training.train(torch.nn.Linear(2, 2), lambda step: None, 1, 0.1, progress_bar=False, schedule="linear")


def test_early_stopping_fires_on_bytes_with_nothing_to_learn():
    """Uniformly random bytes: after the first steps the validation score cannot improve, so every
    model stops (after its plateaus and cuts) long before a ceiling it could never need."""
    from copystudy.common import parallel

    recipe = es.Recipe(model=TINY, batch_size=4, lr=3e-3, epochs=1.0, min_steps=400, max_steps=400, eval_every=5,
                       patience=3)
    with parallel.single_thread():
        m = es.train_early_stopped(recipe, bytes(np.random.default_rng(5).integers(0, 256, 1500, dtype=np.uint8)), 0)
    assert m.stopped_early and m.train_steps < 200 and m.step_ceiling == 400


def test_early_stopped_trainer_is_deterministic_and_restores_its_best():
    from copystudy.common import parallel

    recipe = es.Recipe(model=TINY, batch_size=4, lr=3e-3, epochs=1.0, min_steps=6, max_steps=6, eval_every=2,
                       patience=2)
    prefix = random_text(600, 12)
    with parallel.single_thread():
        a, b = es.train_early_stopped(recipe, prefix, 3), es.prefix_trainer(recipe)(bytes(prefix), 3)
        other = es.train_early_stopped(recipe, prefix, 4)
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch_equal(x, y), name  # bitwise the same weights
    assert not all(torch_equal(x, y) for x, y in zip(a.model.state_dict().values(), other.model.state_dict().values()))
    fit, val = es.validation_split(prefix, recipe.validation_fraction, 17)
    assert (a.fit_bytes, a.validation_bytes) == (len(fit), len(val))
    assert a.train_steps <= a.step_ceiling == 6 and a.best_step <= a.train_steps
    assert a.stopped_early == (a.train_steps < 6)
    assert es.validation_bits(a, val) == a.validation_bits_per_byte  # the kept weights are the best scored


def torch_equal(x, y) -> bool:
    import torch

    return bool(torch.equal(x, y))


# ---- two-part code at a chosen precision -------------------------------------------------------------
def test_quantisation_levels_and_two_part_by_precision():
    import torch

    from copystudy.models.causal_lm import CausalLM

    t = torch.linspace(-1.0, 0.5, 101)
    assert len(torch.unique(quant.quantized_tensor(t, 3))) <= 2 ** 3 - 1
    assert torch.equal(quant.quantized_tensor(torch.zeros(4), 4), torch.zeros(4))
    with pytest.raises(ValueError, match="at least 2 bits"):
        quant.quantized_tensor(t, 1)
    model = CausalLM.from_config(n_layer=1, n_head=1, n_embd=16, context=16, seed=0)
    model.fit(random_text(2000, 13), steps=5, batch_size=4, lr=3e-3, progress_bar=False)
    data = random_text(400, 14)
    table = quant.two_part_by_precision(model, data, (16, 8, 4)).set_index("bits_per_param")
    full = table.loc[32, "data_bits"]
    assert full == pytest.approx(float(model.bits(data).sum()), rel=1e-9)
    assert abs(table.loc[16, "data_bits"] - full) < 1e-3 * full  # 16 bits a weight: data bits barely move
    for b in (8, 4):  # the weight part shrinks exactly by the ratio of precisions
        assert table.loc[b, "weight_bits"] * 16 == table.loc[16, "weight_bits"] * b
    assert table.loc[16, "weight_bits"] == 16 * model.n_params
    assert table.loc[8, "scale_bits"] == 32 * quant.n_tensors(model) and table.loc[32, "scale_bits"] == 0
    assert np.allclose(table["total_bits"], table["weight_bits"] + table["scale_bits"] + table["data_bits"])
    assert torch.equal(next(model.model.parameters()), next(model.model.parameters()))  # the model is untouched
    assert quant.two_part_by_precision(model, data, (8,), data_bits=123.0).loc[0, "data_bits"] == 123.0


def test_byte_bits_matches_causal_lm_bits():
    from copystudy.models.causal_lm import CausalLM

    model = CausalLM.from_config(n_layer=1, n_head=1, n_embd=16, context=16, seed=0)
    for n in (0, 1, 2, 17, 100):
        data = random_text(n, n)
        assert np.allclose(dl.byte_bits(model, data, batch=5), model.bits(data), rtol=1e-9, atol=1e-9)


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_run_through_the_runner(smoke_run):
    out, m = smoke_run("description_length")
    assert m["n_seeds"] >= 2
    # the prequential code as a real stream, warm-started chains replayed by the decoder: decoded exactly
    assert m["prequential_roundtrip_exact"] is True and m["prefix_warm_start"] is True
    assert 0 <= m["prequential_coded_overhead_pct"] < 1
    for key in ("prequential_bits", "two_part_bits", "generalization_gap_bits_per_byte", "block_spearman",
                "prequential_model_bits", "capacity_bits_per_param", "prefix_models_stopped_early"):
        assert key in m and len(m[f"{key}_ci"]) == 2, key
        assert np.isfinite(m[f"{key}_ci"]).all(), key  # over 2 seeds every interval exists
    assert 0 <= m["prefix_models_stopped_early_ci"][0] and m["prefix_models_stopped_early_ci"][1] <= 1
    assert -1 <= m["block_spearman_ci"][0] and m["block_spearman_ci"][1] <= 1
    assert m["uniform_bits_per_byte"] == 8.0 and m["prequential_bits"] > 0
    best = m["two_part_best_bits_per_param"]
    assert m["two_part_bits"] == pytest.approx(m["two_part_bits_by_precision"][str(best)])
    assert m["two_part_bits"] == min(min(v.values()) for v in m["two_part_bits_by_model_and_precision"].values())
    assert m["two_part_bits"] == pytest.approx(m["two_part_data_bits"] + m["two_part_model_bits"])
    assert sorted(m["code_ordering"]) == sorted(["prequential", "two-part", "uniform", *m["classical_bits_per_byte"]])
    assert m["memorization_sizes_equal"] is True and m["memorization_stand_in_documents_distinct"] is True
    assert set(m["memorized_bits_per_byte_by_copies"]) == {"1", "8"}
    assert m["capacity_share_of_training_set"] == pytest.approx(
        m["capacity_bits_per_param"] * m["n_params"] / (8 * m["train_bytes"]))
    blocks = m["block_boundaries"]
    assert blocks[0] == 0 and blocks[-1] == m["train_bytes"] and len(m["block_bits_per_byte"]) == len(blocks) - 1
    for name in ("code_lengths", "memorized_bits", "generalization_gap", "capacity"):
        assert (out / "figures" / f"{name}.png").is_file()
    for name in ("code_lengths", "memorized_bits", "two_part_by_precision", "bits_per_parameter", "capacity_cells"):
        assert (out / "tables" / f"{name}.csv").is_file() and (out / "tables" / f"{name}.md").is_file()


def test_warm_chain_starts_each_prefix_model_from_the_one_before():
    """warm=True: one chain a seed; model k is trained with init = model k-1 (the first from scratch),
    and the code lengths are those of the same models as without warm starts."""
    data, bounds = random_text(4000, 1), dl.block_schedule(4000, 500)

    class Chained(UniformModel):
        def __init__(self, d, seed, init=None):
            self.size, self.seed, self.init = len(d), seed, init

    df, _, _ = dl.code_lengths_by_size(data, bounds, Chained, seeds=(0, 1), warm=True)
    assert list(df["train_bytes"]) == bounds[1:] * 2
    cold, _, _ = dl.code_lengths_by_size(data, bounds, lambda d, s: Chained(d, s), seeds=(0, 1))
    assert np.allclose(df["prequential_bits"], cold["prequential_bits"])
    chain = []
    dl.prefix_chain(data, bounds, lambda d, s, init=None: chain.append(init) or Chained(d, s, init), None, None, None, 0)
    assert chain[0] is None and all(isinstance(c, Chained) for c in chain[1:]) and len(chain) == len(bounds) - 1
