"""Notebook 05, estimators for many owners: a royalty game too large to want to enumerate, and sampling
estimators of its Shapley values against exact enumeration.

At 5 owners (32 coalitions) KernelSHAP is exact by construction once its budget reaches 32, so the
comparison needs a bigger game. This one has n >= 8 owners on the digits data at 8x8: the digit
classes of the digits game (its public data, model and base model: the base is a cache hit), with
classes split by stroke weight into lighter and bolder halves held by different owners until there are
n owners (8 from 5 classes: three classes split in two). An owner's part keeps its class's prompt, so
the halves of one class compete for the same prompt, as sub-labels of one brand would. Each coalition
is a short fine-tune (`estimator_finetune_steps`), so all 2^n coalitions are affordable and the exact
Shapley values are the reference.

The outputs come from an independent replicate of the full coalition (the same fine-tune with another
seed), not from the model that is scored, so the full coalition is not credited for its own sampling
noise. For every prompt (one per digit class) the utility table is the mean log-likelihood of that
prompt's outputs; the estimators then see the table only through a value function, with the number
of *distinct* coalitions they evaluate (models a real game must train) held to 10%, 25% and 50% of 2^n.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from copystudy.attribution import coalition_game, coalition_utility, royalty, shapley, shapley_estimators
from copystudy.common import intervals
from copystudy.experiments.royalty_shares.steps import digit_game_data, with_finetune_seed

FRACTIONS = (0.10, 0.25, 0.50)
EXACT = 1e-6  # a share error below this is rounding: the estimate is exact


# ---------------------------------------------------------------- the game
def parts_per_class(n_owners: int, n_classes: int) -> list[int]:
    """How many owners each class is split into: as even as possible, the first classes getting more."""
    if n_owners < n_classes:
        raise ValueError(f"{n_owners} owners cannot hold {n_classes} classes (one class per owner at least)")
    return [n_owners // n_classes + (k < n_owners % n_classes) for k in range(n_classes)]


def stroke_weight_parts(works: np.ndarray, parts: int) -> list[np.ndarray]:
    """Indices of `works` split into `parts` groups of consecutive stroke weight (ink per image), lightest
    first; ties broken by index, so the split is deterministic."""
    ink = np.asarray(works, dtype=float).reshape(len(works), -1).sum(1)
    order = np.lexsort((np.arange(len(works)), ink))
    return [np.sort(chunk) for chunk in np.array_split(order, parts)]


def part_names(cls: int, parts: int) -> list[str]:
    if parts == 1:
        return [f"digit{cls}"]
    if parts == 2:
        return [f"digit{cls}-light", f"digit{cls}-bold"]
    return [f"digit{cls}-ink{k + 1}" for k in range(parts)]


def build_game(digit_owners, n_owners: int, model: dict, pretrain: coalition_game.TrainConfig,
               finetune: coalition_game.TrainConfig, cache) -> coalition_game.CoalitionGame:
    """The n-owner digits game: the digits game of `digit_owners` (same public data, model and base:
    `royalty_shares.build_games` builds it the same way), its classes split by stroke weight."""
    owners, public = digit_game_data(list(digit_owners))
    config = {"image_size": 8, "channels": 1, **model}
    config["image_size"] = 8
    whole = coalition_game.build_game(owners, public, config, pretrain, finetune, cache)
    names, works, labels = [], [], []
    for k, parts in enumerate(parts_per_class(n_owners, whole.n)):
        cls = int(str(whole.owners[k]).removeprefix("digit"))
        for name, idx in zip(part_names(cls, parts), stroke_weight_parts(whole.works[k], parts)):
            names.append(name)
            works.append(whole.works[k][idx])
            labels.append(whole.work_labels[k][idx])
    return coalition_game.CoalitionGame(names, works, labels, whole.public_images, whole.public_labels,
                                        whole.num_classes, whole.model_config, pretrain, finetune, whole.cache)


def prompts(game) -> np.ndarray:
    """The distinct prompts (one per digit class), in owner order."""
    return np.array(list(dict.fromkeys(int(p) for p in game.prompts())), np.int64)


def owner_prompt(game) -> np.ndarray:
    """For each owner, the index (into `prompts`) of the prompt its works carry."""
    return np.searchsorted(prompts(game), np.array([int(p) for p in game.prompts()]))


def generate(game, samples_per_prompt: int, sample_steps=None, guidance: float = 1.0, seed: int = 0):
    """Outputs for every prompt from the full coalition of an independent replicate (fine-tune seed + 1).

    Returns (outputs [N, 1, 8, 8] quantised to 8 bits, prompt ids [N], prompt index [N])."""
    from copystudy.compression.likelihood import quantize

    twin = with_finetune_seed(game, game.finetune.seed + 1)
    full = twin.model(range(twin.n))
    index = np.repeat(np.arange(len(prompts(game))), samples_per_prompt)
    labels = prompts(game)[index]
    images = full.sample(len(labels), labels, seed=seed, num_inference_steps=sample_steps, guidance=guidance,
                         null_label=game.null_id, progress_bar=False)
    return quantize(images), labels, index


def utility_tables(game, images, labels, index, n_strata: int, n_decoder: int, batch_size: int = 512,
                   seed: int = 0) -> np.ndarray:
    """Every coalition's model scores every output (one map_tasks stage, common random numbers); returns
    [n_prompts, 2**n]: the mean log-likelihood (bits) of each prompt's outputs under each coalition."""
    plan = game.noise_plan(len(images), n_strata, n_decoder, seed=seed + 1)
    ll = coalition_utility.utility_terms(game, images, labels, plan, batch_size=batch_size).log_likelihood_bits()
    return np.stack([ll[:, index == p].mean(1) for p in range(index.max() + 1)])


