"""Notebook 05's numbers: `summarize` makes all of metrics.json from what the steps returned, and
`verdicts` turns metrics.json (and nothing else) into the sentences the notebook prints.

Numbers that depend on training noise are means over training seeds with a 95% interval (`<key>_ci`):
a Wilson interval for a rate pooled over prompts and seeds, Student t over seeds otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from copystudy.attribution import royalty
from copystudy.common import intervals
from copystudy.experiments.royalty_shares import checks, estimators
from copystudy.experiments.royalty_shares.steps import DATASETS, METHODS, Played, independent, mean_pay

REIMPLEMENTATION_SHARES = (0.26, 0.45)  # the prompted brand's shares among 4 FlickrLogos brands, Stable Diffusion + LoRA
NOISE_KEYS = ("median_se_utility_bits", "median_se_full_minus_base_bits", "median_se_if_independent_bits")


# ---------------------------------------------------------------- metrics.json
def summarize(played: Played, checked: checks.Checked | None = None,
              estimated: estimators.Estimated | None = None) -> dict:
    """Every number of metrics.json: the main games over seeds (`seed_metrics`, the bound's Monte Carlo
    noise), the checks (a)-(c) and the estimator game, each when it was run."""
    m = {"n_seeds": len(played.seeds), "seeds": played.seeds,
         "outputs_from_independent_replicate": independent(played.seeded, played.outputs)}
    for name, game in played.games.items():
        m.update(seed_metrics(name, game, played.pays[name]))
    for key in NOISE_KEYS:
        for name, value in played.noise.groupby("dataset")[key].median().items():
            m[f"{name}_{key}"] = value
    if checked is not None:
        m.update(checks.unprompted_metrics(checked.unprompted))
        if not checked.owner_rows.empty:
            m.update(checks.owner_check_metrics(checked.owner_rows), shell_dataset=checked.shell_dataset,
                     shell_owner=checked.shell_owner)
    if estimated is not None:
        m.update(estimators.metrics(estimated))
    return m


def seed_metrics(name: str, game, pays: dict) -> dict:
    """Over training seeds: the prompted owner's top-share rate (Wilson interval over prompts x seeds) and
    mean share (t interval over seeds), for each method; the mean share matrix; and the prompted owner's
    Shapley value in bits, with its spread over seeds beside the Monte Carlo error of one seed's bound."""
    seeds, m = list(pays), {}
    for prefix, key, _ in METHODS:
        per = [royalty.prompted_owner_metrics(pays[s][key]) for s in seeds]
        wins = int(round(sum(p["prompted_owner_top_share_rate"] * game.n for p in per)))
        rate, lo, hi = intervals.wilson(wins, game.n * len(seeds))
        m[f"{name}_{prefix}prompted_owner_top_share_rate"], m[f"{name}_{prefix}prompted_owner_top_share_rate_ci"] = \
            rate, [lo, hi]
        mean, lo, hi = intervals.mean_ci([p["mean_prompted_share"] for p in per])
        m[f"{name}_{prefix}mean_prompted_share"], m[f"{name}_{prefix}mean_prompted_share_ci"] = mean, [lo, hi]
    shares = mean_pay(pays)["shares"]
    m[f"{name}_share_matrix"] = {game.owners[p]: dict(zip(game.owners, map(float, shares[p]))) for p in range(game.n)}
    own = np.array([np.diag(pays[s]["shapley"]) for s in seeds])  # [seeds, prompts]
    mean, lo, hi = intervals.mean_ci(own.mean(1))
    m[f"{name}_prompted_shapley_bits"], m[f"{name}_prompted_shapley_bits_ci"] = mean, [lo, hi]
    m[f"{name}_prompted_shapley_mc_se_bits"] = float(np.median([np.diag(pays[s]["shapley_se"]) for s in seeds]))
    m[f"{name}_prompted_shapley_seed_sd_bits"] = float(np.median(own.std(0, ddof=1))) if len(seeds) > 1 else 0.0
    m[f"{name}_n_owners"] = game.n
    return m


def game_names(m: dict) -> list[str]:
    """The main games a run played (those with a share matrix), the built-in ones in the notebook's order."""
    names = [key.removesuffix("_share_matrix") for key in m if key.endswith("_share_matrix")]
    order = {name: k for k, name in enumerate(DATASETS)}
    return sorted(names, key=lambda name: (order.get(name, len(order)), name))


def summary_table(m: dict) -> pd.DataFrame:
    """One row per (game, method): top-share rate and mean prompted share with their 95% intervals."""
    rows = []
    for name in game_names(m):
        for prefix, _, title in METHODS:
            rate, share = f"{name}_{prefix}prompted_owner_top_share_rate", f"{name}_{prefix}mean_prompted_share"
            rows.append({"dataset": name, "method": title, "top_share_rate": m[rate],
                         "top_share_rate_ci": _fmt(m[f"{rate}_ci"]), "mean_prompted_share": m[share],
                         "mean_prompted_share_ci": _fmt(m[f"{share}_ci"]), "uniform_share": 1 / m[f"{name}_n_owners"]})
    return pd.DataFrame(rows)


