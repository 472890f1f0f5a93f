"""Distances against hand-computed values, the extraction criterion on constructed cases, and the
memorization notebook's design (matched epochs), summary and verdicts on inputs with known answers."""

import numpy as np
import pandas as pd
import pytest

from copystudy.common import data
from copystudy.experiments.memorization import canary_exposure, steps as memorization, summary as memorization_summary
from copystudy.memorization import distances, extraction


def img(values):
    return np.asarray(values, dtype=np.float32).reshape(1, 1, *np.shape(values))


def test_normalised_l2_hand_values():
    a = np.zeros((1, 2, 2))
    b = np.array([[[1.0, 0.0], [0.0, 0.0]]])  # one pixel of four differs by 1: sqrt(1/4) = 0.5
    assert distances.normalised_l2(a, b) == pytest.approx(0.5)
    assert distances.normalised_l2(a, a) == 0.0
    assert distances.normalised_l2(np.zeros((1, 8, 8)), np.ones((1, 8, 8))) == pytest.approx(1.0)
    assert distances.pairwise_distances(a[None], b[None])[0, 0] == pytest.approx(0.5)


def test_tiled_l2_is_max_over_tiles():
    a = np.zeros((1, 8, 8))
    b = a.copy()
    b[0, 0, 0] = 1.0  # one pixel in the top-left 2x2 tile: that tile's RMS is sqrt(1/4) = 0.5
    assert distances.tiled_l2(a, b) == pytest.approx(0.5)
    assert distances.normalised_l2(a, b) == pytest.approx(1 / 8)  # sqrt(1/64)
    b[0, 7, 7] = 0.4  # a smaller difference in another tile does not change the max
    assert distances.tiled_l2(a, b) == pytest.approx(0.5)
    # a 2x2 grid on 8x8 images: 4x4-pixel tiles, one pixel of 16 -> sqrt(1/16)
    assert distances.tiled_l2(a, np.where(np.arange(64).reshape(1, 8, 8) == 0, 1.0, 0.0), grid=2) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="divisible"):
        distances.tiled_l2(np.zeros((1, 6, 6)), np.zeros((1, 6, 6)), grid=4)


def test_pairwise_matches_pointwise_and_nearest():
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 1, 8, 8)), rng.random((7, 1, 8, 8))
    for kind, fn in [("l2", distances.normalised_l2), ("tiled_l2", distances.tiled_l2)]:
        d = distances.pairwise_distances(a, b, kind)
        assert d.shape == (5, 7)
        assert d[2, 3] == pytest.approx(fn(a[2], b[3]))
        idx, dist = distances.nearest(a, b, kind)
        assert np.array_equal(idx, d.argmin(1)) and np.allclose(dist, d.min(1))
    with pytest.raises(ValueError, match="distance kind"):
        distances.pairwise_distances(a, b, "l1")


def test_extraction_criterion_constructed_cases():
    rng = np.random.default_rng(1)
    train = (rng.random((6, 1, 8, 8)) > 0.5).astype(np.float32)
    heldout = (rng.random((6, 1, 8, 8)) > 0.5).astype(np.float32)
    exact = train[2:3].copy()
    noisy = np.clip(train[4:5] + 0.05 * rng.standard_normal((1, 1, 8, 8)), 0, 1)  # near copy
    shifted = np.roll(train[2:3], 1, axis=-1)  # shifted by one pixel: not a pixel copy
    held = heldout[0:1].copy()  # an image no model saw (also a held-out reference: distance 0)
    samples = np.concatenate([exact, noisy, shifted, held])
    table = extraction.extraction_table(samples, train, heldout, "l2", threshold=0.15, ratio=0.5)
    assert table["extracted"].tolist() == [True, True, False, False]
    assert table.loc[0, "train_idx"] == 2 and table.loc[0, "d_train"] == 0.0
    assert table.loc[1, "train_idx"] == 4
    assert extraction.extraction_rate(table) == 0.5
    assert extraction.copied_images(table) == 2
    assert extraction.most_copied(table, 1).index[0] == 0


def test_is_extracted_ratio_condition():
    # close to a training image but just as close to a held-out one: not extracted
    assert extraction.is_extracted([0.1], [0.1], 0.15, 0.5).tolist() == [False]
    assert extraction.is_extracted([0.1], [0.2], 0.15, 0.5).tolist() == [True]
    assert extraction.is_extracted([0.2], [1.0], 0.15, 0.5).tolist() == [False]  # beyond the threshold
    with pytest.raises(ValueError, match="ratio"):
        extraction.is_extracted([0.1], [0.2], 0.15, 1.5)


