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

from functools import partial

import numpy as np
import pandas as pd

from copystudy.attribution import coalition_game, coalition_utility, royalty, shapley
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
    return shapley.permutation_shapley(game, n, budget, seed=seed, antithetic=True)


def _ours_kernel(game, n, budget, seed):
    return shapley.kernel_shapley(game, n, budget, seed=seed, paired=True)


def _shapiq(name, game, n, budget, seed):
    return shapley.shapiq_shapley(name, game, n, budget, seed=seed)


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
        return shapley.at_distinct_budget(fn, game, n, budget)
    counted = shapley.CountingGame(game, n)
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


def summarize(errors: pd.DataFrame) -> pd.DataFrame:
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


def metrics(summary: pd.DataFrame, game, payouts: dict, tables: np.ndarray) -> dict:
    """metrics.json entries: the game's size and construction, its exact shares' sanity numbers, and per
    estimator and fraction the mean share error with its interval over estimator seeds."""
    m = {"estimator_game_n_owners": game.n, "estimator_game_owners": list(game.owners),
         "outputs_from_independent_replicate": True,
         "estimator_game_prompted_class_share": float(payouts["prompted_class_share"].mean()),
         "estimator_game_prompted_class_even_share": float(payouts["even_class_share"].mean()),
         "estimator_game_prompted_class_top_rate": float(payouts["prompted_class_top"].mean()),
         "estimator_even_split_share_l1_error": even_split_error(tables),
         "estimator_n_seeds": int(summary.n_seeds.min())}
    for row in summary.itertuples():
        key = f"estimator_share_l1_error_{metric_key(row.estimator)}_{int(round(100 * row.fraction))}pct"
        m[key], m[f"{key}_ci"] = float(row.share_l1_error), [float(row.share_l1_error_low),
                                                               float(row.share_l1_error_high)]
    return m


