"""Memorised bits with a noise floor: the in/out design, its stand-ins, the null and the dose-response,
on made-up scores whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from copystudy.memorization import memorized_bits as mb


def _docs(n: int, size: int, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {f"doc{i:02d}": bytes(rng.integers(97, 123, size + 37 * i, dtype=np.uint8)) for i in range(n)}


def _design(n_models: int = 6) -> mb.Design:
    train = {**_docs(30, 300), **{f"long{i}": b"L" * 50 + bytes([65 + i]) * 5000 for i in range(6)}}
    unseen = {f"held{i}": bytes([97 + i]) * 3000 for i in range(5)}
    spec = mb.DesignSpec(n_works=8, work_bytes=(300, 900), copy_levels=(1, 2, 4, 8), base_bytes=2000,
                         n_models=n_models, n_hosts=n_models // 2 + 3, n_controls=6, control_bytes=200, seed=1)
    return mb.make_design(train, unseen, spec)


def test_stand_ins_come_from_different_documents_and_no_model_trains_on_a_control():
    d = _design()
    hosts = mb.stand_in_hosts(d)
    for w, cuts in d.stand_ins.items():
        docs = [label.rsplit("[", 1)[0] for label, _ in cuts]
        assert len(cuts) == d.n_models // 2 and len(set(docs)) == len(docs)  # one document per out-model
        assert all(len(b) == len(d.works[w]) for _, b in cuts)
    assert not any(c.rsplit("[", 1)[0] in hosts for c in d.controls)  # controls come from other documents
    sizes = set()
    for m in range(d.n_models):
        docs = d.training_set(m)
        sizes.add(sum(map(len, docs.values())))
        text = b"".join(docs.values())
        assert not any(c in text for c in d.controls.values())
        for i, (w, body) in enumerate(d.works.items()):
            copies = [k for k in docs if k.startswith(f"{w}#copy")]
            assert len(copies) == d.copies[w]
            assert all((docs[k] == body) == bool(d.member[i, m]) for k in copies)  # the work, or its stand-in
    assert len(sizes) == 1  # every model trains on the same number of bytes
    assert (d.member.sum(1) == d.n_models // 2).all()
    assert sorted(set(d.copies.values())) == [1, 2, 4, 8]


def test_stand_ins_cannot_come_from_too_few_documents():
    with pytest.raises(ValueError, match="unseen documents"):
        mb.cut_stand_ins({"w": b"x" * 100}, {"a": b"y" * 1000, "b": b"z" * 50}, per_work=2)


def _scores(d: mb.Design, memorised: dict[str, float], noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """bits(text | model m): 8 bits a byte, minus memorised[w] when w is in model m, plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(d.n_models):
        for i, (w, t) in enumerate(d.works.items()):
            rows.append({"model": m, "text": w, "bytes": len(t), "train_bytes": 10, "train_steps": 5,
                         "bits": 8.0 * len(t) - memorised[w] * d.member[i, m] + noise * rng.normal()})
        for c, t in d.controls.items():
            rows.append({"model": m, "text": c, "bytes": len(t), "train_bytes": 10, "train_steps": 5,
                         "bits": 8.0 * len(t) + noise * rng.normal()})
    return pd.DataFrame(rows)


def test_work_table_null_and_dose_response_recover_known_memorisation():
    d = _design()
    truth = {w: 0.05 * c * len(d.works[w]) for w, c in d.copies.items()}  # 0.05 bits/byte per copy
    scores = _scores(d, truth, noise=2.0)
    works = mb.work_table(d, scores).set_index("work")
    for w in d.works:
        assert works.loc[w, "memorized_bits"] == pytest.approx(truth[w], abs=4.0)
    null = mb.null_table(d, scores)
    assert len(null) == len(d.controls) * len(d.works)
    floor = mb.null_quantile(null)
    assert abs(floor) < 0.05  # noise of 2 bits on 200-byte controls
    works["above_null"] = works["memorized_bits_per_byte"] > floor
    dose = mb.dose_response(works.reset_index(), floor, n_boot=300).set_index("copies")
    assert list(dose.index) == [1, 2, 4, 8]
    assert dose.loc[8, "memorized_bits_per_byte"] == pytest.approx(0.4, abs=0.02)
    assert (dose["memorized_bits_per_byte_low"] <= dose["memorized_bits_per_byte"]).all()
    assert dose.loc[8, "share_above_null"] == 1.0 and 0 <= dose.loc[8, "share_above_null_low"] < 1
    slope = mb.dose_slope(works.reset_index(), n_boot=300)
    assert slope["low"] > 0  # rises with the copies
    # nothing memorised: the works look like the controls, and the slope's interval reaches zero
    flat = mb.work_table(d, _scores(d, {w: 0.0 for w in d.works}, noise=2.0, seed=1))
    assert mb.dose_slope(flat, n_boot=300)["low"] < 0 < mb.dose_slope(flat, n_boot=300)["high"]


def test_memorized_bits_is_without_minus_with():
    assert mb.memorized_bits(100.0, 40.0) == 60.0
    assert list(mb.memorized_bits(pd.Series([3.0, 5.0]), pd.Series([1.0, 1.0]))) == [2.0, 4.0]
    assert mb.pattern_difference(np.array([1.0, 5.0, 3.0, 7.0]), np.array([True, False, True, False])) == 4.0
