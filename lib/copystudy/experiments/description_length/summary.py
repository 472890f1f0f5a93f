"""Notebook 02: metrics.json (`summarize`) and the sentences the notebook prints (`verdicts`, from the
metrics alone)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from copystudy.common import intervals
from copystudy.compression import code_lengths as codes
from copystudy.experiments.description_length.memorized import Memorized, sizes_equal
from copystudy.experiments.description_length.steps import CodeLengths, block_rates

CAPACITY_BITS_PER_PARAM_MORRIS = 3.6  # Morris et al. 2025, GPT-style models trained to saturation


# ---- metrics.json -----------------------------------------------------------------------------------
def _ci(values) -> tuple[float, list[float]]:
    mean, lo, hi = intervals.mean_ci(values)
    return mean, [lo, hi]


def _put(m: dict, key: str, values) -> None:
    m[key], m[f"{key}_ci"] = _ci(values)


def per_seed(cl: CodeLengths, diffs: pd.DataFrame) -> pd.DataFrame:
    """The headline numbers of each seed, one row per seed, from which metrics.json takes means and
    intervals."""
    rows = []
    for seed, g in cl.runs.groupby("seed"):
        final = g.iloc[-1]
        two = cl.finals[seed]["two_part"].set_index("bits_per_param")
        rates = list(g["next_block_bits_per_byte"].dropna())
        row = {"seed": seed, "prequential_bits": float(final["prequential_bits"]),
               "prequential_bits_per_byte": float(final["prequential_bits_per_byte"]),
               "data_bits_fp32": float(final["data_bits"]),
               "prequential_model_bits": float(final["prequential_bits"] - final["data_bits"]),
               **{f"block_{k}": v for k, v in codes.block_trend(rates).items()},
               **{f"heldout_{k}": v for k, v in codes.block_trend(g["heldout_bits_per_byte"]).items()}}
        row.update({f"two_part_bits_{b}": float(two.loc[b, "total_bits"]) for b in two.index})
        row.update({f"two_part_data_bits_{b}": float(two.loc[b, "data_bits"]) for b in two.index})
        d = diffs[diffs["seed"] == seed]
        works = d[d["kind"] == "training work"].groupby("text")["memorized_bits"].mean()
        row["memorized_bits_works"] = float(works.sum())
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(cl: CodeLengths, gap: dict, memo: Memorized, stream: dict, n_params: int, heldout_bytes: int) -> dict:
    """All of metrics.json: every number that depends on training noise is a mean over seeds with
    `<key>_ci`, its 95% interval; `stream` is `stream.finish_prequential_stream`'s record."""
    memo_models, diffs, memo_table = memo.models, memo.diffs, memo.table
    duplicated, duplicate_copies = memo.design.works[0], memo.copies
    seeds = per_seed(cl, diffs)
    n = int(cl.boundaries[-1])
    m = {"n_seeds": len(seeds), "seeds": [int(s) for s in seeds["seed"]], "n_params": n_params, "train_bytes": n,
         "heldout_bytes": heldout_bytes, "block_boundaries": cl.boundaries,
         "uniform_bits": codes.uniform_bits(n), "uniform_bits_per_byte": codes.UNIFORM_BITS_PER_BYTE}
    for key in ("prequential_bits", "prequential_bits_per_byte", "prequential_model_bits", "block_spearman",
                "data_bits_fp32"):
        _put(m, key, seeds[key])
    _put(m, "heldout_spearman", seeds["heldout_spearman"])
    for key in ("block_spearman_ci", "heldout_spearman_ci"):  # a rank correlation lies in [-1, 1]
        m[key] = [float(v) for v in np.clip(m[key], -1.0, 1.0)]
    curve = cl.runs.pivot(index="train_bytes", columns="seed", values="heldout_bits_per_byte")
    m["heldout_bits_per_byte_by_prefix"] = [float(v) for v in curve.mean(axis=1)]
    m["heldout_bits_per_byte_by_prefix_ci"] = [_ci(curve.loc[s])[1] for s in curve.index]
    m["heldout_increases_by_seed"] = [int(v) for v in seeds["heldout_increases"]]
    m["heldout_increases_of_mean"] = codes.block_trend(curve.mean(axis=1))["increases"]
    _put(m, "prequential_model_bits_per_param", seeds["prequential_model_bits"] / n_params)
    rates = block_rates(cl.runs)
    mean_rates = rates.mean(axis=1)
    m["block_bits_per_byte"] = [codes.UNIFORM_BITS_PER_BYTE] + [float(v) for v in mean_rates]
    m["block_bits_per_byte_ci"] = [[8.0, 8.0]] + [_ci(rates.loc[s])[1] for s in rates.index]
    m["block_increases_by_seed"] = [int(v) for v in seeds["block_increases"]]
    m["block_increases_of_mean"] = codes.block_trend(mean_rates)["increases"]
    m["prefix_models_stopped_early"] = float(cl.runs["stopped_early"].astype(float).mean())
    m["prefix_train_steps"] = cl.runs.groupby("train_bytes")["train_steps"].mean().astype(float).tolist()
    m["prefix_step_ceiling"] = cl.runs.groupby("train_bytes")["step_ceiling"].first().astype(int).tolist()
    # the two-part code of the whole text: every precision, and the one with the shortest mean total
    precisions = [int(c.rsplit("_", 1)[1]) for c in seeds if c.startswith("two_part_bits_")]
    m["two_part_bits_by_precision"] = {b: float(seeds[f"two_part_bits_{b}"].mean()) for b in precisions}
    m["two_part_bits_by_precision_ci"] = {b: _ci(seeds[f"two_part_bits_{b}"])[1] for b in precisions}
    m["two_part_data_bits_by_precision"] = {b: float(seeds[f"two_part_data_bits_{b}"].mean()) for b in precisions}
    best = min(precisions, key=lambda b: m["two_part_bits_by_precision"][b])
    m["two_part_best_bits_per_param"] = best
    _put(m, "two_part_bits", seeds[f"two_part_bits_{best}"])
    _put(m, "two_part_bits_per_byte", seeds[f"two_part_bits_{best}"] / n)
    _put(m, "two_part_data_bits", seeds[f"two_part_data_bits_{best}"])
    m["two_part_model_bits"] = float(cl.finals[seeds["seed"].iloc[0]]["two_part"].set_index("bits_per_param")
                                     .loc[best, "model_bits"])
    # generalisation gap: bootstrap over documents and seeds
    m["generalization_gap_bits_per_byte"] = gap["gap_bits_per_byte"]
    m["generalization_gap_bits_per_byte_ci"] = [gap["low"], gap["high"]]
    m["generalization_gap_documents"] = gap["n_documents"]
    fit = float(cl.runs[cl.runs["train_bytes"] == n]["fit_bytes"].iloc[0] or n)
    m["generalization_gap_fit_bytes"] = fit
    m["generalization_gap_extrapolated_bits_per_param"] = gap["gap_bits_per_byte"] * fit / n_params
    m["generalization_gap_extrapolated_bits_per_param_ci"] = [gap["low"] * fit / n_params, gap["high"] * fit / n_params]
    # memorised bits: swap design
    works = memo_table[memo_table["kind"] == "training work"].set_index("work")
    controls = memo_table[memo_table["kind"] == "held-out control"].set_index("work")
    m["memorization_sizes_equal"] = sizes_equal(memo_models)
    m["memorization_train_bytes"] = int(memo_models["train_bytes"].iloc[0])
    m["memorization_steps"] = int(memo_models["train_steps"].iloc[0])
    for name, rows in (("by_work", works), ("control_by_work", controls)):
        m[f"memorized_bits_{name}"] = rows["memorized_bits"].to_dict()
        m[f"memorized_bits_{name}_ci"] = {k: [r.memorized_bits_low, r.memorized_bits_high] for k, r in rows.iterrows()}
    m["memorized_bits_per_byte_by_work"] = works["memorized_bits_per_byte"].to_dict()
    m["memorized_bits_per_byte_by_work_ci"] = {k: [r.memorized_bits_per_byte_low, r.memorized_bits_per_byte_high]
                                              for k, r in works.iterrows()}
    ctrl = diffs[diffs["kind"] == "held-out control"]
    per_byte = ctrl["memorized_bits"] / ctrl["text"].map(controls["bytes"])
    m["memorization_noise_bits_per_byte"] = float(per_byte.std()) if len(per_byte) > 1 else float("nan")
    m["memorized_bits_control_per_byte"] = float(per_byte.mean()) if len(per_byte) else float("nan")
    m["duplicated_work"], m["duplicate_copies"] = duplicated, duplicate_copies
    m["memorized_bits_duplicated_work"] = float(works.loc[duplicated, "memorized_bits"])
    m["memorized_bits_duplicated_work_ci"] = m["memorized_bits_by_work_ci"][duplicated]
    m["memorized_bits_per_byte_duplicated_work"] = float(works.loc[duplicated, "memorized_bits_per_byte"])
    m["memorized_bits_per_byte_duplicated_work_ci"] = m["memorized_bits_per_byte_by_work_ci"][duplicated]
    once = diffs[(diffs["kind"] == "training work") & (diffs["text"] != duplicated)]
    if len(once):
        once_rate = (once["memorized_bits"] / once["text"].map(works["bytes"])).groupby(once["seed"]).mean()
        _put(m, "memorized_bits_per_byte_single_copy_mean", once_rate)
    else:
        m["memorized_bits_per_byte_single_copy_mean"], m["memorized_bits_per_byte_single_copy_mean_ci"] = (
            float("nan"), [float("nan")] * 2)
    _put(m, "memorized_bits_per_param_works", seeds["memorized_bits_works"] / n_params)
    m["capacity_bits_per_param_morris"] = CAPACITY_BITS_PER_PARAM_MORRIS
    m.update(stream)
    return m


