"""The notebooks' summaries and verdicts, on made-up inputs whose right answers are known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from copystudy import baselines, compression
from copystudy.experiments import description_length, lm_compression, memorization, royalty_shares
from copystudy.verdicts import rises, trend


def test_trend():
    assert trend([1, 2, 3], [1, 5, 9]) == pytest.approx(1.0)
    assert trend([1, 2, 3], [9, 5, 1]) == pytest.approx(-1.0)
    assert np.isnan(trend([1, 2, 3], [4, 4, 4]))
    assert rises({1: 0.1, 2: 0.5}, "up", "flat") == (pytest.approx(1.0), "up")
    assert rises({1: 0.5, 2: 0.1}, "up", "flat")[1] == "flat" and rises({1: 3, 2: 3}, "up", "flat")[1] == "flat"


# ---- memorization -----------------------------------------------------------------------------------
def _canary_summary(exposures: dict[int, list[float]]) -> pd.DataFrame:
    """by (n_params, model, dup): exposures[n_params] lists the exposure per dup 1, 2, 4."""
    return pd.DataFrame([{"n_params": p, "model": f"{p // 1000}K", "dup": d, "extractable_fraction": e / 10,
                          "exposure": e, "exposure_extrapolated": e + 1, "n": 4, "bits": 1.0}
                         for p, values in exposures.items() for d, e in zip((1, 2, 4), values)])


def _memorization_metrics(rates_by_n, rates_by_steps, exposures):
    ladder = memorization.Ladder(pd.DataFrame({"N": list(rates_by_n), "extraction_rate": list(rates_by_n.values()),
                                               "rate_tiled_l2": [0.0] * len(rates_by_n)}), n_params=1000, baseline=0.01)
    length = pd.DataFrame({"steps": list(rates_by_steps), "extraction_rate": list(rates_by_steps.values())})
    return memorization.summarize(ladder, length, 64, _canary_summary(exposures), 100, memorization.Criterion())


def test_memorization_summary_takes_the_largest_model_and_means_over_duplications():
    m = _memorization_metrics({8: 0.9, 64: 0.1}, {100: 0.0, 200: 0.5}, {1000: [1, 2, 3], 5000: [2, 4, 9]})
    assert m["extraction_rate_by_n"] == {8: 0.9, 64: 0.1} and m["length_n"] == 64
    assert m["largest_lm"] == "5K" and m["exposure_by_dup"] == {1: 2.0, 2: 4.0, 4: 9.0}
    assert m["exposure_by_size"] == {1000: pytest.approx(2.0), 5000: pytest.approx(5.0)}
    assert m["heldout_false_positive_rate"] == 0.01 and m["distance"] == "l2"


def test_memorization_verdicts_follow_the_numbers():
    as_papers = memorization.verdicts(_memorization_metrics({8: 0.9, 64: 0.1}, {100: 0.0, 200: 0.5},
                                                            {1000: [1, 2, 3], 5000: [2, 4, 9]}), 999)
    assert any("As in Carlini et al." in v for v in as_papers) and any("Longer training" in v for v in as_papers)
    assert any("rises with duplication" in v for v in as_papers) and any("Larger models memorise more" in v
                                                                          for v in as_papers)
    against = memorization.verdicts(_memorization_metrics({8: 0.2, 64: 0.2}, {100: 0.5, 200: 0.1},
                                                          {1000: [5, 4, 3], 5000: [3, 2, 1]}), 999)
    assert sum("NOT" in v or "not clear" in v for v in against) == 4
    assert memorization.ladder_sizes([8, 32, 5000, 32], 100) == [8, 32, 100]


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
    lm = SimpleNamespace(name="gpt2-bytes", n_params=1000, tokenizer=None, name_or_path=None)
    return [lm_compression.Trained(s, lm, [], 0.0, docs.assign(seed=s)) for s in seeds]


def test_lm_compression_summary_and_verdicts():
    texts = lm_compression.Texts({}, b"x" * 5000, b"y" * 400, b"x" * 400)
    rates, details = _rates([0.30, 0.31, 0.29])
    m = lm_compression.summarize(_trained([0, 1, 2], 0.5), texts, rates, details, 2048, True, n_boot=200)
    assert m["n_seeds"] == 3 and m["rate_chunked_lm"] == pytest.approx(0.30)
    lo, hi = m["rate_chunked_lm_ci"]
    assert lo < 0.30 < hi and hi < 0.33  # the interval over seeds, below every classical rate
    assert m["lm_vs_gzip_chunked_ratio"] == pytest.approx(0.30 / 0.35)
    assert m["best_classical_chunked"] == "ppmd" and m["lm_beats_every_classical_chunked"]
    assert m["best_compressor_chunked"] == "lm" and m["rate_unchunked_lm_adaptive"] == pytest.approx(0.15)
    assert m["adaptive_roundtrip_exact"] and m["lm_adaptive_beats_every_classical_unchunked"]
    assert m["model_bits_per_byte_heldout"] == 2.0 and m["model_bytes_float16"] == 2000
    assert m["lm_heldout_minus_train_bits_per_byte"] == pytest.approx(0.5 * 8 / 8)
    assert m["lm_heldout_minus_train_bits_per_byte_ci"][0] > 0
    said = " ".join(lm_compression.verdicts(m, 2048))
    assert "beats every classical compressor on the same chunks" in said and "beyond the spread" in said
    # a wide spread over seeds that reaches above PPMd's rate is not a win, even with a lower mean
    worse = lm_compression.summarize(_trained([0, 1, 2], 0.0), texts, *_rates([0.20, 0.40, 0.30]), 2048, True,
                                     n_boot=200)
    assert not worse["lm_beats_every_classical_chunked"] and worse["rate_chunked_lm"] < 0.33
    said = " ".join(lm_compression.verdicts(worse, 2048))
    assert "does NOT beat every classical compressor on the same chunks" in said and "includes 0" in said
    assert list(lm_compression.rates_table(rates).columns[:2]) == ["compressor", "label"]


def test_sweep_summary_finds_the_u_and_whether_the_best_size_grows():
    noise = {(20000, "l"): 0.1}  # one noisy cell; the others vary by 0.01 between seeds
    rows = [(d, name, p, seed, r + noise.get((d, name), 0.01) * (seed - 1)) for d, rates in
            ((1000, (0.9, 0.5, 0.7)), (8000, (0.9, 0.8, 0.4)), (20000, (0.9, 0.5, 0.52)))
            for (name, p), r in zip((("s", 10), ("m", 100), ("l", 1000)), rates) for seed in range(3)]
    table = pd.DataFrame(rows, columns=["data_bytes", "model", "n_params", "seed", "adjusted_rate"])
    table = table.assign(train_rate=table.adjusted_rate, heldout_rate=table.adjusted_rate)
    best = compression.best_model_per_data_size(table)
    m = lm_compression.summarize_sweep(table, best)
    assert m["sweep_n_seeds"] == 3
    assert m["sweep_u_shape_by_data_bytes"] == {1000: True, 8000: False, 20000: True}
    # at 20000 bytes the interior minimum is within seed noise of the largest model: no U established
    assert m["sweep_u_shape_separated_by_data_bytes"] == {1000: True, 8000: False, 20000: False}
    assert m["sweep_tied_models_by_data_bytes"][20000] == ["m", "l"]
    assert m["sweep_best_model_params_by_data_bytes"] == {1000: 100, 8000: 1000, 20000: 100}
    assert not m["sweep_best_grows_with_data"] and not m["sweep_best_grows_beyond_seed_noise"]
    said = lm_compression.sweep_verdicts(m, table)
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


def _final(model, data_bits):
    two = pd.DataFrame({"bits_per_param": [32, 16, 8], "quantized": [False, True, True],
                        "weight_bits": [32000.0, 16000.0, 8000.0], "scale_bits": [0.0, 64.0, 64.0],
                        "data_bits": [data_bits, data_bits, data_bits + 100.0 * model.rate]})
    two["model_bits"] = two["weight_bits"] + two["scale_bits"]
    two["total_bits"] = two["model_bits"] + two["data_bits"]
    two["total_bits_per_byte"] = two["total_bits"] / 4000
    docs = pd.DataFrame({"document": ["t1", "t2", "h1"], "split": ["train", "train", "heldout"], "bytes": [100] * 3,
                         "bits": [300.0, 310.0, 400.0]})
    return {"two_part": two, "doc_bits": docs}


def _description_inputs(dup_bits: float):
    from copystudy import description_length as dl

    data = bytes(4000)
    boundaries = dl.block_schedule(len(data), 1000)
    runs, finals, _ = dl.code_lengths_by_size(data, boundaries, _RateModel, seeds=(0, 1, 2), final=_final, heldout=bytes(50))
    cl = description_length.CodeLengths(boundaries, runs, finals)
    gap = dl.bootstrap_gap(description_length.document_table(cl), n_boot=200)
    diffs = pd.DataFrame([{"seed": s, "text": t, "kind": k, "swap": w, "bits_with": 100.0, "bits_without": 100.0 + d + s}
                          for s in (0, 1, 2) for w in ("dup", "once")
                          for t, k, d in [(w, "training work", dup_bits if w == "dup" else 10.0),
                                          ("ctrl", "held-out control", 0.0)]])
    diffs["memorized_bits"] = diffs["bits_without"] - diffs["bits_with"]
    models = pd.DataFrame({"seed": [0, 0, 0], "swapped": [None, "dup", "once"], "train_bytes": [500] * 3,
                           "train_steps": [7] * 3})
    table = dl.memorization_table(diffs, {"dup": 100, "once": 100, "ctrl": 100}, {"dup": 8, "once": 1})
    return cl, gap, models, diffs, table


def test_description_length_summary_bits_per_parameter_and_verdicts():
    cl, gap, models, diffs, table = _description_inputs(500.0)
    m = description_length.summarize(cl, gap, models, diffs, table, "dup", 8, 1000, 300)
    assert m["n_seeds"] == 3 and m["block_boundaries"] == [0, 1000, 2000, 4000]
    # block 0 uniform, then the model of 1000 bytes (rate 5 + 0.01 seed) codes 1000 bytes, that of 2000 (4) 2000
    assert m["prequential_bits"] == pytest.approx(8000 + 5.01 * 1000 + 4.01 * 2000)
    assert m["prequential_bits_ci"][0] < m["prequential_bits"] < m["prequential_bits_ci"][1]
    assert m["block_bits_per_byte"] == [8.0, pytest.approx(5.01), pytest.approx(4.01)]
    assert m["block_increases_by_seed"] == [0, 0, 0] and m["block_spearman"] == pytest.approx(-1.0)
    assert m["two_part_best_bits_per_param"] == 8 and m["two_part_bits_by_precision"][16] > m["two_part_bits"]
    assert m["two_part_bits"] == pytest.approx(8064.0 + 2.01 * 4000 + 100 * 2.01)
    assert m["prequential_model_bits"] == pytest.approx(m["prequential_bits"] - 2.01 * 4000)
    assert m["generalization_gap_bits_per_byte"] == pytest.approx(4.0 - 3.05)
    assert m["memorized_bits_duplicated_work"] == pytest.approx(501.0) and m["memorization_sizes_equal"] is True
    assert m["memorized_bits_control_by_work"]["ctrl"] == pytest.approx(1.0)
    assert m["memorized_bits_per_byte_single_copy_mean"] == pytest.approx(0.11)
    per_param = description_length.bits_per_parameter(m).set_index("quantity")
    assert per_param.loc["memorised bits, duplicated work", "bits_per_parameter"] == pytest.approx(0.501)
    said = " ".join(description_length.verdicts(m))
    assert "The two-part code is lower than the prequential code, and their 95% intervals separate" in said
    assert "On fixed text the learner improves with every doubling of its data." in said
    assert "beats the uniform code" in said
    assert "falls at every block" in said and "reliably cheaper" in said
    assert "duplication makes the weights hold the work" in said and "Works seen once are memorised too" in said
    cl, gap, models, diffs, table = _description_inputs(1.0)  # the duplicated work no more than the controls
    m = description_length.summarize(cl, gap, models, diffs, table, "dup", 8, 1000, 300)
    said = " ".join(description_length.verdicts(m))
    assert "duplication makes the weights hold the work" not in said and "overlaps it" in said


# ---- royalty shares ---------------------------------------------------------------------------------
def test_royalty_seed_metrics_summary_and_verdicts():
    game = SimpleNamespace(owners=["a", "b"], n=2)

    def pay(shares, phi):
        return {"shares": np.array(shares), "loo_shares": np.eye(2), "similarity": np.full((2, 2), 0.5),
                "shapley": np.array(phi), "shapley_se": np.full((2, 2), 0.5)}

    pays = {0: pay([[0.8, 0.2], [0.6, 0.4]], [[8.0, 2.0], [6.0, 4.0]]),
            1: pay([[0.7, 0.3], [0.3, 0.7]], [[7.0, 3.0], [3.0, 7.0]]),
            2: pay([[0.9, 0.1], [0.2, 0.8]], [[9.0, 1.0], [2.0, 8.0]])}
    m = royalty_shares.seed_metrics("g", game, pays)
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
    summary = royalty_shares.summary_table(m, {"g": game})
    assert summary["uniform_share"].tolist() == [0.5] * 3 and summary["top_share_rate"].tolist()[1:] == [1.0, 0.0]
    m.update({f"g_{k}": 1.0 for k in ("median_se_utility_bits", "median_se_full_minus_base_bits",
                                      "median_se_if_independent_bits")})
    said = "\n".join(royalty_shares.verdicts(m, {"g": game}, {"g": pays}))
    assert "claim is not established" in said  # 6 trials cannot put the rate's interval above 1/2
    assert "similarity baseline's rate reaches below 1/2" in said
    # a game the claim fails on: the prompted owner mostly second
    flipped = {s: pay(np.fliplr(p["shares"]), p["shapley"]) for s, p in pays.items()}
    m2 = royalty_shares.seed_metrics("g", game, flipped)
    assert m2["g_prompted_owner_top_share_rate"] == pytest.approx(1 / 6)
    m2.update({k: v for k, v in m.items() if "median_se" in k})
    assert "miss (mean over seeds): prompt a pays b most" in "\n".join(royalty_shares.verdicts(m2, {"g": game},
                                                                                               {"g": flipped}))


def test_owner_checks_measure_splits_and_copies():
    from copystudy.experiments import royalty_checks

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
    said = "\n".join(royalty_checks.verdicts(m, "a", []))
    assert "beyond seed noise" in said and "copy-cat gets" in said and "less than the original" in said


def test_estimator_metrics_name_each_estimator():
    summary = pd.DataFrame([("g", est, b, 0.1 * b) for est in ("KernelSHAP (paired)", "permutation (antithetic)",
                                                                "permutation (plain)") for b in (4, 8)],
                           columns=["dataset", "estimator", "budget", "share_l1_error"])
    m = royalty_shares.estimator_metrics(summary)
    assert set(m) == {"g_estimator_share_l1_error_kernelshap", "g_estimator_share_l1_error_permutation_antithetic",
                      "g_estimator_share_l1_error_permutation_plain"}
    assert m["g_estimator_share_l1_error_kernelshap"] == {"4": pytest.approx(0.4), "8": pytest.approx(0.8)}


def test_digit_game_data_splits_classes():
    owners, public = royalty_shares.digit_game_data([0, 3])
    assert list(owners) == ["digit0", "digit3"] and len(public) == 8 and "digit3" not in public
