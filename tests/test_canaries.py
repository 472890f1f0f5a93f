"""Canary generation and planting, greedy extractability and exposure with fake scorers."""

import math

import numpy as np
import pytest

from copystudy.memorization import canaries as C


def test_make_canaries_format_and_counts():
    cans = C.make_canaries((1, 2, 4), per_dup=3, n_digits=6, seed=0)
    assert [c.dup for c in cans] == [1] * 3 + [2] * 3 + [4] * 3
    assert len({c.prefix for c in cans}) == 9  # every canary has its own account number
    for c in cans:
        digits = c.secret.split()
        assert len(digits) == 6 and all(d.isdigit() and len(d) == 1 for d in digits)
        assert c.text.startswith(b"account ") and b" has PIN " in c.text
    assert C.make_canaries((1, 2, 4), 3, 6, 0) == cans


def test_plant_inserts_each_canary_dup_times_as_lines():
    docs = {"a": b"line one\nline two\n" * 20, "b": b"other text\n" * 30}
    cans = C.make_canaries((1, 3, 8), per_dup=2, seed=1)
    planted = C.plant(docs, cans, seed=0)
    joined = b"".join(planted.values())
    for c in cans:
        assert joined.count(c.text + b"\n") == c.dup
        assert joined.count(b"\n" + c.text) == c.dup  # each copy starts a line
    removed = joined
    for c in cans:
        removed = removed.replace(c.text + b"\n", b"")
    assert removed == b"".join(docs.values())  # nothing else changed


def test_exposure_ranked_first_and_last():
    canary = C.Canary(b"account 0001 has PIN ", b"1 2 3 4 5 6", 1)

    def first(prefix, suffixes):  # the canary gets fewer bits than every candidate
        return np.array([0.0 if s == canary.secret else 20.0 + 0.01 * i for i, s in enumerate(suffixes)])

    def last(prefix, suffixes):  # the canary gets more bits than every candidate
        return np.array([100.0 if s == canary.secret else 20.0 + i * 0.01 for i, s in enumerate(suffixes)])

    top = C.exposure(first, canary, n_candidates=1023)
    assert top["rank"] == 1 and top["exposure"] == pytest.approx(math.log2(1024))
    assert top["exposure_extrapolated"] > top["exposure"]  # far below the candidates' distribution
    bottom = C.exposure(last, canary, n_candidates=1023)
    assert bottom["rank"] == 1024 and bottom["exposure"] == pytest.approx(0.0)
    assert bottom["exposure_extrapolated"] < 1e-3


def test_exposure_from_bits_middle_and_ties():
    assert C.exposure_from_bits(5.0, np.arange(10.0)) == pytest.approx(math.log2(11) - math.log2(7))
    assert C.exposure_from_bits(1.0, np.ones(7)) == pytest.approx(0.0)  # ties count against the canary


def test_is_extractable_with_fake_generator():
    canary = C.Canary(b"account 0001 has PIN ", b"1 2 3", 1)
    table = {b"\n" + canary.prefix: b"1 2 3"}
    assert C.is_extractable(lambda p, n: table.get(p, b"?" * n)[:n], canary)
    assert not C.is_extractable(lambda p, n: b"1 2 4"[:n], canary)


def test_lm_scorer_matches_lm_bits():
    from copystudy.models.causal_lm import CausalLM

    lm = CausalLM.from_config(n_layer=1, n_head=1, n_embd=16, context=64, seed=0)
    score = C.lm_scorer(lm)
    prefix, suffixes = b"\naccount 0001 has PIN ", [b"1 2 3", b"9 9 9"]
    got = score(prefix, suffixes)
    for s, g in zip(suffixes, got):
        want = lm.bits(prefix + s)[len(prefix):].sum()
        assert g == pytest.approx(want, rel=1e-6)


def test_summarize_groups_by_dup():
    import pandas as pd

    rep = pd.DataFrame({"dup": [1, 1, 4], "extractable": [False, True, True], "exposure": [1.0, 3.0, 9.0],
                        "exposure_extrapolated": [1.0, 3.0, 9.0], "bits": [20.0, 10.0, 2.0]})
    s = C.summarize(rep).set_index("dup")
    assert s.loc[1, "extractable_fraction"] == 0.5 and s.loc[1, "exposure"] == 2.0 and s.loc[4, "n"] == 1


def test_exposure_skewnorm_matches_the_closed_form_tail():
    from scipy.stats import skewnorm

    a, loc, scale = 4.0, 30.0, 4.0  # candidates' code lengths from a known skew-normal
    candidates = skewnorm.rvs(a, loc=loc, scale=scale, size=5000, random_state=1)
    for bits in (10, 14):  # canaries whose true tail probability is 2^-10 and 2^-14, beyond 5000 candidates' ranks
        canary = skewnorm.ppf(2.0 ** -bits, a, loc, scale)
        assert C.exposure_skewnorm(canary, candidates, 1e6) == pytest.approx(bits, abs=0.75)
    assert (candidates <= canary).sum() <= 1  # at 2^-14 the rank among 5000 candidates cannot see the tail
    # monotone: fewer bits for the canary, more exposure
    got = [C.exposure_skewnorm(b, candidates, 1e6) for b in (35.0, 30.0, 28.0, 26.0)]
    assert got == sorted(got) and got[0] < 1.0


def test_exposure_skewnorm_caps_a_canary_far_below_every_candidate():
    candidates = np.random.default_rng(0).normal(40.0, 3.0, 999)
    assert C.exposure_skewnorm(-500.0, candidates, 1e6) == pytest.approx(math.log2(1e6))
    assert C.exposure_skewnorm(-500.0, candidates) == math.inf  # uncapped
    assert C.exposure_skewnorm(1000.0, candidates, 1e6) == pytest.approx(0.0, abs=1e-9)
    assert C.exposure_skewnorm(1.0, np.full(50, 5.0), 1e6) == pytest.approx(math.log2(1e6))  # no spread to fit
    assert C.exposure_skewnorm(9.0, np.full(50, 5.0), 1e6) == 0.0