def test_heldout_baseline_and_carlini_ratio():
    rng = np.random.default_rng(2)
    train = rng.random((20, 1, 8, 8))
    heldout = np.concatenate([train[:2], rng.random((8, 1, 8, 8))])  # two held-out images duplicate training
    assert extraction.heldout_baseline_rate(train, heldout) == pytest.approx(2 / 10)
    r = extraction.carlini_ratio(np.concatenate([train[:1], rng.random((1, 1, 8, 8))]), train, n_neighbours=5)
    assert r[0] == 0.0 and r[1] > 1.0


def test_image_split_sizes_and_seed():
    pool, held, _ = data.image_split(None, heldout_size=100, seed=3)
    assert len(held) == 100 and len(pool) == 1697
    pool2, held2, _ = data.image_split(None, heldout_size=100, seed=3)
    assert np.array_equal(pool, pool2) and np.array_equal(held, held2)
    with pytest.raises(ValueError, match="heldout_size"):
        data.image_split(None, heldout_size=5000)


@pytest.mark.notebook
@pytest.mark.slow
def test_memorization_smoke_run(smoke_run):
    out, metrics = smoke_run("memorization")
    assert metrics["n_seeds"] == 2 and metrics["epoch_budgets"] == [2, 4]
    for e in ("2", "4"):
        assert set(metrics["extraction_rate_by_n"][e]) == {"4", "16"}
        for n in metrics["extraction_rate_by_n"][e]:
            lo, hi = metrics["extraction_rate_by_n_ci"][e][n]
            assert 0 <= lo <= hi <= 1  # a rate's (Wilson) interval stays inside [0, 1]
        assert metrics["steps_by_n"][e] == {"4": int(e), "16": 2 * int(e)}  # batch 4 for N=4, 8 for N=16
    assert set(metrics["heldout_control_rate_by_n_ci"]) == {"4", "16"}
    assert metrics["log2_R"] == pytest.approx(5.0)
    for model in metrics["lm_models"]:
        assert set(metrics["exposure_by_dup"][model]) == {"1", "4"}
        assert all(0 <= v <= 5.0 + 1e-9 for v in metrics["exposure_by_dup"][model].values())
        assert all(0 <= v <= metrics["log2_format_space"] + 1e-9 for v in metrics["exposure_skewnorm_by_dup"][model].values())
    e1, e4 = metrics["exposures_by_dup"]["1"], metrics["exposures_by_dup"]["4"]
    assert e4 == pytest.approx(4 * e1) and e1 == pytest.approx(metrics["lm_epochs"])
    for name in ("extraction_rate_by_n", "nearest_training_pairs", "canaries"):
        assert (out / "figures" / f"{name}.png").is_file()
    for name in ("extraction_by_n", "extraction_runs", "canaries", "canaries_by_exposures"):
        assert (out / "tables" / f"{name}.csv").is_file()


