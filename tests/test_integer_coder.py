"""The integer GPT-2: exact tables, integer frequencies close to the float model's, independent of the
batch, the same in numpy and torch, and fingerprints that change with any weight."""

import math

import numpy as np
import pytest

from copystudy.compression import coding, fixed_point as fp, integer_lm, predictors
from copystudy.models.causal_lm import CausalLM

TEXT = ("def area(r):\n    return 3.14159 * r * r\n\nprint(area(2))\n" * 40).encode()


@pytest.fixture(scope="module")
def lm():
    """Two layers, context 32 (so 300 bytes cross several windows), trained briefly."""
    model = CausalLM.from_config(n_layer=2, n_head=2, n_embd=32, context=32, seed=0)
    model.fit(TEXT, steps=60, batch_size=16, lr=3e-3, progress_bar=False)
    return model


@pytest.fixture(scope="module")
def program(lm):
    return integer_lm.IntegerGPT2.from_lm(lm)


def rows(predictor, streams: np.ndarray) -> np.ndarray:
    """The predictor's rows for every position of every stream [B, T, 256]."""
    out = [predictor.start(len(streams))]
    for t in range(streams.shape[1] - 1):
        out.append(predictor.update(streams[:, t]))
    return np.stack(out, axis=1)


def streams_of(data: bytes, n: int, length: int) -> np.ndarray:
    return np.frombuffer(data[:n * length], dtype=np.uint8).reshape(n, length).astype(np.int64)


def test_tables_are_exact():
    """exp and GELU tables against math's values (they may differ by the last unit: libm is not exact)."""
    for bits in (16, 24):
        table = fp.exp_table(bits)
        assert table[0] == 2**bits and table[-1] == 0 and np.all(np.diff(table) <= 0)
        for d in (1, 100, 4096, 4096 * 5 + 17):
            assert abs(table[d] - math.exp(-d / 4096) * 2**bits) <= 1
    gelu = fp.gelu_table()
    half = len(gelu) // 2
    c = math.sqrt(2 / math.pi)
    for u in (-32768, -9000, -1, 0, 1, 777, 4096, 20000, 32767):
        x = u / 4096
        exact = 0.5 * x * (1 + math.tanh(c * (x + 0.044715 * x**3))) * 4096
        assert abs(gelu[u + half] - exact) <= 1.0, u  # exact at the knots, linear between them
    assert gelu[half] == 0 and gelu[0] == 0


def test_layer_norm_and_attention_match_floats():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, (5, 32))
    z = fp.layer_norm(fp.NUMPY, np.rint(x * 4096), eps=168) / 4096
    ref = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    assert np.abs(z - ref).max() < 2e-3
    q, k, v = (rng.normal(0, 1, (2, 2, 3, 8)) for _ in range(3))
    mask = np.arange(3)[None, :] > np.arange(3)[:, None]
    y = fp.attention(fp.NUMPY, np.rint(q * 4096), np.rint(k * 4096).transpose(0, 1, 3, 2), np.rint(v * 4096), mask,
                     fp.exp_table(16))
    s = np.where(mask, -np.inf, (q @ k.transpose(0, 1, 3, 2)))
    w = np.exp(s - s.max(-1, keepdims=True))
    assert np.abs(y / 4096 - (w / w.sum(-1, keepdims=True)) @ v).max() < 2e-3


def test_frequencies_are_integers_close_to_the_float_model(lm, program):
    """Rows of integers summing to 2**24 - 256; the coder's probabilities (f + 1) / 2**24 code the text in
    at most 0.5 % more bits than the float predictor's (issue 28's budget)."""
    streams = streams_of(TEXT, 4, 150)
    f = rows(integer_lm.IntegerPredictor(program), streams)
    assert np.array_equal(f, np.floor(f)) and f.min() >= 0 and np.all(f.sum(-1) == fp.PMF_TOTAL)
    p = rows(predictors.LMPredictor(lm), streams)
    picked = np.take_along_axis
    int_bits = -np.log2((picked(f, streams[..., None], -1) + 1) / 2**24).sum()
    float_bits = -np.log2(picked(p, streams[..., None], -1)).sum()
    assert abs(int_bits / float_bits - 1) < 0.005


def test_a_stream_gets_the_same_rows_in_any_batch(program):
    """Exact arithmetic: a stream's rows do not depend on the streams beside it (the float predictor's
    may: float32 products round differently for other shapes)."""
    streams = streams_of(TEXT[7:], 5, 100)
    together = rows(integer_lm.IntegerPredictor(program), streams)
    for b in (0, 3):
        assert np.array_equal(rows(integer_lm.IntegerPredictor(program), streams[b:b + 1])[0], together[b])
    assert np.array_equal(rows(integer_lm.IntegerPredictor(program), streams[[4, 1]]), together[[4, 1]])


def test_numpy_and_torch_give_the_same_integers(program):
    """The same program on torch's kernels (its own BLAS, its own elementwise code): bit for bit."""
    pytest.importorskip("torch")
    streams = streams_of(TEXT[3:], 3, 90)  # context 32: the windows move twice
    numpy_rows = rows(integer_lm.IntegerPredictor(program), streams)
    torch_rows = rows(integer_lm.IntegerPredictor(program, fp.TorchOps()), streams)
    assert np.array_equal(numpy_rows, torch_rows)


def test_fingerprints(lm, program, tmp_path):
    """The same weights give the same fingerprints (also saved and loaded again); one weight changed by
    one float32 step changes both."""
    again = integer_lm.IntegerGPT2.from_lm(CausalLM.load(lm.save(tmp_path / "m")))
    assert (again.model_sha256, again.program_sha256) == (program.model_sha256, program.program_sha256)
    other = CausalLM.load(tmp_path / "m")
    weight = other.model.transformer.h[1].mlp.c_fc.weight
    with np.errstate(all="ignore"):
        weight.data[3, 5] = float(np.nextafter(np.float32(weight.data[3, 5]), np.float32(np.inf)))
    changed = integer_lm.IntegerGPT2.from_lm(other)
    assert changed.model_sha256 != program.model_sha256
    peak = np.abs(other.model.transformer.h[1].mlp.c_fc.weight.detach().numpy()[:, 5]).max()
    if peak == abs(weight.data[3, 5]):  # the column's scale moved: the integers move too
        assert changed.program_sha256 != program.program_sha256


def test_unsupported_models_are_refused():
    tokenizer_lm = CausalLM.from_config(n_layer=1, n_head=1, n_embd=8, context=8)
    tokenizer_lm.tokenizer = object()
    with pytest.raises(ValueError, match="byte-level GPT-2"):
        integer_lm.IntegerGPT2.from_lm(tokenizer_lm)


def test_round_trip_through_the_range_coder(program):
    pieces = coding.chunks(TEXT[:700] + bytes(range(256)), 128)
    coded = coding.encode_streams(integer_lm.IntegerPredictor(program), pieces)
    assert coding.decode_streams(integer_lm.IntegerPredictor(program), coded) == pieces
    assert coded.ideal_bits == coded.quantised_bits <= coded.coded_bits <= coded.ideal_bits + 32 * len(pieces)