def plot(summary: pd.DataFrame, n: int, even_split: float | None = None):
    """Share error against the fraction of 2^n coalitions evaluated, one line per estimator, with its
    95% interval over estimator seeds."""
    import matplotlib.pyplot as plt

    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    for k, (name, sel) in enumerate(summary.groupby("estimator", sort=False)):
        x = sel.fraction.to_numpy() * (1 + 0.015 * (k - 2.5))  # a small offset keeps the bars apart
        ax.errorbar(x, sel.share_l1_error, yerr=[sel.share_l1_error - sel.share_l1_error_low,
                                                 sel.share_l1_error_high - sel.share_l1_error],
                    marker="o", capsize=3, label=name, ls="--" if name.startswith("shapiq") else "-")
    if even_split is not None:
        ax.axhline(even_split, color="gray", ls=":", label="even split (no model)")
    fractions = sorted(summary.fraction.unique())
    ax.set_xticks(fractions, [f"{f:.0%}\n({budget_of(f, n)})" for f in fractions])
    ax.set(yscale="log", xlabel=f"coalitions evaluated, fraction of 2^{n} = {2 ** n}",
           ylabel="L1 error of royalty shares vs exact",
           title=f"Sampling estimators against exact enumeration: royalty game of {n} owners")
    low, high = ax.get_ylim()
    candidates = (0.001, 0.003, 0.01, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)
    ticks = [t for t in candidates if low <= t <= high]
    if ticks:
        ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(False)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def verdicts(summary: pd.DataFrame, m: dict) -> list[str]:
    """Sentences: is the game's exact payout sensible, which estimator is best at each fraction and does
    its interval separate from the next, and how do ours compare with shapiq's."""
    n = m["estimator_game_n_owners"]
    share, even_share, top = (m["estimator_game_prompted_class_share"], m["estimator_game_prompted_class_even_share"],
                              m["estimator_game_prompted_class_top_rate"])
    out = [f"[estimator game] {n} owners, {2 ** n} coalitions; outputs from an independent replicate of the full "
           f"coalition. By exact enumeration the owners of the prompted class get {share:.2f} of the revenue on "
           f"average (an even split would give them {even_share:.2f}) and one of them the largest single share for "
           f"{top:.0%} of the prompts"
           + (": a real game, if a less sharp one than the main games." if share > even_share and top >= 0.6 else
              ": the shares hardly follow the prompt at this scale, but the estimators are still compared with "
              "the exact values of this same game.")]
    even = m["estimator_even_split_share_l1_error"]
    for fraction, sel in summary.groupby("fraction", sort=True):
        sel = sel.sort_values("share_l1_error")
        best, second = sel.iloc[0], sel.iloc[1]
        exact = sel[sel.share_l1_error_high < EXACT].estimator.tolist()
        if len(exact) >= 2:
            out.append(f"[{fraction:.0%} of 2^{n} = {int(best.budget)} coalitions] exact (share error below "
                       f"{EXACT:g} for every seed): {', '.join(exact)}; worst: {sel.iloc[-1].estimator} "
                       f"({sel.iloc[-1].share_l1_error:.3f}); an even split scores {even:.3f}.")
            continue
        ci = lambda r: (r.share_l1_error_low, r.share_l1_error_high)  # noqa: E731
        out.append(f"[{fraction:.0%} of 2^{n} = {int(best.budget)} coalitions] best: {best.estimator} "
                   f"(L1 share error {best.share_l1_error:.3f} [{best.share_l1_error_low:.3f}, "
                   f"{best.share_l1_error_high:.3f}]); next: {second.estimator} ({second.share_l1_error:.3f}); "
                   + ("their 95% intervals separate." if intervals.separated(ci(best), ci(second)) else
                      "their 95% intervals overlap, no separation.")
                   + f" Worst: {sel.iloc[-1].estimator} ({sel.iloc[-1].share_l1_error:.3f}); an even split scores "
                   f"{even:.3f}.")
        short = [f"{r.estimator} ({r.mean_distinct_coalitions:.0f} on average)" for r in sel.itertuples()
                 if r.mean_distinct_coalitions < 0.9 * r.budget]
        if short:
            out.append(f"  -> used fewer of the {int(best.budget)} coalitions (they walk whole permutations, "
                       f"n - 1 coalitions each): {', '.join(short)}.")
        worse = [r.estimator for r in sel.itertuples() if r.share_l1_error_low > even]
        if worse:
            out.append(f"  -> worse than an even split at this budget: {', '.join(worse)}.")
    pairs = (("permutation (antithetic, ours)", "shapiq PermutationSamplingSV", "antithetic pairs"),
             ("KernelSHAP (paired, ours)", "shapiq UnbiasedKernelSHAP", "paired KernelSHAP"))
    for ours, theirs, what in pairs:
        a, b = summary[summary.estimator == ours], summary[summary.estimator == theirs]
        parts = []
        for fraction in sorted(set(a.fraction) & set(b.fraction)):
            x, y = a[a.fraction == fraction].iloc[0], b[b.fraction == fraction].iloc[0]
            if max(x.share_l1_error_high, y.share_l1_error_high) < EXACT:
                parts.append(f"at {fraction:.0%}, both are exact")
                continue
            parts.append(f"at {fraction:.0%}, " + intervals.compare(
                ours, (x.share_l1_error_low, x.share_l1_error_high),
                theirs, (y.share_l1_error_low, y.share_l1_error_high)))
        if parts:
            out.append(f"  {what}: " + "; ".join(parts) + ".")
    for name in ("permutation (antithetic, ours)", "KernelSHAP (paired, ours)"):
        sel = summary[summary.estimator == name].sort_values("fraction")
        if len(sel) >= 2:
            a, b = sel.iloc[0], sel.iloc[-1]
            shrink = intervals.separated((b.share_l1_error_low, b.share_l1_error_high),
                                         (a.share_l1_error_low, a.share_l1_error_high))
            out.append(f"  {name}: error {a.share_l1_error:.3f} at {a.fraction:.0%} -> {b.share_l1_error:.3f} at "
                       f"{b.fraction:.0%}" + (" (intervals separate: more coalitions help)." if shrink and
                                               b.share_l1_error < a.share_l1_error else
                                               " (no separated improvement with budget)."))
    return out
