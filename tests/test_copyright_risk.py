"""The risk map: the reference pixel coder, region labels, ranking, and the notebook's smoke run."""

import numpy as np
import pytest

from copystudy.experiments.copyright_risk.design import CanaryPlan, Folds
from copystudy.memorization import risk as R


def test_pixel_context_model_is_a_normalised_code():
    rng = np.random.default_rng(0)
    ref = (rng.random((50, 1, 2, 2)) > 0.5).astype(float)
    model = R.PixelContextModel(levels=2, context_bins=2).fit(ref)
    # all 16 binary 2x2 images: their probabilities under the coder sum to 1
    allimg = np.array([[(i >> k) & 1 for k in range(4)] for i in range(16)], dtype=float).reshape(16, 1, 2, 2)
    assert np.sum(2.0 ** -model.bits(allimg)) == pytest.approx(1.0)


def test_pixel_context_model_simple_images_cost_fewer_bits():
    from copystudy.common.data import digits

    images, _ = digits()
    model = R.PixelContextModel().fit(images[:300])
    blank, noise = np.zeros((1, 1, 8, 8)), np.random.default_rng(0).random((1, 1, 8, 8))
    bits = model.bits(np.concatenate([blank, images[300:301], noise]))
    assert bits[0] < bits[1] < bits[2]


def test_regions_and_ranking():
    import pandas as pd

    df = pd.DataFrame({"work": list("abcd"), "info_bits": [100, 10, 100, 10], "fidelity": [0.9, 0.9, 0.1, 0.1]})
    labels = R.regions(df["info_bits"], df["fidelity"], 50, 0.5)
    assert list(labels) == [R.REGIONS[(True, True)], R.REGIONS[(False, True)], R.REGIONS[(True, False)],
                            R.REGIONS[(False, False)]]
    ranked = R.rank_by_risk(df, info_cut=50, fidelity_cut=0.5)
    assert ranked["work"].tolist() == ["a", "b", "c", "d"]


# ---- images: the k-fold design ---------------------------------------------------------------------
def test_image_folds_are_equal_and_each_model_trains_on_every_fold_but_its_own():
    from copystudy.experiments.copyright_risk.image_game import image_folds, image_training_indices

    fold = image_folds(63, 3, seed=0)
    assert sorted(np.bincount(fold)) == [21, 21, 21]
    assert sorted(np.bincount(image_folds(64, 3, seed=1))) == [21, 21, 22]  # sizes differ by at most one
    assert not np.array_equal(fold, image_folds(63, 3, seed=1))  # seeded
    for j in range(3):
        seen = image_training_indices(fold, j)
        assert len(seen) == 42 and set(seen) == set(np.flatnonzero(fold != j))
    with pytest.raises(ValueError, match="at least 3 works"):
        image_folds(2, 3)


def _images(n, seed):
    return np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32)


def _fake_image_results(works, fold, seeds, heldout_l2, fidelity, info=lambda s, w: 300.0 + 10 * s):
    """Task results of every (seed, model) that a real run could give: the model that never saw work w pays
    info(s, w) bits for it, the others 100; each seen model's closest sample to w is at (1 - fidelity[w])
    x w's distance to its closest held-out image; a seen model copies w when its fidelity is >= 0.9."""
    k, n = int(fold.max()) + 1, len(works)
    out = {}
    for s in seeds:
        for m in range(k):
            seen = np.flatnonzero(fold != m)
            out[s, m] = {"trained_on": seen.tolist(), "steps": 5, "n_params": 1,
                         "bits": np.array([info(s, w) if fold[w] == m else 100.0 for w in range(n)]),
                         "bits_se": np.ones(n), "closest_l2": (1 - np.asarray(fidelity)) * heldout_l2,
                         "closest": works.copy(),
                         "copies": np.array([int(fold[w] != m and fidelity[w] >= 0.9) for w in range(n)])}
    return out


def _fake_image_map():
    from copystudy.memorization import distances
    from copystudy.experiments.copyright_risk import image_game as cr

    works, heldout = _images(9, 0), _images(30, 1)
    fold = cr.image_folds(9, 3, seed=0)
    heldout_l2 = distances.nearest(works, heldout, "l2")[1]
    fidelity = np.array([0.95, 0.9, 0.6, 0.6, 0.3, 0.2, 0.1, 0.0, 0.0])
    results = _fake_image_results(works, fold, [0, 1, 2], heldout_l2, fidelity, info=lambda s, w: 300.0 + 10 * s + w)
    return cr.image_map(works, heldout, fold, results, Folds(3, (0, 1, 2), 0), 0.5, R.PixelContextModel(17, 4))


