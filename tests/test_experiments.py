"""The notebooks' summaries and verdicts, on made-up inputs whose right answers are known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from copystudy.compression import baselines, rates
from copystudy.experiments.description_length import memorized as dl_memorized
from copystudy.experiments.description_length import steps as description_length
from copystudy.experiments.description_length import summary as dl_summary
from copystudy.experiments.lm_compression import steps as lm_compression
from copystudy.experiments.lm_compression import summary as lm_summary
from copystudy.experiments.royalty_shares import steps as royalty_shares
from copystudy.common.verdicts import rises, trend


def test_trend():
    assert trend([1, 2, 3], [1, 5, 9]) == pytest.approx(1.0)
    assert trend([1, 2, 3], [9, 5, 1]) == pytest.approx(-1.0)
    assert np.isnan(trend([1, 2, 3], [4, 4, 4]))
    assert rises({1: 0.1, 2: 0.5}, "up", "flat") == (pytest.approx(1.0), "up")
    assert rises({1: 0.5, 2: 0.1}, "up", "flat")[1] == "flat" and rises({1: 3, 2: 3}, "up", "flat")[1] == "flat"


# ---- copyright risk: the summary and verdicts are tested in test_copyright_risk.py -----------------------


# ---- lm compression ---------------------------------------------------------------------------------
def _rates(lm_rates: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rate tables as `lm_compression.code` returns them: the LM once per seed, classical ones once."""
    rows, details = [], []
    for text in ("heldout", "train"):
        for chunking in ("2048-byte chunks", "unchunked", lm_compression.ADAPTIVE):
            for seed, lm_rate in enumerate(lm_rates):
                if chunking == lm_compression.ADAPTIVE and text == "train":
                    continue
                rate = lm_rate * (0.9 if text == "train" else 1.0) * (0.5 if chunking == lm_compression.ADAPTIVE else 1)
                rows.append({"compressor": "lm", "label": "lm", "seed": seed, "text": text, "chunking": chunking,
                             "raw_rate": rate, "adjusted_rate": rate + 0.5})
                details.append({"seed": seed, "text": text, "chunking": chunking, "ideal_bits": 800.0,
                                "original_bytes": 400, "overhead_pct": 0.01, "roundtrip_exact": True})
            if chunking != lm_compression.ADAPTIVE:
                for name in baselines.COMPRESSORS:
                    rows.append({"compressor": name, "label": name, "seed": np.nan, "text": text, "chunking": chunking,
                                 "raw_rate": 0.35 if name != "ppmd" else 0.33, "adjusted_rate": 0.35})
    return pd.DataFrame(rows), pd.DataFrame(details)


def _trained(seeds, gap: float):
    docs = pd.DataFrame([{"split": split, "document": f"{split}{i}", "bytes": 100,
                          "bits": 300 + (gap * 100 if split == "heldout" else 0) + 5 * i}
                         for split in ("train", "heldout") for i in range(6)])
    lm = SimpleNamespace(name="gpt2-bytes", n_params=1000, tokenizer=None, name_or_path=None, pretrained=False,
                         byte_level=True)
    return [lm_compression.Trained(s, lm, [], 0.0, docs.assign(seed=s)) for s in seeds]