def test_image_split_from_a_folder_pools_owners(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for owner in ("alice", "bob"):
        (tmp_path / owner).mkdir()
        for i in range(3):
            Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(tmp_path / owner / f"{i}.png")
    pool, held, what = data.image_split(str(tmp_path), image_size=8, heldout_size=2, seed=0)
    assert pool.shape == (4, 1, 8, 8) and held.shape == (2, 1, 8, 8)
    assert "2 owners" in what and 0 <= pool.min() and pool.max() <= 1


# ---- the notebook's design, summary and verdicts -----------------------------------------------------------------------------------
def test_memorization_schedule_gives_every_n_the_same_epochs():
    design = memorization.ladder_design([8, 16, 50, 64, 128, 1497], [200, 800], [0, 1, 2], batch_size=64)
    assert len(design) == 6 * 2 * 3 and {(c["epochs"], c["N"], c["seed"]) for c in design} == {
        (e, n, s) for e in (200, 800) for n in (8, 16, 50, 64, 128, 1497) for s in (0, 1, 2)}
    for cell in design:
        n, e = cell["N"], cell["epochs"]
        assert cell["batch"] == min(64, n)  # a batch never holds more draws than there are images
        assert e <= cell["epochs_done"] < e + cell["batch"] / n  # images drawn / N: the budget (up to one batch)
        if (e * n) % cell["batch"] == 0:
            assert cell["epochs_done"] == e and cell["steps"] * cell["batch"] == e * n
    # the same budget at every N: the old fixed-step design gave N=8 190x the passes of N=1497
    done = {(c["epochs"], c["N"]): c["epochs_done"] for c in design}
    for e in (200, 800):
        assert max(done[e, n] for n in (8, 16, 50, 64, 128, 1497)) / min(done[e, n] for n in (8, 16, 50, 64, 128, 1497)) < 1.01
    assert memorization.schedule(1497, 21, 64)["steps"] == 492
    table = memorization.schedule_table([8, 128], [10], 64)
    assert table[["N", "batch", "steps", "epochs_done"]].values.tolist() == [[8, 8, 10, 10.0], [128, 64, 20, 10.0]]
    with pytest.raises(ValueError):
        memorization.schedule(0, 10, 64)


def test_memorization_pooled_rates_are_wilson_over_all_seeds_samples():
    from copystudy.common.intervals import mean_ci, wilson

    runs = pd.DataFrame([{"epochs": 100, "N": 8, "seed": s, "steps": 100, "batch": 8, "extracted": k,
                          "n_samples": 200, "extraction_rate": k / 200, "median_d_train": 0.1}
                         for s, k in enumerate([150, 170, 190])])
    row = memorization.pool_seeds(runs).iloc[0]
    assert row["n_seeds"] == 3 and row["extracted"] == 510 and row["n_samples"] == 600
    assert (row["rate"], row["rate_low"], row["rate_high"]) == pytest.approx(wilson(510, 600))
    assert (row["seed_mean"], row["seed_low"], row["seed_high"]) == pytest.approx(mean_ci([0.75, 0.85, 0.95]))
    assert row["seed_high"] - row["seed_low"] > row["rate_high"] - row["rate_low"]  # seed spread beyond sampling


def test_memorization_transition_needs_the_rate_above_the_control():
    t = pd.DataFrame({"epochs": [1] * 4, "N": [8, 16, 32, 64], "rate_low": [0.9, 0.3, 0.05, 0.0],
                      "control_high": [0.06, 0.06, 0.06, 0.06]})
    assert memorization.transition_n(t, 1) == 16  # N=32's interval reaches below the control's
    assert memorization.transition_n(t.assign(rate_low=0.0), 1) is None


def test_memorization_exposures_are_copies_times_epochs():
    epochs = canary_exposure.lm_epochs(steps=600, batch_size=32, context=64, text_bytes=61440)
    assert epochs == pytest.approx(20.0)  # 600 x 32 x 64 bytes predicted over 61,440 bytes
    assert [canary_exposure.exposures(d, epochs) for d in (1, 2, 32)] == pytest.approx([20.0, 40.0, 640.0])


def _canary_report(exposure_by_model: dict, seeds=(0, 1, 2), dups=(1, 4), per_dup=2, n_candidates=511):
    """canary_report rows as canary_runs stacks them; exposure_by_model[model][dup] = exposure (each seed
    adds seed/10, so the seeds differ); a canary is ranked first when its exposure is log2 |R|."""
    top = np.log2(n_candidates + 1)
    rows = []
    for model, by_dup in exposure_by_model.items():
        for s in seeds:
            for d in dups:
                for i in range(per_dup):
                    e = min(by_dup[d] + s / 10, top)
                    rows.append({"model": model, "n_params": int(model[:-1]) * 1000, "seed": s, "dup": d,
                                 "exposures": d * 20.0, "exposure": e, "exposure_skewnorm": by_dup[d] + s / 10 + 2,
                                 "extractable": e >= top, "rank": 1 if e >= top else 2, "bits": 1.0})
    return pd.DataFrame(rows)


def test_memorization_canary_table_means_over_seeds_and_saturation():
    report = _canary_report({"8K": {1: 1.0, 4: 3.0}, "121K": {1: 4.0, 4: 9.0}})
    cans = canary_exposure.canary_table(report, 511)
    row = cans[(cans["model"] == "8K") & (cans["dup"] == 4)].iloc[0]
    assert row["n_seeds"] == 3 and row["n"] == 6 and row["exposures"] == 80.0
    assert row["exposure"] == pytest.approx(3.1) and row["exposure_low"] < 3.1 < row["exposure_high"]
    assert row["exposure_skewnorm"] == pytest.approx(5.1)
    big = cans[(cans["model"] == "121K") & (cans["dup"] == 4)].iloc[0]
    assert big["ranked_first"] == 1.0 and big["extractable"] == 1.0 and big["exposure"] == pytest.approx(9.0)
    assert canary_exposure.saturation(cans) == {"8K": None, "121K": 80.0}
    # saturation needs every larger count saturated too
    report = _canary_report({"8K": {1: 9.0, 4: 3.0}})
    assert canary_exposure.saturation(canary_exposure.canary_table(report, 511)) == {"8K": None}


def _memorization_metrics(rates: dict, exposure_by_model: dict, control: float = 0.01):
    """metrics from a ladder whose (budget, N) pooled rate is rates[budget][N] (600 samples) and from
    canaries with the given exposures."""
    runs = pd.DataFrame([{"epochs": e, "N": n, "seed": s, "steps": e, "batch": n, "n_samples": 200,
                          "extracted": int(round(r * 200)), "extraction_rate": round(r * 200) / 200,
                          "median_d_train": 0.1} for e, by_n in rates.items() for n, r in by_n.items() for s in range(3)])
    ns = sorted({n for by_n in rates.values() for n in by_n})
    control = pd.DataFrame({"N": ns, "control_rate": control, "control_low": 0.0, "control_high": 0.03})
    ladder = memorization.Ladder(runs, memorization.pool_seeds(runs).merge(control, on="N"), control, n_params=1000)
    report = _canary_report(exposure_by_model)
    cans = canary_exposure.canary_table(report, 511)
    lm_table = pd.DataFrame({"epochs": [20.0]})
    return memorization_summary.summarize(ladder, cans, lm_table, 200, memorization.Criterion(), 511, 6)


def test_memorization_summary_holds_seeds_intervals_and_saturation():
    m = _memorization_metrics({100: {8: 0.2, 64: 0.0}, 400: {8: 0.9, 64: 0.1}},
                              {"8K": {1: 1.0, 4: 3.0}, "121K": {1: 4.0, 4: 9.0}})
    assert m["n_seeds"] == 3 and m["epoch_budgets"] == [100, 400]
    assert m["extraction_rate_by_n"][400] == {8: 0.9, 64: 0.1} and m["extraction_rate_high_budget_by_n"] == {8: 0.9, 64: 0.1}
    lo, hi = m["extraction_rate_by_n_ci"][400][8]
    assert lo < 0.9 < hi and m["extraction_rate_by_n_seed_ci"][400][8] == [0.9, 0.9]  # identical seeds: no spread
    assert m["transition_n"] == {100: 8, 400: 64}
    assert m["lm_models"] == ["8K", "121K"] and m["exposures_by_dup"] == {1: 20.0, 4: 80.0}
    assert m["exposure_by_dup"]["121K"][4] == pytest.approx(9.0) and len(m["exposure_by_dup_ci"]["8K"][1]) == 2
    assert m["log2_R"] == 9.0 and m["log2_format_space"] == pytest.approx(19.93, abs=0.01)
    assert m["rank_exposure_saturates_at_exposures"] == {"8K": None, "121K": 80.0}
    assert m["skewnorm_exposure_reaches_cap_at_exposures"] == {"8K": None, "121K": None}
    capped = _memorization_metrics({100: {8: 0.2}}, {"8K": {1: 1.0, 4: 3.0}, "121K": {1: 4.0, 4: 17.93}})
    assert capped["skewnorm_exposure_reaches_cap_at_exposures"] == {"8K": None, "121K": 80.0}  # 17.93 + 2 = cap
    assert "reaches its cap from 80 exposures" in "\n".join(memorization_summary.verdicts(capped))


def test_memorization_verdicts_follow_the_intervals():
    as_papers = memorization_summary.verdicts(_memorization_metrics({100: {8: 0.2, 64: 0.0}, 400: {8: 0.9, 64: 0.1}},
                                                            {"8K": {1: 1.0, 4: 3.0}, "121K": {1: 4.0, 4: 9.0}}))
    text = "\n".join(as_papers)
    assert "At matched training (400 epochs) extraction still falls with N" in text
    assert "transition moves with the training budget" in text and "at N=[8, 64]" in text
    assert "saturates at log2|R| = 9.0 bits from 80 exposures" in text and "At 80 exposures the larger model memorises more" in text
    flat = memorization_summary.verdicts(_memorization_metrics({100: {8: 0.0, 64: 0.0}, 400: {8: 0.01, 64: 0.01}},
                                                       {"8K": {1: 3.0, 4: 3.0}, "121K": {1: 3.0, 4: 3.0}}))
    text = "\n".join(flat)
    assert "do not separate: no fall with N" in text and "No N is memorised" in text and "at no N" in text
    assert "never saturates" in text and "does NOT separate" in text and "still falls" not in text
    assert memorization.ladder_sizes([8, 32, 5000, 32], 100) == [8, 32, 100]