def test_image_table_takes_information_from_the_model_that_never_saw_the_work():
    """info_bits is the fold's model's (300 + 10 x seed here), seen_bits the others' (100); fidelity the
    mean over the seen models; and a result that claims the reference trained on the work is refused."""
    from copystudy.memorization import distances
    from copystudy.experiments.copyright_risk import image_game as cr

    works, heldout = _images(6, 0), _images(30, 1)
    fold = cr.image_folds(6, 3, seed=0)
    heldout_l2 = distances.nearest(works, heldout, "l2")[1]
    fidelity = np.linspace(0.0, 0.9, 6)
    results = _fake_image_results(works, fold, [0, 1, 2], heldout_l2, fidelity)
    per_seed = cr.image_fold_table(fold, results, [0, 1, 2], heldout_l2)
    assert len(per_seed) == 18 and (per_seed["n_seen"] == 2).all()
    assert np.allclose(per_seed["info_bits"], 300 + 10 * per_seed["seed"]) and (per_seed["seen_bits"] == 100).all()
    assert np.allclose(per_seed["fidelity"], fidelity[per_seed["work"]])
    assert np.allclose(per_seed["memorised_fraction"], 1 - 100 / per_seed["info_bits"])
    table = cr.image_mean_over_seeds(per_seed)
    assert np.allclose(table["info_bits"], 310)
    assert (table["info_bits_lo"] < 310).all() and (table["info_bits_hi"] > 310).all()
    assert (table["replicates"] == 6).all() and list(table["near_copies"]) == [0, 0, 0, 0, 0, 6]
    bad = dict(results)
    bad[1, int(fold[0])] = {**results[1, int(fold[0])], "trained_on": list(range(6))}
    with pytest.raises(ValueError, match="trained on it"):
        cr.image_fold_table(fold, bad, [0, 1, 2], heldout_l2)


def test_copy_agreement_is_not_a_function_of_the_plotted_fidelity():
    """Two works with the same mean fidelity over the models that saw them (0.6) and different colours:
    A has a sample at 0.4 x its look-alike distance in both models (over the 0.1 RMS threshold: no
    copy); B is copied exactly by one model and missed (0.8 x) by the other."""
    from copystudy.memorization import distances
    from copystudy.experiments.copyright_risk import image_game as cr

    rng = np.random.default_rng(0)
    works, heldout = _images(4, 0), _images(40, 1)
    fold = np.array([0, 0, 1, 2])  # A, B in fold 0: models 1 and 2 saw them
    heldout_l2 = distances.nearest(works, heldout, "l2")[1]
    assert 0.4 * heldout_l2[0] > 0.1  # the premise: A's closest samples are no copies

    def at(w, frac):  # an image at RMS distance frac x heldout_l2[w] from work w
        delta = rng.standard_normal(works[w].shape)
        return works[w] + delta / np.sqrt(np.mean(delta**2)) * frac * heldout_l2[w]

    samples = {1: np.stack([at(0, 0.4), at(1, 0.0)]), 2: np.stack([at(0, 0.4), at(1, 0.8)])}
    results = {}
    for m in range(3):
        seen = cr.image_training_indices(fold, m)
        s = samples.get(m, np.stack([at(0, 2.0), at(1, 2.0)]))
        d = distances.pairwise_distances(works, s, "l2")
        results[0, m] = {"trained_on": seen.tolist(), "bits": np.full(4, 50.0), "bits_se": np.ones(4),
                         "closest_l2": d.min(1), "copies": cr.copies_per_work(s, works, seen, heldout, 0.1, 0.5)}
    table = cr.image_fold_table(fold, results, [0], heldout_l2).set_index("work")
    assert table.loc[0, "fidelity"] == pytest.approx(0.6) and table.loc[1, "fidelity"] == pytest.approx(0.6)
    assert table.loc[0, "near_copies"] == 0 and table.loc[1, "near_copies"] == 1


