"""Notebook 04, copyright risk: information content against reconstruction fidelity for every work.

Both games use a k-fold design over several training seeds (`design.Folds`), and each is one stage of
parallel tasks, one per (seed, fold) model. Images (`image_game`): diffusion models on digits; text
(`text_game`): byte-level LMs on documents with planted canaries. Both average over seeds with 95%
intervals; regions come from stated cuts (for images' information, the median) and the association
of the two axes from a permutation test. `summary` gives metrics.json and the verdicts, `figures`
the figures.
"""

from __future__ import annotations

from functools import partial

from copystudy.common import parallel
from copystudy.experiments.copyright_risk.design import (CanaryPlan, DiffusionRecipe, Folds, ImageProbe, LMRecipe,
                                                         WorkRisk)
from copystudy.experiments.copyright_risk.image_game import fold_diffusion, image_folds, image_map
from copystudy.experiments.copyright_risk.text_game import fold_lm, text_design, text_map
from copystudy.memorization import risk

__all__ = ["CanaryPlan", "DiffusionRecipe", "Folds", "ImageProbe", "LMRecipe", "WorkRisk", "image_risk", "text_risk"]


def image_risk(works, heldout, recipe: DiffusionRecipe, probe: ImageProbe, folds: Folds,
               coder: risk.PixelContextModel) -> WorkRisk:
    """The image map from the k-fold design: the works fall into k folds (seeded by `folds.seed`); for
    each training seed, diffusion model j trains on every fold but j, all with the same recipe; all
    (seed, fold) models are one map_tasks stage. A work's information is its bound under the model of
    its fold (never saw it), its fidelity from the samples of the k-1 that did; `coder` (fitted here on
    the held-out images) gives a second information estimate."""
    fold = image_folds(len(works), folds.k, folds.seed)
    items = [(s, j) for s in folds.seeds for j in range(folds.k)]
    task = partial(fold_diffusion, works, heldout, fold, recipe, probe, folds.seed)
    results = dict(zip(items, parallel.map_tasks(task, items, desc=f"diffusion: {len(folds.seeds)} seeds x {folds.k} folds",
                                                 cost=lambda item: recipe.steps)))
    return image_map(works, heldout, fold, results, folds, probe.ratio, coder)


def text_risk(docs: dict[str, bytes], recipe: LMRecipe, plan: CanaryPlan, folds: Folds, info_cut: float,
              fidelity_cut: float) -> WorkRisk:
    """The text map from the k-fold design: k LMs per seed, all (seed, fold) models one task each in a
    single map_tasks call; every work measured by the model that never saw it (information) and the
    models that did (fidelity), averaged over seeds; regions at the stated cuts (bits, memorised fraction)."""
    design = text_design(docs, folds.k, plan, folds.seed)
    items = [(s, j) for s in folds.seeds for j in range(folds.k)]
    train = partial(fold_lm, design, recipe, plan.n_candidates)
    results = dict(zip(items, parallel.map_tasks(train, items, desc=f"LMs: {len(folds.seeds)} seeds x {folds.k} folds",
                                                 cost=lambda item: recipe.steps)))
    return text_map(design, results, folds.seeds, info_cut, fidelity_cut, folds.seed)
