"""Notebook 04, copyright risk: what the image and the text games share.

The recipes (how every fold model trains and is measured), the k-fold plan over training seeds, the
result of a game (`WorkRisk`) and the permutation test of information against fidelity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from copystudy.common import intervals

N_PERM = 10_000  # permutations of the association test (p resolves down to 1e-4)


@dataclass(frozen=True)
class Folds:
    """The k-fold design: the works fall into k folds (seeded by `seed`); for each training seed in
    `seeds`, model j trains on every fold but j."""

    k: int = 3
    seeds: tuple = (0, 1, 2)
    seed: int = 0


@dataclass(frozen=True)
class DiffusionRecipe:
    """How every diffusion model of the image game trains (the same for every fold and seed)."""

    model: dict
    steps: int = 525
    batch_size: int = 64
    lr: float = 1e-3


@dataclass(frozen=True)
class ImageProbe:
    """How every diffusion model is measured: its samples (for fidelity and copies, by the extraction
    criterion's threshold and ratio) and the Monte Carlo estimate of its variational bound."""

    n_samples: int = 300
    inference_steps: int = 50
    threshold: float = 0.15
    ratio: float = 0.5
    n_strata: int = 64
    n_decoder: int = 4


@dataclass(frozen=True)
class LMRecipe:
    """How every LM of the text game trains (the same for every fold and seed)."""

    shape: dict
    context: int = 64
    steps: int = 800
    batch_size: int = 32
    lr: float = 3e-3


@dataclass(frozen=True)
class CanaryPlan:
    """The canaries planted in every fold: `per_dup` for each duplication count in `dups`, secrets of
    `n_digits` digits, `format_lines` template lines (fresh secrets, once each) spread over the folds,
    exposure ranked among `n_candidates` random secrets."""

    dups: tuple = (1, 4, 16, 32)
    per_dup: int = 4
    n_digits: int = 6
    format_lines: int = 600
    n_candidates: int = 999


@dataclass
class WorkRisk:
    """One row per work (information, fidelity, ...), the same ranked by risk, and the information cut."""

    table: pd.DataFrame
    ranked: pd.DataFrame
    info_cut: float
    samples: np.ndarray | None = None  # images: the closest sample to each work of any model that saw it
    n_params: int = 0
    per_seed: pd.DataFrame | None = None  # one row per (seed, work)
    design: object | None = None  # text: the k-fold design (text_game.TextDesign)
    association: dict | None = None  # permutation tests of information vs fidelity
    steps: dict | None = None  # images: training steps of every (seed, fold) model


def association(table: pd.DataFrame, kind: str | None = None, n_perm: int = N_PERM, seed: int = 0) -> dict:
    """Spearman correlation of information and fidelity over the works (of one kind if given: 'document'
    or 'canary') and its permutation p-value: is a work's fidelity related to its information at all?"""
    rows = table if kind is None else table[table["kind"].str.startswith(kind)]
    rho, p = intervals.permutation_test(rows["info_bits"], rows["fidelity"], n_perm, seed)
    return {"rho": rho, "p": p, "n": len(rows)}