@pytest.fixture(scope="module")
def tiny_image_risk():
    from copystudy.common import data
    from copystudy.experiments.copyright_risk.steps import DiffusionRecipe, ImageProbe, image_risk

    pool, heldout, _ = data.image_split(None, 8, 40, 0)
    spec = {"family": "diffusion", "block_channels": [8, 16], "layers_per_block": 1, "attention": False}
    return pool[:8], image_risk(pool[:8], heldout, DiffusionRecipe(spec, 3, 8, 1e-3), ImageProbe(6, 2, 0.15, 0.5, 4, 2),
                                Folds(3, (0, 1), 0), R.PixelContextModel(17, 4))


def test_image_risk_trains_every_model_the_same_steps_and_scores_no_work_by_a_model_that_saw_it(tiny_image_risk):
    works, images = tiny_image_risk
    assert set(images.steps) == {(s, j) for s in (0, 1) for j in range(3)} and set(images.steps.values()) == {3}
    per_seed = images.per_seed
    assert len(per_seed) == 2 * len(works) and (per_seed["n_seen"] == 2).all()
    # the bound of a work under a model that saw it vs one that did not: both are real numbers of the run
    assert np.isfinite(per_seed[["info_bits", "seen_bits", "fidelity"]].to_numpy()).all()
    assert images.info_cut == pytest.approx(float(images.table["info_bits"].median()))
    assert images.samples.shape == works.shape
    a = images.association["bound"]
    assert 0 < a["p"] <= 1 and a["n"] == len(works)


def test_image_summary_and_verdicts_from_known_scores():
    from copystudy.experiments.copyright_risk import summary as cr

    images = _fake_image_map()
    m = cr.image_summary(images, 0.5, 0.15, 3)
    assert m["image_n_seeds"] == 3 and m["image_models"] == 9 and m["image_train_steps_per_model"] == 5
    assert m["image_info_bits_mean"] == pytest.approx(314.0)  # 300 + mean(10 x seed) + mean(work index)
    assert m["image_info_bits_mean_ci"] == pytest.approx([314.0 - 24.84, 314.0 + 24.84], abs=0.01)  # t(2) x 10/sqrt(3)
    assert m["image_fidelity_mean"] == pytest.approx(np.mean([0.95, 0.9, 0.6, 0.6, 0.3, 0.2, 0.1, 0.0, 0.0]))
    assert m["image_works_reproduced"] == 4 and m["image_works_copied_by_all"] == 2
    assert m["image_works_copied_by_none"] == 7 and m["image_works_copied_by_some"] == 0
    # information rises with the work index and fidelity falls: a perfect negative rank correlation but ties
    assert m["image_info_fidelity_rho"] < -0.9 and m["image_info_fidelity_p"] < 0.05
    said = "\n".join(cr.image_verdicts(m, 0.5, 0.15))
    assert "3 seeds x 3 folds = 9 diffusion models, 5 training steps each" in said
    assert "314 [289, 339] bits" in said and "an association beyond chance" in said
    assert "all 6 models that saw the work for 2 works" in said


# ---- text: the k-fold design ----------------------------------------------------------------------
def _small_corpus(n_bytes=12_000):
    from copystudy.memorization import canaries
    from copystudy.common import data

    return canaries.text_budget(data.python_docs(), n_bytes)


def test_assign_folds_gives_every_document_one_fold_and_no_fold_empty():
    from copystudy.experiments.copyright_risk.text_game import assign_folds

    docs = _small_corpus()
    fold = assign_folds(docs, 3, seed=0)
    assert set(fold) == set(docs) and set(fold.values()) == {0, 1, 2}
    sizes = [sum(len(docs[n]) for n in docs if fold[n] == j) for j in range(3)]
    assert max(sizes) - min(sizes) <= max(len(d) for d in docs.values())  # greedy by bytes: balanced
    with pytest.raises(ValueError, match="at least 3 documents"):
        assign_folds(dict(list(docs.items())[:2]), 3)