def _fmt(ci) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


# ---------------------------------------------------------------- the sentences
def verdicts(m: dict) -> list[str]:
    """Everything the notebook concludes, from metrics.json alone: the main games, the re-implementation's
    range, the checks (a)-(c) and the estimator game."""
    out = main_verdicts(m) + [reimplementation_gap(m)] + check_verdicts(m)
    if "estimator_game_n_owners" in m:
        out += estimator_verdicts(m)
    return out


def _ci(m: dict, key: str, fmt: str = ".2f") -> str:
    if f"{key}_ci" not in m:  # e.g. a fraction of a pay that was 0 under every seed
        return "undefined"
    lo, hi = m[f"{key}_ci"]
    return f"{m[key]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def main_verdicts(m: dict) -> list[str]:
    """Does the prompted owner get the largest share, and do the baselines too? One sentence each, with
    95% intervals over seeds."""
    out = []
    for name in game_names(m):
        def ci(key):
            return _ci(m, f"{name}_{key}")

        n = m[f"{name}_n_owners"]
        out.append(f"[{name}] over {m['n_seeds']} training seeds x {n} prompts, the prompted owner gets the largest "
                   f"Shapley royalty share at a rate of {ci('prompted_owner_top_share_rate')}; its mean share is "
                   f"{ci('mean_prompted_share')} against {1 / n:.2f} for an even split. Leave-one-out: "
                   f"{ci('loo_prompted_owner_top_share_rate')}, {ci('loo_mean_prompted_share')}; similarity: "
                   f"{ci('similarity_prompted_owner_top_share_rate')}, {ci('similarity_mean_prompted_share')}.")
        srs, sim = m[f"{name}_mean_prompted_share_ci"], m[f"{name}_similarity_mean_prompted_share_ci"]
        lo = m[f"{name}_prompted_owner_top_share_rate_ci"][0]
        sim_lo = m[f"{name}_similarity_prompted_owner_top_share_rate_ci"][0]
        out.append(("  -> the paper's claim holds here: the named owner is paid most, and the rate's interval is "
                    "above 1/2" if lo > 0.5 else "  -> the claim is not established at this scale: the top-share "
                    "rate's interval reaches below 1/2")
                   + ("; but the model-free similarity baseline names the owner too, so this test alone cannot tell "
                      "the methods apart (" if sim_lo > 0.5 else "; the similarity baseline's rate reaches below 1/2 (")
                   + intervals.compare("Shapley's mean prompted share", srs, "similarity's", sim) + ").")
        for prompt, row in m[f"{name}_share_matrix"].items():
            winner = max(row, key=row.get)
            if winner != prompt:
                out.append(f"  miss (mean over seeds): prompt {prompt} pays {winner} most "
                           f"({row[winner]:.2f} against {row[prompt]:.2f}).")
        out.append(f"  noise: the prompted owner's Shapley value is {ci('prompted_shapley_bits')} bits; it varies by "
                   f"{m[f'{name}_prompted_shapley_seed_sd_bits']:.1f} bits (median standard deviation) between "
                   f"training seeds, against a Monte Carlo standard error of "
                   f"{m[f'{name}_prompted_shapley_mc_se_bits']:.1f} bits within one seed's bound "
                   f"(common random numbers: one utility's error is {m[f'{name}_median_se_utility_bits']:.1f} "
                   f"bits, a difference full - base {m[f'{name}_median_se_full_minus_base_bits']:.1f}).")
    return out


def reimplementation_gap(m: dict) -> str:
    """This study's mean prompted shares, with intervals, beside the public re-implementation's range."""
    lo, hi = REIMPLEMENTATION_SHARES
    parts, above = [], []
    for name in game_names(m):
        mean, (a, b), n = m[f"{name}_mean_prompted_share"], m[f"{name}_mean_prompted_share_ci"], m[f"{name}_n_owners"]
        parts.append(f"{name} {mean:.2f} [{a:.2f}, {b:.2f}] ({n} owners, even split {1 / n:.2f})")
        above.append(a > hi)
    return (f"[against the re-implementation] mean prompted share here: {'; '.join(parts)}; the re-implementation "
            f"on FlickrLogos with Stable Diffusion found {lo:.2f}-{hi:.2f} (4 brands, even split 0.25). "
            + ("Every interval here lies above its range: the gap is not training-seed noise." if all(above) else
               "Not every interval here lies above its range: part of the gap may be seed noise."))


