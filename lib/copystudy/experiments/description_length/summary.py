"""Notebook 02: metrics.json (`summarize`) and the sentences the notebook prints (`verdicts`, from the
metrics alone)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from copystudy.common import intervals
from copystudy.compression import code_lengths as codes
from copystudy.experiments.description_length import capacity, memorized
from copystudy.experiments.description_length.steps import CodeLengths, block_rates


# ---- metrics.json -----------------------------------------------------------------------------------
def _ci(values) -> tuple[float, list[float]]:
    mean, lo, hi = intervals.mean_ci(values)
    return mean, [lo, hi]


def _put(m: dict, key: str, values) -> None:
    m[key], m[f"{key}_ci"] = _ci(values)


def per_seed(cl: CodeLengths) -> pd.DataFrame:
    """The headline numbers of each seed, one row per seed, from which metrics.json takes means and
    intervals; two_part_bits|<model>|<precision> for every two-part option."""
    rows = []
    for seed, g in cl.runs.groupby("seed"):
        final = g.iloc[-1]
        rates = list(g["next_block_bits_per_byte"].dropna())
        row = {"seed": seed, "prequential_bits": float(final["prequential_bits"]),
               "prequential_bits_per_byte": float(final["prequential_bits_per_byte"]),
               "data_bits_fp32": float(final["data_bits"]),
               "prequential_model_bits": float(final["prequential_bits"] - final["data_bits"]),
               **{f"block_{k}": v for k, v in codes.block_trend(rates).items()},
               **{f"heldout_{k}": v for k, v in codes.block_trend(g["heldout_bits_per_byte"]).items()}}
        two = cl.finals[seed]["two_part"]
        if "model" not in two:
            two = two.assign(model="early-stopped")
        for r in two.itertuples():
            row[f"two_part_bits|{r.model}|{r.bits_per_param}"] = float(r.total_bits)
            row[f"two_part_data_bits|{r.model}|{r.bits_per_param}"] = float(r.data_bits)
            row[f"two_part_model_bits|{r.model}|{r.bits_per_param}"] = float(r.model_bits)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class Sections:
    """What the notebook's sections give summarize: the code lengths, the generalisation gap, the coded
    stream's record, the classical compressors' bits per byte on the training text, the memorisation
    design's results and the capacity cells (None when a section did not run)."""

    code_lengths: CodeLengths
    gap: dict
    stream: dict
    classical: dict
    memo: memorized.Memorized | None = None
    capacity: pd.DataFrame | None = None


def summarize(sec: Sections, n_params: int, heldout_bytes: int) -> dict:
    """All of metrics.json: every number that depends on training noise is a mean over seeds with
    `<key>_ci`, its 95% interval."""
    cl, gap = sec.code_lengths, sec.gap
    seeds = per_seed(cl)
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
    stopped = cl.runs["stopped_early"].astype(bool)
    share, lo, hi = intervals.wilson(int(stopped.sum()), len(stopped))
    m["prefix_models_stopped_early"], m["prefix_models_stopped_early_ci"] = share, [lo, hi]
    m["prefix_models_stopped_early_by_prefix"] = cl.runs.groupby("train_bytes")["stopped_early"].mean().astype(float).tolist()
    m["prefix_warm_start"] = bool(cl.warm)
    m["prefix_train_steps"] = cl.runs.groupby("train_bytes")["train_steps"].mean().astype(float).tolist()
    m["prefix_step_ceiling"] = cl.runs.groupby("train_bytes")["step_ceiling"].first().astype(int).tolist()
    # the two-part code of the whole text: every model and precision; the shortest mean total is the code
    options = [c.split("|", 1)[1] for c in seeds if c.startswith("two_part_bits|")]
    best_opt = min(options, key=lambda o: seeds[f"two_part_bits|{o}"].mean())
    best_model, best = best_opt.split("|")[0], int(best_opt.split("|")[1])
    m["two_part_bits_by_model_and_precision"] = {}
    for o in options:
        name, b = o.split("|")
        m["two_part_bits_by_model_and_precision"].setdefault(name, {})[int(b)] = float(seeds[f"two_part_bits|{o}"].mean())
    m["two_part_bits_by_precision"] = m["two_part_bits_by_model_and_precision"][best_model]
    m["two_part_bits_by_precision_ci"] = {int(o.split("|")[1]): _ci(seeds[f"two_part_bits|{o}"])[1]
                                          for o in options if o.startswith(best_model + "|")}
    m["two_part_best_model"], m["two_part_best_bits_per_param"] = best_model, best
    _put(m, "two_part_bits", seeds[f"two_part_bits|{best_opt}"])
    _put(m, "two_part_bits_per_byte", seeds[f"two_part_bits|{best_opt}"] / n)
    _put(m, "two_part_data_bits", seeds[f"two_part_data_bits|{best_opt}"])
    m["two_part_model_bits"] = float(seeds[f"two_part_model_bits|{best_opt}"].iloc[0])
    m.update(ordering(m, sec.classical))
    # generalisation gap: bootstrap over documents and seeds
    m["generalization_gap_bits_per_byte"] = gap["gap_bits_per_byte"]
    m["generalization_gap_bits_per_byte_ci"] = [gap["low"], gap["high"]]
    m["generalization_gap_documents"] = gap["n_documents"]
    fit = float(cl.runs[cl.runs["train_bytes"] == n]["fit_bytes"].iloc[0] or n)
    m["generalization_gap_fit_bytes"] = fit
    m["generalization_gap_extrapolated_bits_per_param"] = gap["gap_bits_per_byte"] * fit / n_params
    m["generalization_gap_extrapolated_bits_per_param_ci"] = [gap["low"] * fit / n_params, gap["high"] * fit / n_params]
    if sec.memo is not None:
        m.update(memorized.metrics(sec.memo))
    if sec.capacity is not None:
        m.update(capacity.metrics(sec.capacity, n_params, n))
    m.update(sec.stream)
    return m