def test_reference_model_never_trained_on_the_work_and_seen_models_did():
    """The invariant of the k-fold design, on the training texts themselves: the reference of a work
    (model `fold`) never has the work in its training text; every other model has it."""
    from copystudy.experiments.copyright_risk.text_game import text_design, training_text

    design = text_design(_small_corpus(), 3, CanaryPlan((1, 4), 2, 6, 30), seed=0)
    trained = [training_text(design, j) for j in range(design.k)]
    texts = [b"\x00".join(t.values()) for t in trained]
    for name, doc in design.docs.items():  # planted canary lines break a document up: seen = by name
        fold = design.fold_of[name]
        assert name not in trained[fold] and doc not in texts[fold]
        assert all(name in trained[m] for m in range(design.k) if m != fold)
    assert len(design.canaries) == 2 * 2 * 3
    for c, fold in zip(design.canaries, design.canary_fold):
        assert c.text not in texts[fold]
        assert all(texts[m].count(c.text + b"\n") == c.dup for m in range(design.k) if m != fold)


def test_fold_table_takes_information_from_the_reference_and_fidelity_from_the_others():
    """With fake scores that name the model they came from (model m gives 100 + m bits to everything),
    every row's info_bits must be its fold's model's, and seen_bits the mean of the other models'."""
    from copystudy.experiments.copyright_risk.text_game import fold_table, text_design

    design = text_design(_small_corpus(), 3, CanaryPlan((1, 2), 1, 6, 0), seed=0)
    results = {(s, m): {"doc_bits": {n: 100.0 + m for n in design.docs},
                        "canary_bits": [100.0 + m] * len(design.canaries),
                        "report": {i: (m == 1, float(m)) for i, f in enumerate(design.canary_fold) if f != m}}
               for s in (0, 1, 2) for m in range(3)}
    table = fold_table(design, results, [0, 1, 2])
    assert len(table) == 3 * (len(design.docs) + len(design.canaries))
    assert (table["info_bits"] == 100 + table["fold"]).all()
    others = table["fold"].map(lambda j: np.mean([100 + m for m in range(3) if m != j]))
    assert np.allclose(table["seen_bits"], others)
    canary = table[table["kind"].str.startswith("canary")]
    assert np.allclose(canary["exposure"], canary["fold"].map(lambda j: np.mean([m for m in range(3) if m != j])))


def test_summary_and_verdicts_from_known_scores():
    """Fake scores with a known answer: one document 60% memorised, the rest 10%; x1 canaries 10%,
    x8 canaries 90% and extracted by every seen model; the reference pays 20 + seed bits a secret."""
    from copystudy.memorization import canaries
    from copystudy.experiments.copyright_risk import summary as cr, text_game

    design = text_game.text_design(_small_corpus(), 3, CanaryPlan((1, 8), 1, 6, 0), seed=0)
    first = max(design.docs, key=lambda n: len(design.docs[n]))  # >= 100 bits: rich
    results = {}
    for s in (0, 1, 2):
        for m in range(3):
            seen = {i for i, f in enumerate(design.canary_fold) if f != m}
            results[s, m] = {
                "doc_bits": {n: len(t) * (1.0 if design.fold_of[n] == m else 0.4 if n == first else 0.9)
                             for n, t in design.docs.items()},
                "canary_bits": [20.0 + s if i not in seen else (20.0 + s) * (0.1 if c.dup == 8 else 0.9)
                                for i, c in enumerate(design.canaries)],
                "report": {i: (design.canaries[i].dup == 8, 5.0) for i in seen}}
    text = text_game.text_map(design, results, [0, 1, 2], info_cut=100.0, fidelity_cut=0.5)
    m = cr.summarize(_fake_image_map(), text, 0.5, 0.15, 2, 6, 0.5)
    assert m["image_n_seeds"] == 3 and m["n_seeds"] == 3 and m["text_folds"] == 3
    assert m["canary_info_bits_mean"] == pytest.approx(21.0)
    assert m["canary_info_bits_mean_ci"][0] < 21.0 < m["canary_info_bits_mean_ci"][1]
    assert m["canary_info_bits_analytic"] == pytest.approx(canaries.analytic_bits(6))
    assert m["canary_fidelity_by_dup"] == pytest.approx({1: 0.1, 8: 0.9})
    assert m["canary_extractable_by_dup"] == {1: 0.0, 8: 1.0}
    assert m["canary_extractable_by_dup_ci"][8][0] < 1.0 == m["canary_extractable_by_dup_ci"][8][1]
    assert m["document_fidelity_max"] == pytest.approx(0.6)
    assert m["text_regions"][R.REGIONS[(True, True)]] == 1 and m["text_riskiest"][0] == first
    assert m["text_riskiest_document"]["work"] == first
    said = "\n".join(cr.verdicts(m, 0.5, 0.15))
    assert "21.0 [18.5, 23.5] bits" in said and "the analytic value lies inside the interval" in said
    assert "rich and reproduced (highest risk): 1;" in said and "permutation p" in said
    assert "lower than the x8 canaries', and their 95% intervals separate" in said