def bits_per_parameter(m: dict) -> pd.DataFrame:
    """Every estimate of what the weights hold, in bits and bits per parameter, with 95% intervals."""
    n = m["n_params"]
    rows = [("memorised bits, duplicated work", "memorized_bits_duplicated_work", 1.0),
            ("memorised bits, all measured works", "memorized_bits_per_param_works", n),
            ("generalisation gap x fitted bytes", "generalization_gap_extrapolated_bits_per_param", n),
            ("prequential − L(data | final weights)", "prequential_model_bits", 1.0),
            (f"weights in the shortest two-part code ({m['two_part_best_bits_per_param']}-bit)", "two_part_model_bits", 1.0)]
    out = []
    for label, key, scale in rows:
        low, high = m.get(f"{key}_ci", [m[key], m[key]])
        out.append({"quantity": label, "bits": m[key] * scale, "low": low * scale, "high": high * scale,
                    "bits_per_parameter": m[key] * scale / n})
    cap = m["capacity_bits_per_param_morris"]
    out.append({"quantity": "capacity, Morris et al. 2025", "bits": cap * n, "low": np.nan, "high": np.nan,
                "bits_per_parameter": cap})
    return pd.DataFrame(out)


def stream_verdict(s: dict) -> str:
    """One sentence on the coded prequential stream."""
    return (f"prequential stream (seed {s['prequential_stream_seed']}): {s['prequential_coded_bits']:,} bits coded "
            f"({s['prequential_coded_bits'] / s['train_bytes']:.3f} bits/byte) against the ideal "
            f"{s['prequential_ideal_bits_stream_seed']:,.0f} bits ({s['prequential_coded_overhead_pct']:+.3f} %); the decoder, "
            "sent no weights, retrained every block model from the bytes it decoded and "
            + ("reproduced the training text exactly" if s["prequential_roundtrip_exact"] else
               "did NOT reproduce the training text"))


