"""The prequential and adaptive coders: exact round trips, and a coded size that tracks the ideal."""

import numpy as np
import pytest

from copystudy.compression import online_coding as oc
from copystudy.compression.code_lengths import block_bits
from copystudy.models.causal_lm import CausalLM

TEXT = (b"The quick brown fox jumps over the lazy dog. " * 12 + bytes(range(32, 127)) * 2
        + "caf\u00e9 \u00fcber na\u00efve. ".encode() * 6)
SHAPE = dict(n_layer=1, n_head=1, n_embd=16, context=32)


def train(prefix: bytes, seed: int):
    lm = CausalLM.from_config(**SHAPE, seed=seed)
    lm.fit(prefix, steps=6, batch_size=4, lr=3e-3, seed=seed, progress_bar=False)
    return lm


def prequential():
    return oc.PrequentialLearner(train, seed=1)


def adaptive():
    return oc.AdaptiveLearner(CausalLM.from_config(**SHAPE, seed=2), steps=3, window=256, batch_size=4, lr=3e-3)


@pytest.mark.parametrize("learner", [prequential, adaptive])
@pytest.mark.parametrize("n, boundaries", [(0, [0]), (300, [0, 300]), (len(TEXT), [0, 64, 200, 480, len(TEXT)])])
def test_round_trip_is_exact(learner, n, boundaries):
    data = TEXT[:n]
    out = oc.roundtrip(data, boundaries, learner)
    assert out["roundtrip_exact"] and out["n_bytes"] == n
    assert (out["coded_bits"] == 0) == (n == 0)


def test_a_wrong_model_cannot_decode():
    """The decoder must rebuild the encoder's models: a learner with another seed does not give the bytes back."""
    boundaries = [0, 64, 200, 480, len(TEXT)]
    code = oc.encode(TEXT, boundaries, oc.PrequentialLearner(train, seed=1))
    assert oc.decode(code, oc.PrequentialLearner(train, seed=1)) == TEXT
    try:
        assert oc.decode(code, oc.PrequentialLearner(train, seed=3)) != TEXT
    except oc.DecodeError:
        pass


def test_prequential_code_tracks_its_ideal_length():
    boundaries = [0, 64, 200, 480, len(TEXT)]
    code = oc.encode(TEXT, boundaries, prequential())
    assert code.bits_per_stream[0] == 8 * 64  # block 0 is sent uniformly
    ideal = [8 * 64] + [block_bits(train(TEXT[:a], 1), TEXT, a, b) for a, b in zip(boundaries[1:], boundaries[2:])]
    assert np.allclose(code.bits_per_stream, ideal, rtol=1e-4)
    assert code.ideal_bits <= code.coded_bits <= code.ideal_bits + 32 * len(boundaries)


def test_the_adaptive_coder_learns_the_text_it_codes():
    """A repetitive text: the adaptive model's later blocks cost fewer bits than the same static model's."""
    data = b"abracadabra, said the magician. " * 40
    boundaries = oc.equal_blocks(len(data), 160)
    start = CausalLM.from_config(**SHAPE, seed=0)
    static = oc.encode(data, boundaries, lambda k, prefix, prev: start)
    learned = oc.encode(data, boundaries, oc.AdaptiveLearner(start, steps=15, window=512, batch_size=8, lr=1e-2))
    assert sum(learned.bits_per_stream[2:]) < 0.8 * sum(static.bits_per_stream[2:])


def test_bad_boundaries():
    with pytest.raises(ValueError, match="boundaries"):
        oc.encode(TEXT[:10], [0, 5], prequential())
    with pytest.raises(ValueError, match="positive"):
        oc.equal_blocks(10, 0)
    assert oc.equal_blocks(0, 5) == [0] and oc.equal_blocks(11, 5) == [0, 5, 10, 11]