@pytest.fixture(scope="module")
def tiny_text_risk():
    from copystudy.experiments.copyright_risk.steps import LMRecipe, text_risk

    return text_risk(_small_corpus(8_000), LMRecipe({"n_layer": 1, "n_head": 1, "n_embd": 16}, 64, 3, 8, 3e-3),
                     CanaryPlan((1, 4), 1, 6, 10, 15), Folds(2, (0, 1), 0), info_cut=100.0, fidelity_cut=0.3)


def test_text_regions_follow_the_stated_thresholds(tiny_text_risk):
    from copystudy.experiments.copyright_risk.text_game import weakest_references

    text = tiny_text_risk
    ranked = text.ranked
    rich, reproduced = ranked["info_bits"] >= 100.0, ranked["fidelity"] >= 0.3
    assert list(ranked["region"]) == [R.REGIONS[(bool(i), bool(f))] for i, f in zip(rich, reproduced)]
    assert text.info_cut == 100.0  # the stated cut, not a median
    assert sorted(text.per_seed["seed"].unique()) == [0, 1]
    t = text.table
    assert ((t["info_bits_lo"] <= t["info_bits"] + 1e-9) & (t["info_bits"] <= t["info_bits_hi"] + 1e-9)).all()
    assert (t["ppmd_bits"] > 0).all() and {"info_bpb", "ppmd_bpb"} <= set(t.columns)
    weak = weakest_references(t, 3)
    assert list(weak["excess_bpb"]) == sorted(weak["excess_bpb"], reverse=True) and len(weak) == 3


def test_information_fidelity_association_is_the_permutation_test(tiny_text_risk):
    from copystudy.common import intervals
    from copystudy.experiments.copyright_risk.design import N_PERM

    text = tiny_text_risk
    rho, p = intervals.permutation_test(text.table["info_bits"], text.table["fidelity"], N_PERM, 0)
    assert text.association["all"] == {"rho": rho, "p": p, "n": len(text.table)}
    assert 1 / (N_PERM + 1) <= p <= 1
    assert text.association["document"]["n"] == int((text.table["kind"] == "document").sum())


def test_reference_that_saw_the_template_but_not_the_secret_pays_the_analytic_bits():
    """A 6-digit PIN carries log2(10^6) = 19.93 bits. An LM trained on 400 lines of the canary format,
    each with a fresh random secret, codes 60 unseen secrets at close to that; one trained on the same
    number of lines holding only 4 secrets (each 100 times) pays far more once it has memorised them
    (about 48 bits at 500 steps when written; still about 22 at 300, before memorising): it bets on
    the secrets it memorised, which is why a reference whose canary lines are dominated by duplicated
    canaries overstates a canary's information.

    Tolerance: by Gibbs' inequality a model's mean code length for uniform secrets is >= 19.93 bits in
    expectation, so it can fall below only by the sampling error of a mean of 60 (per-secret sd was
    0.25 bits when this was written: 0.5 bits is > 10 standard errors); above, 1.5 bits (0.25 bit a
    digit) leaves room for an undertrained tiny model (20.0 was measured at 500 steps, 20.4 at 300)."""
    from copystudy.memorization import canaries
    from copystudy import models
    from copystudy.common import parallel

    analytic = canaries.analytic_bits(6)
    assert analytic == pytest.approx(19.93, abs=0.01)

    def mean_bits(lines: bytes) -> float:
        lm = models.build({"family": "causal_lm", "n_layer": 1, "n_head": 2, "n_embd": 32, "context": 64}, seed=0)
        with parallel.single_thread():  # as in a task; several times faster than two threads on a busy machine
            lm.fit(lines, 600, batch_size=16, lr=3e-3, seed=0, progress_bar=False)
        score = canaries.lm_scorer(lm)
        unseen = canaries.make_canaries([1], 60, 6, seed=99)
        return float(np.mean([score(b"\n" + c.prefix, [c.secret])[0] for c in unseen]))

    template = canaries.template_lines(400, 6, seed=1)
    assert len({c.secret for c in template}) > 390 and all(c.dup == 1 for c in template)
    assert analytic - 0.5 <= mean_bits(b"".join(c.text + b"\n" for c in template)) <= analytic + 1.5
    few = canaries.make_canaries([100], 4, 6, seed=2)
    assert mean_bits(b"".join((c.text + b"\n") * c.dup for c in few)) > analytic + 5


