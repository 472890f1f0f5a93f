"""Notebook 03, memorization: the numbers of metrics.json (`summarize`) and the sentences the notebook
prints (`verdicts`, computed from those numbers only, so the prose cannot contradict them)."""

from __future__ import annotations

import math

from copystudy.common.intervals import separated
from copystudy.experiments.memorization.canary_exposure import saturation
from copystudy.experiments.memorization.steps import Criterion, Ladder, transition_n


def summarize(ladder: Ladder, cans, lm_table, n_samples: int, criterion: Criterion,
              n_candidates: int, n_digits: int) -> dict:
    """The numbers of metrics.json. Extraction rates: pooled over seeds, `_ci` Wilson over the pooled
    samples (`_seed_ci`: t over the per-seed rates). Exposures: mean over seeds, `_ci` t over seeds."""
    t, budgets = ladder.table, sorted(ladder.table["epochs"].unique())
    by_budget = lambda col: {int(e): {int(r.N): float(getattr(r, col)) for r in t[t["epochs"] == e].itertuples()}
                             for e in budgets}
    pair = lambda lo, hi, frame, key: {int(getattr(r, key)): [float(getattr(r, lo)), float(getattr(r, hi))]
                                       for r in frame.itertuples()}
    m = {
        "n_seeds": int(t["n_seeds"].min()), "epoch_budgets": [int(e) for e in budgets],
        "extraction_rate_by_n": by_budget("rate"),
        "extraction_rate_by_n_ci": {int(e): pair("rate_low", "rate_high", t[t["epochs"] == e], "N") for e in budgets},
        "extraction_rate_by_n_seed_ci": {int(e): pair("seed_low", "seed_high", t[t["epochs"] == e], "N")
                                         for e in budgets},
        "steps_by_n": by_budget("steps"),
        "heldout_control_rate_by_n": {int(r.N): float(r.control_rate) for r in ladder.control.itertuples()},
        "heldout_control_rate_by_n_ci": pair("control_low", "control_high", ladder.control, "N"),
        "transition_n": {int(e): transition_n(t, e) for e in budgets},
        "extraction_rate_high_budget_by_n": by_budget("rate")[int(budgets[-1])],
        "diffusion_params": ladder.n_params, "n_samples_per_seed": n_samples, "threshold": criterion.threshold,
        "ratio": criterion.ratio, "distance": criterion.distance,
    }
    log2_r, cap = math.log2(n_candidates + 1), n_digits * math.log2(10)
    models = list(dict.fromkeys(cans.sort_values("n_params")["model"]))
    per_model = lambda col: {mo: {int(r.dup): float(getattr(r, col)) for r in cans[cans["model"] == mo].itertuples()}
                             for mo in models}
    per_model_ci = lambda col: {mo: {int(r.dup): [float(getattr(r, f"{col}_low")), float(getattr(r, f"{col}_high"))]
                                     for r in cans[cans["model"] == mo].itertuples()} for mo in models}
    m.update({
        "lm_models": models, "lm_params": {mo: int(cans[cans["model"] == mo]["n_params"].iloc[0]) for mo in models},
        "lm_epochs": float(lm_table["epochs"].mean()),
        "exposures_by_dup": {int(r.dup): float(r.exposures) for r in cans[cans["model"] == models[0]].itertuples()},
        "exposure_by_dup": per_model("exposure"), "exposure_by_dup_ci": per_model_ci("exposure"),
        "exposure_skewnorm_by_dup": per_model("exposure_skewnorm"),
        "exposure_skewnorm_by_dup_ci": per_model_ci("exposure_skewnorm"),
        "extractable_fraction_by_dup": per_model("extractable"),
        "extractable_fraction_by_dup_ci": per_model_ci("extractable"),
        "log2_R": log2_r, "log2_format_space": cap,
        "rank_exposure_saturates_at_exposures": saturation(cans),
        "skewnorm_exposure_reaches_cap_at_exposures": {
            mo: next((float(r.exposures) for r in cans[cans["model"] == mo].sort_values("exposures").itertuples()
                      if r.exposure_skewnorm >= cap - 1e-6), None) for mo in models},
    })
    return m