def exact_payouts(game, tables: np.ndarray) -> dict:
    """Exact Shapley values and royalty shares per prompt, and how much the prompted class's owners get."""
    phi = np.stack([shapley.exact_shapley(t) for t in tables])
    shares = np.stack([royalty.royalty_shares(p) for p in phi])
    mine = owner_prompt(game)[None, :] == np.arange(len(tables))[:, None]  # [prompt, owner]: owner holds the class
    class_share = (shares * mine).sum(1)
    top = np.array([mine[p, shares[p].argmax()] for p in range(len(tables))])
    return {"shapley": phi, "shares": shares, "prompted_class_share": class_share, "prompted_class_top": top,
            "even_class_share": mine.mean(1)}


# ---------------------------------------------------------------- the estimators
def _ours_permutation(game, n, budget, seed):
    return shapley_estimators.permutation_shapley(game, n, budget, seed=seed, antithetic=True)


def _ours_kernel(game, n, budget, seed):
    return shapley_estimators.kernel_shapley(game, n, budget, seed=seed, paired=True)


def _shapiq(name, game, n, budget, seed):
    return shapley_estimators.shapiq_shapley(name, game, n, budget, seed=seed)


# name -> (estimator(game, n, budget, seed), does its budget count calls with repeats?)
ESTIMATORS = {
    "permutation (antithetic, ours)": (_ours_permutation, True),
    "KernelSHAP (paired, ours)": (_ours_kernel, False),
    "shapiq UnbiasedKernelSHAP": (partial(_shapiq, "UnbiasedKernelSHAP"), False),
    "shapiq SVARM": (partial(_shapiq, "SVARM"), False),
    "shapiq StratifiedSamplingSV": (partial(_shapiq, "StratifiedSamplingSV"), True),
    "shapiq PermutationSamplingSV": (partial(_shapiq, "PermutationSamplingSV"), True),
}


def metric_key(name: str) -> str:
    """'permutation (antithetic, ours)' -> 'permutation_antithetic'; 'shapiq SVARM' -> 'shapiq_svarm'."""
    words = name.replace("(", " ").replace(")", " ").replace(",", " ").split()
    return "_".join(w.lower() for w in words if w not in ("ours", "paired"))


def budget_of(fraction: float, n: int) -> int:
    return int(round(fraction * 2**n))


def run_estimator(name: str, game, n: int, budget: int, seed: int):
    """One estimate with at most `budget` distinct coalitions evaluated. Returns (values, distinct, calls)."""
    estimator, counts_calls = ESTIMATORS[name]
    fn = partial(_with_seed, estimator, seed)
    if counts_calls:
        return shapley_estimators.at_distinct_budget(fn, game, n, budget)
    counted = shapley_estimators.CountingGame(game, n)
    phi = fn(counted, n, budget)
    return phi, counted.distinct, counted.calls


def _with_seed(estimator, seed, game, n, budget):
    return estimator(game, n, budget, seed)


def estimator_errors(tables: np.ndarray, fractions=FRACTIONS, repeats: int = 20, seed: int = 0,
                     estimators=None) -> pd.DataFrame:
    """One row per (estimator, fraction, repeat, prompt): the L1 error of the royalty shares and the
    relative L1 error of the Shapley values against exact enumeration, and the coalitions it evaluated.
    One task per (prompt, estimator) (`copystudy.common.parallel.map_tasks`); repeat r uses seed + r."""
    from copystudy.common import parallel

    items = [(p, name) for p in range(len(tables)) for name in (estimators or ESTIMATORS)]
    rows = parallel.map_tasks(partial(_errors_task, tables, tuple(fractions), repeats, seed), items,
                              desc="estimators", progress_bar=False)
    return pd.DataFrame([row for task in rows for row in task])


def _errors_task(tables, fractions, repeats, seed, item):
    p, name = item
    table = tables[p]
    n = int(round(np.log2(len(table))))
    exact = shapley.exact_shapley(table)
    exact_shares, game = royalty.royalty_shares(exact), shapley.game_from_table(table)
    rows = []
    for fraction in fractions:
        budget = budget_of(fraction, n)
        for r in range(repeats):
            phi, distinct, calls = run_estimator(name, game, n, budget, seed + r)
            rows.append({"estimator": name, "fraction": fraction, "budget": budget, "repeat": r, "prompt": p,
                         "distinct_coalitions": distinct, "calls": calls,
                         "share_l1_error": np.abs(royalty.royalty_shares(phi) - exact_shares).sum(),
                         "relative_l1_error": np.abs(phi - exact).sum() / np.abs(exact).sum()})
    return rows