def _ci_keys_are_sane(metrics: dict) -> list[str]:
    """Every interval has the shape of its number (a pair, or a pair per key of a dict) with finite, ordered
    bounds; a fraction's interval stays inside [0, 1]."""
    keys = [k[:-3] for k in metrics if k.endswith("_ci")]
    for key in keys:
        mean, ci = metrics[key], metrics[f"{key}_ci"]
        assert set(ci) == set(mean) if isinstance(mean, dict) else len(ci) == 2, key
        for lo, hi in (ci.values() if isinstance(mean, dict) else [ci]):
            assert np.isfinite([lo, hi]).all() and lo <= hi, (key, lo, hi)
            assert "extractable" not in key or 0 <= lo <= hi <= 1, (key, lo, hi)
    return keys


@pytest.mark.notebook
@pytest.mark.slow
def test_copyright_risk_smoke_run(smoke_run):
    out, metrics = smoke_run("copyright_risk")
    assert metrics["image_works"] == 16
    assert sum(metrics["image_regions"].values()) == 16
    assert metrics["image_n_seeds"] == 3 and metrics["n_seeds"] == 3 and metrics["text_folds"] == 3
    assert metrics["image_folds"] == 3 and metrics["image_models"] == 9 and metrics["image_replicates_per_work"] == 6
    assert metrics["image_train_steps_per_model"] == 10  # smoke.yaml's train_steps, the same for every model
    assert 0 < metrics["image_info_fidelity_p"] <= 1 and metrics["image_info_bits_mean"] > 0
    assert (metrics["image_works_copied_by_all"] + metrics["image_works_copied_by_some"]
            + metrics["image_works_copied_by_none"]) == 16
    keys = _ci_keys_are_sane(metrics)
    assert {"image_info_bits_mean", "image_fidelity_mean", "image_works_reproduced",
            "image_info_fidelity_rho"} <= set(keys)
    assert {"canary_info_bits_mean", "document_fidelity_mean", "text_info_fidelity_rho", "canary_fidelity_by_dup",
            "canary_extractable_by_dup"} <= set(keys)
    assert metrics["canary_info_bits_mean"] > 0
    assert metrics["canary_info_bits_analytic"] == pytest.approx(19.93, abs=0.01)
    assert 0 < metrics["text_info_fidelity_p"] <= 1 and 0 < metrics["document_info_fidelity_p"] <= 1
    assert sum(metrics["text_regions"].values()) == metrics["text_works"]
    for name in ("risk_map_images", "risk_map_text", "riskiest_images"):
        assert (out / "figures" / f"{name}.png").is_file()
    for name in ("image_works_ranked", "image_works_by_seed", "text_works_ranked", "text_works_by_seed"):
        assert (out / "tables" / f"{name}.md").is_file()


def test_parameter_rules_of_the_image_design():
    from copystudy.runner.rules import check_rules
    from copystudy.runner.params import ParameterError

    ok = {"n_train": 63, "image_folds": 3, "n_strata": 64, "model": {"family": "diffusion"}, "data_dir": None,
          "heldout_size": 200}
    check_rules("copyright_risk", ok)
    with pytest.raises(ParameterError, match="heldout_size=1796 leaves 1 of the 1797 images"):
        check_rules("copyright_risk", {**ok, "heldout_size": 1796})
    with pytest.raises(ParameterError, match="cannot fill image_folds=3 folds"):
        check_rules("copyright_risk", {**ok, "n_train": 2})
    with pytest.raises(ParameterError, match="n_strata=64 exceeds the 49 timesteps"):
        check_rules("copyright_risk", {**ok, "model": {"family": "diffusion", "num_train_timesteps": 50}})