def check_verdicts(m: dict) -> list[str]:
    """What the three checks show, one sentence each, from the numbers and their intervals."""
    out, owner_name = [], m.get("shell_owner", "")

    def ci(key, fmt=".2f"):
        return _ci(m, key, fmt)

    if "shell_srs_after" in m:
        out.append(f"[(a) shared prompt] {owner_name} split into two shells: the shells' summed share of its prompt "
                   f"is {ci('shell_srs_after')} against {ci('shell_srs_before')} before (change "
                   f"{ci('shell_srs_change', '+.2f')}); the smaller shell gets {ci('shell_srs_smaller_half_fraction')} "
                   f"of the pair's pay (0.5: an even split). Leave-one-out: the pair gets {ci('shell_loo_after')}, "
                   f"the smaller shell {ci('shell_loo_smaller_half_fraction')}; similarity: {ci('shell_similarity_after')}, "
                   f"{ci('shell_similarity_smaller_half_fraction')}.")
        lo, hi = m["shell_srs_change_ci"]  # always defined: before and after are shares
        out.append("  -> the split changes the owners' pay beyond seed noise: Shapley shares are not robust to how "
                   "works are grouped into owners." if lo > 0 or hi < 0 else
                   "  -> the change from the split is within seed noise: no evidence here that splitting pays.")
    if "copycat_srs_original" in m:
        out.append(f"[(b) copy-cat] a near-duplicate of {owner_name}'s works under its prompt: the original keeps "
                   f"{ci('copycat_srs_original')} and the copy-cat takes {ci('copycat_srs_copycat')} by Shapley "
                   f"royalty share (the original had {ci('copycat_srs_before')} alone); leave-one-out pays them "
                   f"{ci('copycat_loo_original')} and {ci('copycat_loo_copycat')}; similarity "
                   f"{ci('copycat_similarity_original')} and {ci('copycat_similarity_copycat')}.")
        frac = m.get("copycat_srs_copycat_fraction_ci")
        if frac is not None:
            out.append(f"  -> the copy-cat gets {ci('copycat_srs_copycat_fraction')} of the pair's Shapley pay: "
                       + ("as much as the original within seed noise (their contributions are nearly symmetric), "
                          "so copying an owner's works earns part of its royalties." if frac[0] <= 0.5 <= frac[1] else
                          "less than the original, beyond seed noise, though copying still earns it part of the "
                          "original's royalties." if frac[1] < 0.5 else "more than the original, beyond seed noise."))
    labels = {"srs": "Shapley royalty share", "loo": "leave-one-out", "similarity": "similarity",
              "data_size": "pay by data size"}
    for name in game_names(m):
        key = f"{name}_unprompted_l1_to_composition"
        if f"{key}_srs" not in m:
            continue
        parts = ", ".join(f"{label} {ci(f'{key}_{k}')}" for k, label in labels.items())
        best = min(labels, key=lambda k: m[f"{key}_{k}"])
        out.append(f"[(c) no prompt, {name}] L1 distance of the shares from what the outputs are made of "
                   f"(lower is better): {parts}. Closest on average: {labels[best]}; "
                   + intervals.compare("Shapley royalty share", m[f"{key}_srs_ci"], "similarity",
                                       m[f"{key}_similarity_ci"]) + "; "
                   + intervals.compare("Shapley royalty share", m[f"{key}_srs_ci"], "the constant pay by data size",
                                       m[f"{key}_data_size_ci"]) + " (the reference is itself read off pixels, which "
                   "favours similarity; a method that tracks it no better than the constant has not shown it follows "
                   "what the outputs are made of).")
    return out


def estimator_verdicts(m: dict) -> list[str]:
    """Is the estimator game's exact payout sensible, which estimator is best at each fraction and does its
    interval separate from the next, and how do ours compare with shapiq's."""
    n, summary = m["estimator_game_n_owners"], estimators.table_from_metrics(m)
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
        exact = sel[sel.share_l1_error_high < estimators.EXACT].estimator.tolist()
        if len(exact) >= 2:
            out.append(f"[{fraction:.0%} of 2^{n} = {int(best.budget)} coalitions] exact (share error below "
                       f"{estimators.EXACT:g} for every seed): {', '.join(exact)}; worst: {sel.iloc[-1].estimator} "
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
    return out + _estimator_pairs(summary)


def _estimator_pairs(summary: pd.DataFrame) -> list[str]:
    """Ours against shapiq's version of the same estimator, and whether more coalitions help ours."""
    out = []
    pairs = (("permutation (antithetic, ours)", "shapiq PermutationSamplingSV", "antithetic pairs"),
             ("KernelSHAP (paired, ours)", "shapiq UnbiasedKernelSHAP", "paired KernelSHAP"))
    for ours, theirs, what in pairs:
        a, b = summary[summary.estimator == ours], summary[summary.estimator == theirs]
        parts = []
        for fraction in sorted(set(a.fraction) & set(b.fraction)):
            x, y = a[a.fraction == fraction].iloc[0], b[b.fraction == fraction].iloc[0]
            if max(x.share_l1_error_high, y.share_l1_error_high) < estimators.EXACT:
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