def test_lm_compression_summary_and_verdicts():
    texts = lm_compression.Texts({}, b"x" * 5000, b"y" * 400, b"x" * 400)
    rates, details = _rates([0.30, 0.31, 0.29])
    m = lm_summary.summarize(_trained([0, 1, 2], 0.5), texts, lm_compression.Coding(rates, details, 2048, True), None,
                             n_boot=200)
    assert m["n_seeds"] == 3 and m["rate_chunked_lm"] == pytest.approx(0.30)
    lo, hi = m["rate_chunked_lm_ci"]
    assert lo < 0.30 < hi and hi < 0.33  # the interval over seeds, below every classical rate
    assert m["lm_vs_gzip_chunked_ratio"] == pytest.approx(0.30 / 0.35)
    assert m["best_classical_chunked"] == "ppmd" and m["lm_beats_every_classical_chunked"]
    assert m["best_compressor_chunked"] == "lm" and m["rate_unchunked_lm_adaptive"] == pytest.approx(0.15)
    assert m["adaptive_roundtrip_exact"] and m["lm_adaptive_beats_every_classical_unchunked"]
    assert m["model_bits_per_byte_heldout"] == 2.0 and m["model_bytes_float16"] == 2000
    assert m["generalization_gap_bits_per_byte"] == pytest.approx(0.5 * 8 / 8)
    assert m["generalization_gap_bits_per_byte_ci"][0] > 0
    said = " ".join(lm_summary.verdicts(m))
    assert "beats every classical compressor on the same chunks" in said and "beyond the spread" in said
    # a wide spread over seeds that reaches above PPMd's rate is not a win, even with a lower mean
    worse = lm_summary.summarize(_trained([0, 1, 2], 0.0), texts,
                                 lm_compression.Coding(*_rates([0.20, 0.40, 0.30]), 2048, True), None, n_boot=200)
    assert not worse["lm_beats_every_classical_chunked"] and worse["rate_chunked_lm"] < 0.33
    said = " ".join(lm_summary.verdicts(worse))
    assert "does NOT beat every classical compressor on the same chunks" in said and "includes 0" in said
    assert list(lm_compression.rates_table(rates).columns[:2]) == ["compressor", "label"]


def test_sweep_summary_finds_the_u_and_whether_the_best_size_grows():
    noise = {(20000, "l"): 0.1}  # one noisy cell; the others vary by 0.01 between seeds
    rows = [(d, name, p, seed, r + noise.get((d, name), 0.01) * (seed - 1)) for d, rates in
            ((1000, (0.9, 0.5, 0.7)), (8000, (0.9, 0.8, 0.4)), (20000, (0.9, 0.5, 0.52)))
            for (name, p), r in zip((("s", 10), ("m", 100), ("l", 1000)), rates) for seed in range(3)]
    table = pd.DataFrame(rows, columns=["data_bytes", "model", "n_params", "seed", "adjusted_rate"])
    table = table.assign(train_rate=table.adjusted_rate, heldout_rate=table.adjusted_rate)
    best = rates.best_model_per_data_size(table)
    m = lm_summary.summarize_sweep(table, best)
    assert m["sweep_n_seeds"] == 3
    assert m["sweep_u_shape_by_data_bytes"] == {1000: True, 8000: False, 20000: True}
    # at 20000 bytes the interior minimum is within seed noise of the largest model: no U established
    assert m["sweep_u_shape_separated_by_data_bytes"] == {1000: True, 8000: False, 20000: False}
    assert m["sweep_tied_models_by_data_bytes"][20000] == ["m", "l"]
    assert m["sweep_best_model_params_by_data_bytes"] == {1000: 100, 8000: 1000, 20000: 100}
    assert not m["sweep_best_grows_with_data"] and not m["sweep_best_grows_beyond_seed_noise"]
    said = lm_summary.sweep_verdicts(m)
    assert "a U" in said[0] and "the largest model is best" in said[1] and "within seed noise" in said[2]
    assert said[-1].endswith("does NOT grow with the data at this scale")


# ---- description length -----------------------------------------------------------------------------
class _RateModel:
    """Codes every byte at a fixed rate; trained on more bytes, a lower rate (a fake prefix model)."""

    n_params, context = 1000, 8

    def __init__(self, data, seed):
        self.rate = 6.0 - len(data) / 1000 + 0.01 * seed
        self.train_steps, self.step_ceiling, self.best_step, self.stopped_early = 10, 20, 10, True
        self.fit_bytes, self.validation_bits_per_byte = int(0.9 * len(data)), self.rate

    def bits(self, data):
        return np.full(len(data), self.rate)


def _final(model, data_bits, seed):
    two = pd.DataFrame({"bits_per_param": [32, 16, 8], "quantized": [False, True, True],
                        "weight_bits": [32000.0, 16000.0, 8000.0], "scale_bits": [0.0, 64.0, 64.0],
                        "data_bits": [data_bits, data_bits, data_bits + 100.0 * model.rate]})
    two["model_bits"] = two["weight_bits"] + two["scale_bits"]
    two["total_bits"] = two["model_bits"] + two["data_bits"]
    two["total_bits_per_byte"] = two["total_bits"] / 4000
    docs = pd.DataFrame({"document": ["t1", "t2", "h1"], "split": ["train", "train", "heldout"], "bytes": [100] * 3,
                         "bits": [300.0, 310.0, 400.0]})
    return {"two_part": two, "doc_bits": docs}