def _ci(ci) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def verdicts(m: dict) -> list[str]:
    """What the numbers say against what the papers report, one sentence each, from the intervals."""
    out = []
    rates, cis, control = m["extraction_rate_by_n"], m["extraction_rate_by_n_ci"], m["heldout_control_rate_by_n_ci"]
    budgets = m["epoch_budgets"]
    for e in budgets:
        ns = sorted(rates[e])
        small, large = ns[0], ns[-1]
        line = (f"{e} epochs at every N: extraction rate {rates[e][small]:.2f} {_ci(cis[e][small])} at N={small}, "
                f"{rates[e][large]:.2f} {_ci(cis[e][large])} at N={large} (held-out control at N={large}: "
                f"{m['heldout_control_rate_by_n'][large]:.3f} {_ci(control[large])}).")
        if separated(cis[e][small], cis[e][large]) and rates[e][small] > rates[e][large]:
            said = (f"-> At matched training ({e} epochs) extraction still falls with N, and the intervals separate: "
                    "the fall is not only the extra passes small training sets used to get.")
        elif separated(cis[e][small], cis[e][large]):
            said = f"-> At {e} epochs extraction RISES with N (intervals separate), against the expected fall."
        else:
            said = f"-> At {e} epochs the rates at N={small} and N={large} do not separate: no fall with N at this budget."
        tn = m["transition_n"][e]
        where = (f"the largest N whose rate lies above the held-out control (intervals separate) is {tn}" if tn is not None
                 else "at no N does the rate lie above the held-out control (intervals separate)")
        out += [line, said, f"   At {e} epochs {where}."]
    if len(budgets) >= 2:
        lo, hi = budgets[0], budgets[-1]
        ns = sorted(rates[hi])
        up = [n for n in ns if separated(cis[lo][n], cis[hi][n]) and rates[hi][n] > rates[lo][n]]
        down = [n for n in ns if separated(cis[lo][n], cis[hi][n]) and rates[hi][n] < rates[lo][n]]
        same = [n for n in ns if n not in up and n not in down]
        parts = ([f"more than {lo} epochs at N={up}"] if up else []) + ([f"fewer at N={down}"] if down else [])
        out.append(f"Training budget at fixed N: {hi} epochs extract "
                   + ("; ".join(parts) + " (intervals separate)" if parts else f"no more than {lo} epochs at any N")
                   + (f"; the intervals overlap at N={same}" if same and parts else "") + ".")
        tl, th = m["transition_n"][lo], m["transition_n"][hi]
        name = lambda n: "none" if n is None else f"N={n}"
        if tl is None and th is None:
            out.append("-> No N is memorised (rate above the control) at either budget: this budget cannot place the "
                       "transition.")
        elif tl != th:
            out.append("-> The memorisation transition moves with the training budget (largest N memorised: "
                       f"{name(tl)} at {lo} epochs, {name(th)} at {hi} epochs): where it lies is set by training, not "
                       "by the data alone.")
        else:
            out.append(f"-> The largest N memorised is the same ({name(tl)}) at both budgets: at this scale the "
                       "transition does not move with training length.")
    log2_r, cap = m["log2_R"], m["log2_format_space"]
    models, expo, expo_ci = m["lm_models"], m["exposure_by_dup"], m["exposure_by_dup_ci"]
    sk, sk_ci = m["exposure_skewnorm_by_dup"], m["exposure_skewnorm_by_dup_ci"]
    seen = m["exposures_by_dup"]
    for mo in models:
        dups = sorted(expo[mo])
        d0, d1 = dups[0], dups[-1]
        rise = separated(expo_ci[mo][d0], expo_ci[mo][d1]) and expo[mo][d1] > expo[mo][d0]
        sat = m["rank_exposure_saturates_at_exposures"][mo]
        out.append(f"LM {mo}: exposure {expo[mo][d0]:.1f} {_ci(expo_ci[mo][d0])} bits after {seen[d0]:.3g} exposures, "
                   f"{expo[mo][d1]:.1f} {_ci(expo_ci[mo][d1])} after {seen[d1]:.3g} "
                   + ("(rises, intervals separate); " if rise else "(intervals overlap); ")
                   + (f"the rank exposure saturates at log2|R| = {log2_r:.1f} bits from {sat:.3g} exposures, where the "
                      f"skew-normal extrapolation reads {sk[mo][_dup_at(seen, sat)]:.1f} "
                      f"{_ci(sk_ci[mo][_dup_at(seen, sat)])} bits (cap {cap:.1f})."
                      if sat is not None else f"the rank exposure never saturates at log2|R| = {log2_r:.1f} bits "
                      f"(skew-normal at {seen[d1]:.3g} exposures: {sk[mo][d1]:.1f} {_ci(sk_ci[mo][d1])} bits).")
                   + (f" The skew-normal estimate reaches its cap from {capped:.3g} exposures."
                      if (capped := m["skewnorm_exposure_reaches_cap_at_exposures"][mo]) is not None else ""))
    small, large = models[0], models[-1]
    for d in sorted({sorted(expo[small])[0], sorted(expo[small])[-1]}):
        out.append(f"Model size at {seen[d]:.3g} exposures: {small} {expo[small][d]:.1f} {_ci(expo_ci[small][d])}, "
                   f"{large} {expo[large][d]:.1f} {_ci(expo_ci[large][d])} bits (rank exposure); skew-normal "
                   f"{sk[small][d]:.1f} {_ci(sk_ci[small][d])} vs {sk[large][d]:.1f} {_ci(sk_ci[large][d])}.")
        bigger = separated(expo_ci[small][d], expo_ci[large][d]) and expo[large][d] > expo[small][d]
        out.append(f"-> At {seen[d]:.3g} exposures the larger model memorises more, intervals separate, as in Carlini "
                   "et al. 2022." if bigger else
                   f"-> At {seen[d]:.3g} exposures the difference with model size does NOT separate from seed noise.")
    return out


def _dup_at(seen: dict, count: float) -> int:
    """The duplication count whose exposures equal `count`."""
    return min(seen, key=lambda d: abs(seen[d] - count))
