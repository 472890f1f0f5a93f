"""Code-length bookkeeping of description_length, checked with fake models whose bits are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from copystudy import compression
from copystudy import description_length as dl


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
        compression.model_bits(10, 0)


def test_code_lengths_by_size_with_uniform_learner():
    data = random_text(3000, 4)
    bounds = dl.block_schedule(len(data), 250)
    df, models = dl.code_lengths_by_size(data, bounds, lambda d: UniformModel(), heldout=random_text(500, 5))
    assert list(df["train_bytes"]) == bounds[1:]
    assert np.all(df["prequential_bits"] == df["uniform_bits"])
    assert np.all(df["two_part_bits"] == df["uniform_bits"] + UniformModel.n_params * 16)
    assert np.all(df["prequential_bits_per_byte"] == 8.0)
    assert np.all(df["gap_bits"] == 0.0)
    assert list(models) == bounds[1:] and all(isinstance(m, UniformModel) for m in models.values())


def test_code_lengths_by_size_two_part_with_memorising_learner():
    data = random_text(2048, 6)
    df, _ = dl.code_lengths_by_size(data, dl.block_schedule(len(data), 256), KnowsModel)
    # each model saw its whole prefix: 0.5 bits a byte for it, plus the weights
    assert np.all(df["data_bits"] == 0.5 * df["train_bytes"])
    assert np.all(df["two_part_bits"] == df["data_bits"] + KnowsModel.n_params * 16)


def test_generalization_gap_of_a_memorising_model():
    train, held = random_text(20_000, 7), random_text(3000, 8)
    gap = dl.generalization_gap(KnowsModel(train), train, held, chunk=512)
    assert gap["n_bytes"] == 3000
    assert gap["train_bits"] == 0.5 * 3000 and gap["heldout_bits"] == 8.0 * 3000
    assert gap["gap_bits"] == 7.5 * 3000 and gap["gap_bits_per_byte"] == 7.5
    # a model that never saw either has no gap
    assert dl.generalization_gap(UniformModel(), train, held)["gap_bits"] == 0.0


def test_generalization_gap_uses_equal_sizes_when_training_text_is_short():
    train, held = random_text(1000, 9), random_text(3000, 10)
    gap = dl.generalization_gap(KnowsModel(train), train, held, chunk=256)
    assert gap["n_bytes"] == 1000 and gap["gap_bits"] == 7.5 * 1000


def test_memorised_bits_sign_and_duplicates():
    docs = {f"doc{i}": random_text(300, 20 + i) for i in range(6)}
    works = ["doc1", "doc3"]
    corpus = dl.memorization_corpus(docs, works, duplicated="doc1", copies=4)
    assert sum(k.startswith("doc1") for k in corpus) == 4
    rest = dl.without(corpus, "doc1", "doc3")
    assert not any(k.startswith(("doc1", "doc3")) for k in rest) and len(rest) == len(corpus) - 5
    controls = {"held": random_text(300, 99)}
    seen = []

    def train(data, seed):
        seen.append(seed)
        return KnowsModel(data)

    table = dl.memorization_table(corpus, {w: docs[w] for w in works}, train, controls, seeds=(0, 1))
    assert seen == [0, 0, 1, 1]  # a with- and a without-model per seed
    rows = table.set_index("work")
    for w in works:  # the with-model knows x (0.5 bit/byte), the without-model does not (8)
        assert rows.loc[w, "memorized_bits"] == (8.0 - 0.5) * 300 > 0
        assert rows.loc[w, "memorized_bits_sd"] == 0.0
        assert rows.loc[w, "memorized_bits_adjusted"] == rows.loc[w, "memorized_bits"]  # controls: no shift
    assert rows.loc["doc1", "copies"] == 4 and rows.loc["doc3", "copies"] == 1
    assert rows.loc["held", "memorized_bits"] == 0.0 and rows.loc["held", "kind"] == "held-out control"
    assert dl.memorized_bits(100.0, 40.0) == 60.0


def test_memorised_bits_adjusted_by_the_controls_shift():
    class Shifted(UniformModel):
        def __init__(self, data):
            self.rate = 7.0 if len(data) > 2000 else 7.5  # the bigger training set is better on everything

        def bits(self, x):
            return np.full(len(x), self.rate)

    docs = {f"doc{i}": random_text(300, 40 + i) for i in range(6)}
    corpus = dl.memorization_corpus(docs, ["doc2"], "doc2", 2)
    table = dl.memorization_table(corpus, {"doc2": docs["doc2"]}, lambda d, s: Shifted(d),
                                  {"held": random_text(200, 3)}).set_index("work")
    assert table.loc["doc2", "memorized_bits"] == 0.5 * 300  # raw: looks memorised
    assert table.loc["held", "memorized_bits_per_byte"] == 0.5  # but unseen text moves as much
    assert table.loc["doc2", "memorized_bits_adjusted"] == 0.0


def test_memorization_corpus_respects_budget_and_validates():
    docs = {f"d{i}": b"x" * 100 for i in range(10)}
    corpus = dl.memorization_corpus(docs, ["d2"], duplicated="d2", copies=3, max_bytes=500)
    originals = [k for k in corpus if "#copy" not in k]
    assert "d2" in originals and sum(len(corpus[k]) for k in originals) <= 500
    with pytest.raises(ValueError, match="not training documents"):
        dl.memorization_corpus(docs, ["nope"], None, 1)
    with pytest.raises(ValueError, match="must be one of the works"):
        dl.memorization_corpus(docs, ["d1"], "d2", 2)


def test_choose_works_size_range_and_error():
    docs = {f"d{i}": b"x" * (100 * i) for i in range(1, 10)}
    chosen = dl.choose_works(docs, 3, 200, 500, seed=1)
    assert len(set(chosen)) == 3 and all(200 <= len(docs[c]) <= 500 for c in chosen)
    with pytest.raises(ValueError, match="n_works"):
        dl.choose_works(docs, 5, 200, 500)


def test_training_steps_recipe():
    assert dl.training_steps(4096 * 10, epochs=2, batch_size=32, context=128, min_steps=5, max_steps=100) == 20
    assert dl.training_steps(100, 2, 32, 128, min_steps=5, max_steps=100) == 5
    assert dl.training_steps(10**9, 2, 32, 128, min_steps=5, max_steps=100) == 100


def test_bootstrap_gap_point_estimate_is_byte_weighted():
    df = pd.DataFrame({"split": ["train", "train", "heldout"], "bytes": [100, 300, 200],
                       "bits": [200.0, 300.0, 800.0]})
    out = dl.bootstrap_gap(df, n_boot=200)
    assert math.isclose(out["gap_bits_per_byte"], 800 / 200 - 500 / 400)
    assert out["low"] <= out["gap_bits_per_byte"] + 1e-12 and out["high"] >= out["low"]


def test_byte_bits_matches_causal_lm_bits():
    from copystudy.models.causal_lm import CausalLM

    model = CausalLM.from_config(n_layer=1, n_head=1, n_embd=16, context=16, seed=0)
    for n in (0, 1, 2, 17, 100):
        data = random_text(n, n)
        assert np.allclose(dl.byte_bits(model, data, batch=5), model.bits(data), rtol=1e-9, atol=1e-9)


def test_smoke_run_through_the_runner(run_notebook):
    out, m = run_notebook("description_length")
    for key in ("uniform_bits", "two_part_bits", "prequential_bits", "generalization_gap_bits",
                "generalization_gap_bits_per_byte", "memorized_bits_duplicated_work", "n_params"):
        assert key in m, key
    assert m["uniform_bits_per_byte"] == 8.0
    assert m["prequential_bits"] > 0 and m["two_part_bits"] > m["two_part_data_bits"]
    assert m["two_part_bits"] == m["two_part_data_bits"] + 16 * m["n_params"]
    assert isinstance(m["memorized_bits_by_work"], dict) and len(m["memorized_bits_by_work"]) >= 2
    blocks = m["block_boundaries"]
    assert blocks[0] == 0 and blocks[-1] == m["train_bytes"]
    for name in ("code_lengths", "memorized_bits"):
        assert (out / "figures" / f"{name}.png").is_file()
        assert (out / "tables" / f"{name}.csv").is_file() and (out / "tables" / f"{name}.md").is_file()