def _description_inputs():
    from copystudy.compression import code_lengths as dl
    from copystudy.compression.generalization import generalization_gap

    data = bytes(4000)
    boundaries = dl.block_schedule(len(data), 1000)
    runs, finals, _ = dl.code_lengths_by_size(data, boundaries, _RateModel, seeds=(0, 1, 2), final=_final, heldout=bytes(50))
    cl = description_length.CodeLengths(boundaries, runs, finals)
    gap = generalization_gap(description_length.document_table(cl), n_boot=200)
    stream = {"prequential_stream_seed": 0, "prequential_coded_bits": 20100, "prequential_ideal_bits_stream_seed": 20000.0,
              "prequential_coded_overhead_pct": 0.5, "prequential_roundtrip_exact": True}
    return dl_summary.Sections(cl, gap, stream, {"gzip": 2.5, "ppmd": 2.2})


def test_description_length_summary_bits_per_parameter_and_verdicts():
    m = dl_summary.summarize(_description_inputs(), 1000, 300)
    assert m["n_seeds"] == 3 and m["block_boundaries"] == [0, 1000, 2000, 4000]
    # block 0 uniform, then the model of 1000 bytes (rate 5 + 0.01 seed) codes 1000 bytes, that of 2000 (4) 2000
    assert m["prequential_bits"] == pytest.approx(8000 + 5.01 * 1000 + 4.01 * 2000)
    assert m["block_bits_per_byte"] == [8.0, pytest.approx(5.01), pytest.approx(4.01)]
    assert m["block_increases_by_seed"] == [0, 0, 0] and m["block_spearman"] == pytest.approx(-1.0)
    assert m["two_part_best_bits_per_param"] == 8 and m["two_part_bits_by_precision"][16] > m["two_part_bits"]
    assert m["two_part_bits"] == pytest.approx(8064.0 + 2.01 * 4000 + 100 * 2.01)
    assert m["prequential_model_bits"] == pytest.approx(m["prequential_bits"] - 2.01 * 4000)
    assert m["generalization_gap_bits_per_byte"] == pytest.approx(4.0 - 3.05)
    assert m["prefix_models_stopped_early"] == 1.0 and 0 < m["prefix_models_stopped_early_ci"][0] < 1
    # the ordering: two-part (~4.1 bits/byte) < prequential (~5.3) < uniform, the classical ones below all
    assert m["code_ordering"] == ["ppmd", "gzip", "two-part", "prequential", "uniform"]
    assert m["code_ordering_separated"] == [True, True, True, True]
    per_param = dl_summary.bits_per_parameter(m).set_index("quantity")
    assert per_param.loc["prequential − L(data | final weights)", "bits_per_parameter"] == pytest.approx(
        m["prequential_model_bits"] / 1000)
    said = " ".join(dl_summary.verdicts(m))
    assert "reproduced the training text exactly" in said and "20,100 bits coded" in said
    assert "The two-part code is lower than the prequential code, and their 95% intervals separate" in said
    assert "ppmd 2.200 < gzip 2.500 < two-part" in said
    assert "On fixed text the learner improves with every doubling of its data." in said
    assert "beats the uniform code" in said and "100% [" in said
    assert "falls at every block" in said and "reliably cheaper" in said