# ---- verdicts ---------------------------------------------------------------------------------------
def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ci_text(ci, fmt: str = ",.0f") -> str:
    return f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _duplicated_verdict(dci, control_ci: dict, control_bits: dict) -> str:
    """Is the duplicated work's memorised-bits interval above zero, and above every control's?"""
    zero = "lies above zero" if dci[0] > 0 else "is NOT separated from zero"
    above = [k for k, c in control_ci.items() if dci[0] > c[1]]
    if len(above) == len(control_ci):
        return (f"  The duplicated work's interval {zero} and above every control's: duplication makes the weights hold "
                "the work, as Carlini et al. (2022) and Morris et al. report.")
    worst = max(control_bits, key=lambda k: abs(control_bits[k]))
    lo, hi = control_ci[worst]
    return (f"  The duplicated work's interval {zero}, and above {len(above)} of the {len(control_ci)} controls' "
            f"intervals; the control that moves most, {worst!r} ({control_bits[worst]:+,.0f} bits [{lo:+,.0f}, "
            f"{hi:+,.0f}]), overlaps it: swapping a work for its stand-in changes the model on text like the stand-in.")


def verdicts(m: dict) -> list[str]:
    """What the numbers of this run say, one sentence each, with 95% intervals over seeds."""
    u = m["uniform_bits"]
    preq, two = m["prequential_bits_ci"], m["two_part_bits_ci"]
    best = m["two_part_best_bits_per_param"]
    out = [f"Training text: {m['train_bytes']:,} bytes = {u:,.0f} bits uncoded; {m['n_seeds']} seeds, 95% intervals "
           "over seeds in brackets.",
           f"- prequential code: {m['prequential_bits']:,.0f} bits {_ci_text(preq)} ({m['prequential_bits_per_byte']:.3f} "
           f"bits/byte); shortest two-part code: {m['two_part_bits']:,.0f} bits {_ci_text(two)} with "
           f"{best}-bit weights ({m['two_part_bits_per_byte']:.3f} bits/byte, of which {m['two_part_model_bits']:,.0f} "
           "bits of weights).",
           "  " + _capital(intervals.compare("the prequential code", preq, "the two-part code", two)) + "; "
           + intervals.compare("the prequential code", preq, "the uniform code", [u, u]) + "."
           + (" As Blier & Ollivier found for deep nets, the prequential code is the shortest." if preq[1] < min(two[0], u)
              else ""),
           "  Two-part code by weight precision: " + ", ".join(
               f"{b} bits/weight {v:,.0f}" for b, v in sorted(m["two_part_bits_by_precision"].items(), reverse=True))
           + f" bits. The shortest ({best} bits/weight) "
           + ("beats the uniform code (its interval lies below 8 bits/byte)." if two[1] < u else
              "does NOT beat the uniform code: at this scale the weights cost more bits than they save."
              if two[0] > u else "is not separated from the uniform code (its interval contains it)."),
           "- Per-block rates (bits/byte, mean over seeds): "
           + ", ".join(f"{r:.2f}" for r in m["block_bits_per_byte"][1:])
           + f". Rank correlation with the block index {m['block_spearman']:+.2f} {_ci_text(m['block_spearman_ci'], '+.2f')}"
           f"; increases from one block to the next per seed: {m['block_increases_by_seed']}, of the mean curve: "
           f"{m['block_increases_of_mean']}.",
           "  The rate falls at every block of the mean curve: each prefix model, stopped early on its own "
           "validation bytes, predicts better the more it has seen." if m["block_increases_of_mean"] == 0 else
           "  The mean rate does NOT fall at every block: some later blocks are dearer than earlier ones.",
           f"  {m['prefix_models_stopped_early']:.0%} of the prefix models stopped early on their validation score; "
           f"the others ran to their step ceiling ({m['prefix_step_ceiling']} steps by prefix) and may still have "
           "been improving.",
           "- The same models on one fixed held-out text (bits/byte by prefix): "
           + ", ".join(f"{r:.2f}" for r in m["heldout_bits_per_byte_by_prefix"])
           + f"; rank correlation with the prefix {m['heldout_spearman']:+.2f} "
           f"{_ci_text(m['heldout_spearman_ci'], '+.2f')}; increases per seed {m['heldout_increases_by_seed']}.",
           "  On fixed text the learner improves with every doubling of its data"
           + (", so the blocks' ups and downs are the text of the blocks, not the training."
              if m["block_increases_of_mean"] else ".") if m["heldout_increases_of_mean"] == 0 else
           "  Even on fixed text the learner does NOT improve with every doubling: the training recipe, not only "
           "the data, shapes the curve.",
           f"- The prequential model cost (prequential - data bits under the final float32 weights) is "
           f"{m['prequential_model_bits']:,.0f} bits {_ci_text(m['prequential_model_bits_ci'])} = "
           f"{m['prequential_model_bits_per_param']:.2f} bits/parameter: everything the learner took in, general and "
           "specific."]
    g, gci = m["generalization_gap_bits_per_byte"], m["generalization_gap_bits_per_byte_ci"]
    docs = m["generalization_gap_documents"]
    out.append(f"- Generalisation gap (held-out minus fitted documents, byte-weighted, final model): {g:+.3f} bits/byte, "
               f"95% bootstrap interval over documents and seeds [{gci[0]:+.3f}, {gci[1]:+.3f}] "
               f"({docs['train']} fitted and {docs['heldout']} held-out documents).")
    out.append("  The fitted text is reliably cheaper than unseen text: the weights hold document-specific information."
               if gci[0] > 0 else
               "  The interval contains zero: at this scale the gap cannot be told apart from which documents "
               "happened to be held out and from training noise." if gci[1] >= 0 else
               "  The held-out documents are reliably cheaper than the fitted ones: they are easier text, which hides "
               "any saving on seen text.")
    dup, dci = m["memorized_bits_duplicated_work"], m["memorized_bits_duplicated_work_ci"]
    single, sci = m["memorized_bits_per_byte_single_copy_mean"], m["memorized_bits_per_byte_single_copy_mean_ci"]
    noise = m["memorization_noise_bits_per_byte"]
    ctrl = list(m["memorized_bits_control_by_work_ci"].values())
    ctrl_span = [min(c[0] for c in ctrl), max(c[1] for c in ctrl)] if ctrl else [0.0, 0.0]
    out += [f"- Memorised bits (swap design: with- and without-models on {m['memorization_train_bytes']:,} bytes for "
            f"{m['memorization_steps']} steps each; equal sizes checked: {m['memorization_sizes_equal']}): the work "
            f"duplicated x{m['duplicate_copies']} ({m['duplicated_work']!r}) holds {dup:,.0f} bits {_ci_text(dci)} "
            f"({m['memorized_bits_per_byte_duplicated_work']:.3f} bits/byte); works seen once average {single:.3f} "
            f"bits/byte {_ci_text(sci, '.3f')}; the controls' single differences scatter by {noise:.3f} bits/byte, "
            f"their intervals span {_ci_text(ctrl_span)} bits.",
            _duplicated_verdict(dci, m["memorized_bits_control_by_work_ci"], m["memorized_bits_control_by_work"]),
            "  Works seen once are memorised too: their mean interval lies above zero." if sci[0] > 0 else
            "  Works seen once are NOT measurably memorised at this scale (their interval reaches zero).",
            f"- Per parameter: {m['memorized_bits_per_param_works']:.4f} bits/parameter for the measured works "
            f"{_ci_text(m['memorized_bits_per_param_works_ci'], '.4f')}, "
            f"{m['generalization_gap_extrapolated_bits_per_param']:.3f} from the gap extrapolated to all "
            f"{m['generalization_gap_fit_bytes']:,.0f} fitted bytes, versus the ~{m['capacity_bits_per_param_morris']} "
            "bits/parameter capacity of Morris et al.: "
            + ("far below capacity" if m["generalization_gap_extrapolated_bits_per_param_ci"][1] < 1
               else "not clearly far below capacity")
            + " (a small model on structured text; capacity is measured by training to saturation on random data)."]
    if "prequential_coded_bits" in m:
        out.append(stream_verdict(m))
    return out
