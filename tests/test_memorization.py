"""Distances against hand-computed values, and the extraction criterion on constructed cases."""

import numpy as np
import pytest

from copystudy.common import data
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