# ---- royalty shares ---------------------------------------------------------------------------------
def test_royalty_seed_metrics_summary_and_verdicts():
    from copystudy.experiments.royalty_shares import summary as royalty_summary

    game = SimpleNamespace(owners=["a", "b"], n=2)

    def pay(shares, phi):
        return {"shares": np.array(shares), "loo_shares": np.eye(2), "similarity": np.full((2, 2), 0.5),
                "shapley": np.array(phi), "shapley_se": np.full((2, 2), 0.5)}

    pays = {0: pay([[0.8, 0.2], [0.6, 0.4]], [[8.0, 2.0], [6.0, 4.0]]),
            1: pay([[0.7, 0.3], [0.3, 0.7]], [[7.0, 3.0], [3.0, 7.0]]),
            2: pay([[0.9, 0.1], [0.2, 0.8]], [[9.0, 1.0], [2.0, 8.0]])}
    m = royalty_summary.seed_metrics("g", game, pays)
    # prompted owner on top in 5 of the 6 (prompt, seed) trials: a Wilson interval around 5/6
    assert m["g_prompted_owner_top_share_rate"] == pytest.approx(5 / 6)
    lo, hi = m["g_prompted_owner_top_share_rate_ci"]
    assert 0.4 < lo < 5 / 6 < hi < 1
    assert m["g_mean_prompted_share"] == pytest.approx(np.mean([0.6, 0.7, 0.85]))
    lo, hi = m["g_mean_prompted_share_ci"]
    assert lo < 0.6 and hi > 0.85  # a t interval over 3 seeds is wider than their range
    assert m["g_loo_prompted_owner_top_share_rate"] == 1.0 and m["g_similarity_prompted_owner_top_share_rate"] == 0.0
    assert m["g_share_matrix"]["a"] == {"a": pytest.approx(0.8), "b": pytest.approx(0.2)}
    assert m["g_prompted_shapley_bits"] == pytest.approx(np.mean([6.0, 7.0, 8.5]))
    assert m["g_prompted_shapley_mc_se_bits"] == 0.5 and m["g_prompted_shapley_seed_sd_bits"] > 0.5
    summary = royalty_summary.summary_table(m)
    assert summary["uniform_share"].tolist() == [0.5] * 3 and summary["top_share_rate"].tolist()[1:] == [1.0, 0.0]
    m.update({f"g_{k}": 1.0 for k in royalty_summary.NOISE_KEYS}, n_seeds=3)
    said = "\n".join(royalty_summary.main_verdicts(m))
    assert "claim is not established" in said  # 6 trials cannot put the rate's interval above 1/2
    assert "similarity baseline's rate reaches below 1/2" in said and "miss" not in said
    # a game the claim fails on: the prompted owner mostly second
    flipped = {s: pay(np.fliplr(p["shares"]), p["shapley"]) for s, p in pays.items()}
    m2 = royalty_summary.seed_metrics("g", game, flipped)
    assert m2["g_prompted_owner_top_share_rate"] == pytest.approx(1 / 6)
    m2.update({k: v for k, v in m.items() if "median_se" in k}, n_seeds=3)
    assert "miss (mean over seeds): prompt a pays b most" in "\n".join(royalty_summary.main_verdicts(m2))


def test_owner_checks_measure_splits_and_copies():
    from copystudy.experiments.royalty_shares import checks as royalty_checks
    from copystudy.experiments.royalty_shares import summary as royalty_summary

    rows = []
    for s, (half, copy) in enumerate([(0.3, 0.2), (0.35, 0.25), (0.32, 0.22)]):
        for method in ("Shapley royalty share", "leave-one-out", "similarity"):
            rows += [{"variant": "shell", "seed": s, "method": method, "player": p, "role": r, "share": v,
                      "owner_share_before": 0.6}
                     for p, r, v in (("a1", "shell", half), ("a2", "shell", half + 0.1), ("b", "other", 0.0))]
            rows += [{"variant": "copycat", "seed": s, "method": method, "player": p, "role": r, "share": v,
                      "owner_share_before": 0.6}
                     for p, r, v in (("a", "original", 0.5), ("b", "other", 0.0), ("a-copy", "copy-cat", copy))]
    m = royalty_checks.owner_check_metrics(pd.DataFrame(rows))
    assert m["shell_srs_after"] == pytest.approx(np.mean([0.7, 0.8, 0.74]))
    assert m["shell_srs_change"] == pytest.approx(np.mean([0.1, 0.2, 0.14]))
    assert m["shell_loo_smaller_half_fraction"] == pytest.approx(np.mean([0.3 / 0.7, 0.35 / 0.8, 0.32 / 0.74]))
    assert m["copycat_similarity_copycat"] == pytest.approx(np.mean([0.2, 0.25, 0.22]))
    said = "\n".join(royalty_summary.check_verdicts({**m, "shell_owner": "a"}))
    assert "beyond seed noise" in said and "copy-cat gets" in said and "less than the original" in said
    assert "a split into two shells" in said


def test_digit_game_data_splits_classes():
    owners, public = royalty_shares.digit_game_data([0, 3])
    assert list(owners) == ["digit0", "digit3"] and len(public) == 8 and "digit3" not in public