def ordering(m: dict, classical: dict) -> dict:
    """Which code is shortest once training is not the limit: the uniform, two-part and prequential
    codes and the classical compressors on the same text, sorted by bits per byte, and whether each
    neighbour pair's intervals separate (classical and uniform lengths are exact)."""
    codes_bpb = {"prequential": (m["prequential_bits_per_byte"], m["prequential_bits_per_byte_ci"]),
                 "two-part": (m["two_part_bits_per_byte"], m["two_part_bits_per_byte_ci"]),
                 "uniform": (8.0, [8.0, 8.0]), **{k: (v, [v, v]) for k, v in classical.items()}}
    order = sorted(codes_bpb, key=lambda k: codes_bpb[k][0])
    return {"classical_bits_per_byte": dict(classical), "code_ordering": order,
            "code_ordering_bits_per_byte": {k: codes_bpb[k][0] for k in order},
            "code_ordering_separated": [bool(codes_bpb[a][1][1] < codes_bpb[b][1][0]) for a, b in zip(order, order[1:])]}



def bits_per_parameter(m: dict) -> pd.DataFrame:
    """Every estimate of what the weights hold, in bits and bits per parameter, with 95% intervals, beside
    the capacity measured on random data (what they could hold at most)."""
    n = m["n_params"]
    rows = [("generalisation gap x fitted bytes", m["generalization_gap_extrapolated_bits_per_param"] * n,
             [v * n for v in m["generalization_gap_extrapolated_bits_per_param_ci"]]),
            ("prequential − L(data | final weights)", m["prequential_model_bits"], m["prequential_model_bits_ci"]),
            (f"weights in the shortest two-part code ({m['two_part_best_bits_per_param']}-bit)", m["two_part_model_bits"],
             [m["two_part_model_bits"]] * 2)]
    if "memorized_bits_by_copies" in m:
        c = max(m["memorized_bits_by_copies"])
        rows.append((f"memorised bits, a work at x{c}", m["memorized_bits_by_copies"][c], [np.nan, np.nan]))
    if "capacity_bound_bits" in m:
        rows.append(("capacity measured here on random data x parameters", m["capacity_bound_bits"], m["capacity_bound_bits_ci"]))
    out = [{"quantity": q, "bits": v, "low": ci[0], "high": ci[1], "bits_per_parameter": v / n} for q, v, ci in rows]
    cap = capacity.MORRIS_BITS_PER_PARAM
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


def verdicts(m: dict) -> list[str]:
    """What the numbers of this run say, one sentence each, with 95% intervals over seeds."""
    u = m["uniform_bits"]
    preq, two = m["prequential_bits_ci"], m["two_part_bits_ci"]
    best = m["two_part_best_bits_per_param"]
    out = [f"Training text: {m['train_bytes']:,} bytes = {u:,.0f} bits uncoded; {m['n_seeds']} seeds, 95% intervals "
           "over seeds in brackets.",
           f"- prequential code: {m['prequential_bits']:,.0f} bits {_ci_text(preq)} ({m['prequential_bits_per_byte']:.3f} "
           f"bits/byte); shortest two-part code: {m['two_part_bits']:,.0f} bits {_ci_text(two)} with "
           f"{best}-bit weights of the {m['two_part_best_model']} model ({m['two_part_bits_per_byte']:.3f} bits/byte, of which {m['two_part_model_bits']:,.0f} "
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
           f"  {m['prefix_models_stopped_early']:.0%} [{m['prefix_models_stopped_early_ci'][0]:.0%}, "
           f"{m['prefix_models_stopped_early_ci'][1]:.0%}] of the prefix models stopped early on their validation score"
           + (", each warm-started from the model of the block before (the decoder replays the same chain)"
              if m.get("prefix_warm_start") else "")
           + ("; none ran to its step ceiling, so the ceiling did not limit the code" if m["prefix_models_stopped_early"] == 1
              else f"; the others ran to their step ceiling ({m['prefix_step_ceiling']} steps by prefix) and may still "
              "have been improving") + f" (steps trained by prefix, mean over seeds: "
           f"{[round(s) for s in m['prefix_train_steps']]}).",
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
    order = m["code_ordering"]
    sep = m["code_ordering_separated"]
    out.append("- Ordering on the training text (bits/byte): " + "".join(
        f"{k} {m['code_ordering_bits_per_byte'][k]:.3f}" + ("" if i == len(order) - 1 else (" < " if sep[i] else " ≈ "))
        for i, k in enumerate(order)) + " (< : intervals separate; ≈ : they do not).")
    out += memorized.verdicts(m) if "memorized_bits_by_copies" in m else []
    out += capacity.verdicts(m) if "capacity_bits_per_param" in m else []
    out.append(f"- Per parameter: {m['generalization_gap_extrapolated_bits_per_param']:.3f} bits/parameter from the "
               f"gap extrapolated to all {m['generalization_gap_fit_bytes']:,.0f} fitted bytes "
               f"{_ci_text(m['generalization_gap_extrapolated_bits_per_param_ci'], '.3f')}"
               + (f", against a capacity of {m['capacity_bits_per_param']:.2f} measured here on random data"
                  if "capacity_bits_per_param" in m else "") + ".")
    if "prequential_coded_bits" in m:
        out.append(stream_verdict(m))
    return out