def even_split_error(tables: np.ndarray) -> float:
    """L1 share error of the trivial payout that needs no model at all: an even split among the owners
    (averaged over prompts). An estimator worse than this has learnt nothing from its budget."""
    n = int(round(np.log2(tables.shape[1])))
    return float(np.mean([np.abs(royalty.royalty_shares(shapley.exact_shapley(t)) - 1 / n).sum() for t in tables]))


def error_table(errors: pd.DataFrame) -> pd.DataFrame:
    """Per estimator and fraction: the share error averaged over prompts for each estimator seed, then its
    mean and 95% interval over the seeds (Student t, cut at 0); and the most distinct coalitions any run
    evaluated."""
    per_seed = errors.groupby(["estimator", "fraction", "budget", "repeat"], sort=False).agg(
        share_l1_error=("share_l1_error", "mean"), relative_l1_error=("relative_l1_error", "mean"),
        distinct=("distinct_coalitions", "max"), calls=("calls", "max")).reset_index()
    # distinct coalitions per run (over prompts and seeds), for the mean below
    mean_distinct = errors.groupby(["estimator", "fraction"], sort=False).distinct_coalitions.mean()
    rows = []
    for (name, fraction, budget), sel in per_seed.groupby(["estimator", "fraction", "budget"], sort=False):
        mean, lo, hi = intervals.mean_ci(sel.share_l1_error)
        lo = max(lo, 0.0)  # an error is >= 0: the t interval cut at 0 (it reaches below with few seeds)
        rel = intervals.mean_ci(sel.relative_l1_error)
        rows.append({"estimator": name, "fraction": fraction, "budget": budget, "n_seeds": len(sel),
                     "share_l1_error": mean, "share_l1_error_low": lo, "share_l1_error_high": hi,
                     "relative_l1_error": rel[0], "mean_distinct_coalitions": float(mean_distinct[(name, fraction)]),
                     "max_distinct_coalitions": int(sel.distinct.max()),
                     "max_calls": int(sel.calls.max())})
    return pd.DataFrame(rows)


@dataclass
class Estimated:
    """The estimator game, as `summary.summarize` reads it."""

    game: object  # the n-owner CoalitionGame
    payouts: dict  # `exact_payouts`
    tables: np.ndarray  # `utility_tables` [n_prompts, 2**n]
    errors: pd.DataFrame  # `error_table`
    fractions: list  # the budgets, as fractions of 2**n


def metrics(estimated: Estimated) -> dict:
    """metrics.json entries: the game's size and construction, its exact shares' sanity numbers, and per
    estimator and fraction the mean share error with its interval over estimator seeds and the mean number
    of distinct coalitions it evaluated."""
    game, payouts, summary = estimated.game, estimated.payouts, estimated.errors
    m = {"estimator_game_n_owners": game.n, "estimator_game_owners": list(game.owners),
         "outputs_from_independent_replicate": True,
         "estimator_game_prompted_class_share": float(payouts["prompted_class_share"].mean()),
         "estimator_game_prompted_class_even_share": float(payouts["even_class_share"].mean()),
         "estimator_game_prompted_class_top_rate": float(payouts["prompted_class_top"].mean()),
         "estimator_even_split_share_l1_error": even_split_error(estimated.tables),
         "estimator_n_seeds": int(summary.n_seeds.min()), "estimator_fractions": list(estimated.fractions)}
    for row in summary.itertuples():
        key = _key(row.estimator, row.fraction)
        m[f"estimator_share_l1_error_{key}"], m[f"estimator_share_l1_error_{key}_ci"] = \
            float(row.share_l1_error), [float(row.share_l1_error_low), float(row.share_l1_error_high)]
        m[f"estimator_mean_distinct_coalitions_{key}"] = float(row.mean_distinct_coalitions)
    return m


def _key(name: str, fraction: float) -> str:
    return f"{metric_key(name)}_{int(round(100 * fraction))}pct"


def table_from_metrics(m: dict) -> pd.DataFrame:
    """The rows of `error_table` that metrics.json keeps: per estimator and fraction, the share error with its
    interval, the budget and the distinct coalitions evaluated on average."""
    n, rows = m["estimator_game_n_owners"], []
    for fraction in m["estimator_fractions"]:
        for name in ESTIMATORS:
            key = _key(name, fraction)
            if f"estimator_share_l1_error_{key}" not in m:
                continue
            low, high = m[f"estimator_share_l1_error_{key}_ci"]
            rows.append({"estimator": name, "fraction": fraction, "budget": budget_of(fraction, n),
                         "share_l1_error": m[f"estimator_share_l1_error_{key}"], "share_l1_error_low": low,
                         "share_l1_error_high": high,
                         "mean_distinct_coalitions": m[f"estimator_mean_distinct_coalitions_{key}"]})
    return pd.DataFrame(rows)
