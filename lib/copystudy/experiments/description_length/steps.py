"""Notebook 02, description length: how many bits of the training text do the weights hold?

Uniform, two-part and prequential code lengths of growing prefixes of the training text, for several
training seeds (each prefix model stopped early on the end of its prefix); the two-part code of the
whole text with its weights at the precision that makes it shortest; the generalisation gap per
document with a bootstrap interval over documents and seeds; memorised bits per work from a swap
design (the without-model trains on the same corpus with the work swapped for held-out text of the
same length), with a duplicated work and held-out controls. The quantities are in
`copystudy.compression.code_lengths`; this module runs them in the notebook's order, and `summarize` and
`verdicts` give metrics.json and the sentences the notebook prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from copystudy.compression import code_lengths as dl
from copystudy.common import intervals

CAPACITY_BITS_PER_PARAM_MORRIS = 3.6  # Morris et al. 2025, GPT-style models trained to saturation
RATE_COLUMNS = ["uniform_bits_per_byte", "two_part_bits_per_byte", "data_bits_per_byte", "prequential_bits_per_byte",
                "next_block_bits_per_byte", "heldout_bits_per_byte", "validation_bits_per_byte", "train_steps"]


def recipe(model: dict, batch_size: int, lr: float, epochs: float, min_steps: int, max_steps: int,
           validation_fraction: float, eval_every: int, patience: int) -> dl.Recipe:
    """The prequential learner's recipe from the notebook's parameters."""
    return dl.Recipe(model=dict(model), batch_size=batch_size, lr=lr, epochs=epochs, min_steps=min_steps,
                     max_steps=max_steps, validation_fraction=validation_fraction, eval_every=eval_every,
                     patience=patience)


def memorization_trainer(model: dict, batch_size: int, lr: float, steps: int):
    """train(data, seed) for the with- and without-models: exactly `steps` steps, no early stopping."""
    return partial(dl.train_fixed_steps, dict(model), batch_size, lr, steps)


# ---- code lengths -----------------------------------------------------------------------------------
@dataclass
class CodeLengths:
    boundaries: list[int]
    runs: pd.DataFrame  # one row per (seed, prefix)
    finals: dict  # seed -> {"two_part": by precision, "doc_bits": per document} of the model of the whole text
    stream: list | None = None  # the stream seed's blocks 1.. range-coded by their prefix models


def final_model_analysis(train_text: bytes, train_docs: dict, heldout_docs: dict, precisions, model,
                         data_bits: float) -> dict:
    """What the model of the whole text gives besides its block: the two-part code at each precision
    and the bits of every document it was fitted on and every held-out document."""
    fit_text = train_text[:getattr(model, "fit_bytes", len(train_text))]
    docs = pd.concat([dl.document_bits(model, dl.fit_documents(train_docs, fit_text), "train"),
                      dl.document_bits(model, heldout_docs, "heldout")], ignore_index=True)
    return {"two_part": dl.two_part_by_precision(model, train_text, precisions, data_bits), "doc_bits": docs}


def code_lengths(train_text: bytes, train_docs: dict, heldout_docs: dict, first_block: int, train, seeds,
                 bits_per_param: int, precisions, curve_heldout_bytes: int, stream: bool = True) -> CodeLengths:
    """One model per seed and doubling prefix, all in one map_tasks call; each also codes the first
    `curve_heldout_bytes` of the held-out text (the learning curve), and the first seed's models
    range-code their next block (the prequential code as a real stream, see `prequential_stream`)."""
    boundaries = dl.block_schedule(len(train_text), first_block)
    if len(boundaries) < 3:
        raise ValueError(f"first_block ({first_block}) must be at most half the training text ({len(train_text)} bytes)")
    final = partial(final_model_analysis, bytes(train_text), dict(train_docs), dict(heldout_docs), tuple(precisions))
    heldout = b"".join(heldout_docs[k] for k in sorted(heldout_docs))[:curve_heldout_bytes]
    runs, finals, words = dl.code_lengths_by_size(train_text, boundaries, train, seeds, bits_per_param, final, heldout,
                                                  stream_seed=seeds[0] if stream else None)
    return CodeLengths(boundaries, runs, finals, words)


def start_prequential_stream(cl: CodeLengths, data: bytes, train, seed: int):
    """The prequential code as a real compressed stream, and its decoding, handed to the cluster as
    one task (it is sequential: block k's model needs blocks < k decoded); collect it with
    `finish_prequential_stream`. Without a cluster it runs there.

    Block 0 is range-coded with the uniform code; block k >= 1 was range-coded, in its prefix task, by
    the model trained on data[:b_k]. The decoder receives the words and the block lengths only: it
    decodes block 0, trains model 1 on it with the same recipe and seed, decodes block 1 with it,
    and so on, so it must reproduce every model bit for bit (one thread, as every task runs) to get
    the data back."""
    from copystudy.compression import coding, online_coding
    from copystudy.common import parallel

    b = cl.boundaries
    first = online_coding.encode_block(None, b"", data[:b[1]])[0]
    ideal = float(cl.runs[(cl.runs.seed == seed) & (cl.runs.train_bytes == b[-1])]["prequential_bits"].iloc[0])
    code = coding.Coded([first, *cl.stream], [y - x for x, y in zip(b, b[1:])], ideal)
    summary = {"prequential_stream_seed": int(seed), "prequential_coded_bits": int(code.coded_bits),
               "prequential_ideal_bits_stream_seed": ideal, "prequential_coded_overhead_pct": code.overhead_pct}
    return summary, parallel.submit_tasks(partial(_decodes_exactly, code, train, bytes(data)), [seed],
                                          desc="decode the prequential stream, retraining every block model")


def _decodes_exactly(code, train, data: bytes, seed: int) -> bool:
    """The decoder (a task): rebuild every block model from the decoded bytes; True if data comes back."""
    from copystudy.compression import online_coding
    from copystudy.models.training import progress

    try:
        decoded = online_coding.decode(code, online_coding.PrequentialLearner(train, seed),
                                       progress=lambda items: progress(items, desc=f"prequential decoder, seed {seed}"))
    except online_coding.DecodeError:
        return False
    return decoded == data


def finish_prequential_stream(started) -> dict:
    """The coded stream's size beside the ideal prequential code length of the same seed, and whether
    the decoder gave the text back."""
    summary, pending = started
    return {**summary, "prequential_roundtrip_exact": bool(pending.result()[0])}


def stream_verdict(s: dict, n_bytes: int) -> str:
    """One sentence on the coded prequential stream."""
    return (f"prequential stream (seed {s['prequential_stream_seed']}): {s['prequential_coded_bits']:,} bits coded "
            f"({s['prequential_coded_bits'] / n_bytes:.3f} bits/byte) against the ideal "
            f"{s['prequential_ideal_bits_stream_seed']:,.0f} bits ({s['prequential_coded_overhead_pct']:+.3f} %); the decoder, "
            "sent no weights, retrained every block model from the bytes it decoded and "
            + ("reproduced the training text exactly" if s["prequential_roundtrip_exact"] else
               "did NOT reproduce the training text"))


def by_size(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% interval over seeds of every rate, per prefix size; the share of models that
    stopped early (the rest ran to their step ceiling)."""
    rows = []
    for size, g in runs.groupby("train_bytes"):
        row = {"train_bytes": size, "n_seeds": len(g), "stopped_early": float(g["stopped_early"].astype(float).mean()),
               "step_ceiling": float(g["step_ceiling"].mean())}
        for col in RATE_COLUMNS:
            values = g[col].dropna()
            if len(values):
                row[col], row[f"{col}_low"], row[f"{col}_high"] = intervals.mean_ci(values)
        rows.append(row)
    return pd.DataFrame(rows)


def block_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """Bits per byte of every model-coded block (rows) for every seed (columns)."""
    coded = runs.dropna(subset=["next_block_bits"])
    return coded.pivot(index="train_bytes", columns="seed", values="next_block_bits_per_byte")


def two_part_table(cl: CodeLengths) -> pd.DataFrame:
    """The two-part code of the whole text at each precision: mean over seeds with a 95% interval."""
    long = pd.concat([f["two_part"].assign(seed=s) for s, f in cl.finals.items()], ignore_index=True)
    rows = []
    for b, g in long.groupby("bits_per_param", sort=False):
        row = {"bits_per_param": int(b), "quantized": bool(g["quantized"].iloc[0]),
               "weight_bits": float(g["weight_bits"].iloc[0]), "model_bits": float(g["model_bits"].iloc[0])}
        for col in ("data_bits", "total_bits", "total_bits_per_byte"):
            row[col], row[f"{col}_low"], row[f"{col}_high"] = intervals.mean_ci(g[col])
        rows.append(row)
    return pd.DataFrame(rows)


def document_table(cl: CodeLengths) -> pd.DataFrame:
    """Bits of every document under the model of the whole text, one row per (seed, document)."""
    return pd.concat([f["doc_bits"].assign(seed=s) for s, f in cl.finals.items()], ignore_index=True)


# ---- memorised bits ---------------------------------------------------------------------------------
@dataclass
class Design:
    works: list[str]  # the first is duplicated
    corpus: dict[str, bytes]  # the with-model's training set
    stand_ins: dict[str, bytes]  # work -> held-out text of its length
    stand_in_labels: dict[str, str]  # work -> "document[start:end]"
    controls: dict[str, bytes]  # held-out texts no model sees


def memorization_design(train_docs: dict, heldout_docs: dict, n_works: int, work_bytes, duplicate_copies: int,
                        train_bytes: int, n_controls: int, seed: int = 0) -> Design:
    """The works measured (the first duplicated), the with-model training set, a held-out stand-in for
    each work, and controls from held-out documents that host no stand-in."""
    works = dl.choose_works(train_docs, n_works, work_bytes[0], work_bytes[1], seed=seed)
    corpus = dl.memorization_corpus(train_docs, works, works[0], duplicate_copies, max_bytes=train_bytes, seed=seed)
    cuts = dl.substitutes({w: train_docs[w] for w in works}, heldout_docs)
    hosts = {label.rsplit("[", 1)[0] for label, _ in cuts.values()}
    free = sorted((k for k in heldout_docs if k not in hosts and heldout_docs[k]), key=lambda k: (-len(heldout_docs[k]), k))
    if len(free) < n_controls:
        raise ValueError(f"only {len(free)} held-out documents are left for controls after the stand-ins; "
                         f"n_controls={n_controls} needs more (lower n_controls or n_works)")
    controls = {k: heldout_docs[k][:work_bytes[1]] for k in free[:n_controls]}
    return Design(works, corpus, {w: b for w, (_, b) in cuts.items()}, {w: lbl for w, (lbl, _) in cuts.items()},
                  controls)


def memorized(design: Design, train_docs: dict, train, seeds) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(one row per model, one row per difference, the table per work and control)."""
    works = {w: train_docs[w] for w in design.works}
    models, diffs = dl.memorization_runs(design.corpus, works, design.stand_ins, train, design.controls, seeds)
    copies = {w: sum(1 for k in design.corpus if k == w or k.startswith(f"{w}#copy")) for w in works}
    sizes = {**{w: len(t) for w, t in works.items()}, **{c: len(t) for c, t in design.controls.items()}}
    table = dl.memorization_table(diffs, sizes, copies)
    table.insert(4, "stand_in", table["work"].map(design.stand_in_labels))
    return models, diffs, table


def sizes_equal(models: pd.DataFrame) -> bool:
    """Did every without-model train on exactly the bytes and steps of its seed's with-model?"""
    ref = models[models["swapped"].isna()].set_index("seed")
    rest = models[models["swapped"].notna()]
    return bool(len(rest) and all(ref.loc[r.seed, "train_bytes"] == r.train_bytes and
                                  ref.loc[r.seed, "train_steps"] == r.train_steps for r in rest.itertuples()))


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
               **{f"block_{k}": v for k, v in dl.block_trend(rates).items()},
               **{f"heldout_{k}": v for k, v in dl.block_trend(g["heldout_bits_per_byte"]).items()}}
        row.update({f"two_part_bits_{b}": float(two.loc[b, "total_bits"]) for b in two.index})
        row.update({f"two_part_data_bits_{b}": float(two.loc[b, "data_bits"]) for b in two.index})
        d = diffs[diffs["seed"] == seed]
        works = d[d["kind"] == "training work"].groupby("text")["memorized_bits"].mean()
        row["memorized_bits_works"] = float(works.sum())
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(cl: CodeLengths, gap: dict, memo_models: pd.DataFrame, diffs: pd.DataFrame, memo_table: pd.DataFrame,
              duplicated: str, duplicate_copies: int, n_params: int, heldout_bytes: int) -> dict:
    """The numbers of metrics.json: every number that depends on training noise is a mean over seeds
    with `<key>_ci`, its 95% interval."""
    seeds = per_seed(cl, diffs)
    n = int(cl.boundaries[-1])
    m = {"n_seeds": len(seeds), "seeds": [int(s) for s in seeds["seed"]], "n_params": n_params, "train_bytes": n,
         "heldout_bytes": heldout_bytes, "block_boundaries": cl.boundaries,
         "uniform_bits": dl.uniform_bits(n), "uniform_bits_per_byte": dl.UNIFORM_BITS_PER_BYTE}
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
    m["heldout_increases_of_mean"] = dl.block_trend(curve.mean(axis=1))["increases"]
    _put(m, "prequential_model_bits_per_param", seeds["prequential_model_bits"] / n_params)
    rates = block_rates(cl.runs)
    mean_rates = rates.mean(axis=1)
    m["block_bits_per_byte"] = [dl.UNIFORM_BITS_PER_BYTE] + [float(v) for v in mean_rates]
    m["block_bits_per_byte_ci"] = [[8.0, 8.0]] + [_ci(rates.loc[s])[1] for s in rates.index]
    m["block_increases_by_seed"] = [int(v) for v in seeds["block_increases"]]
    m["block_increases_of_mean"] = dl.block_trend(mean_rates)["increases"]
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
    return out


# ---- figures ----------------------------------------------------------------------------------------
def _band(ax, x, df, col, color, label, ls="-"):
    ax.plot(x, df[col], ls, marker="o", color=color, label=label)
    if f"{col}_low" in df:
        ax.fill_between(x, df[f"{col}_low"], df[f"{col}_high"], color=color, alpha=0.2, lw=0)


def plot_code_lengths(sizes: pd.DataFrame, rates: pd.DataFrame, two_part: pd.DataFrame, n_params: int,
                      first_block: int, bits_per_param: int, n_seeds: int):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    x = sizes["train_bytes"]
    for key, label, ls, color in [("uniform", "uniform (8 bits/byte)", "-", "tab:gray"),
                                  ("two_part", f"two-part ({bits_per_param}-bit weights + data)", "-", "tab:red"),
                                  ("prequential", "prequential (online)", "-", "tab:blue"),
                                  ("data", "data given weights only (weights free)", ":", "tab:green")]:
        _band(axes[0], x, sizes, f"{key}_bits_per_byte", color, label, ls)
    axes[0].set(xscale="log", yscale="log", xlabel="training-set size (bytes)", ylabel="bits per byte",
                title="Code length of the first t bytes, per byte")
    axes[0].legend(fontsize=8)
    for seed in rates.columns:
        axes[1].plot(rates.index, rates[seed], color="tab:blue", alpha=0.35, lw=1)
    coded = sizes.dropna(subset=["next_block_bits_per_byte"])
    _band(axes[1], coded["train_bytes"], coded, "next_block_bits_per_byte", "tab:blue", "next block, mean over seeds")
    _band(axes[1], x, sizes, "heldout_bits_per_byte", "tab:purple", "fixed held-out text", "--")
    axes[1].set(xscale="log", xlabel="prefix the model trained on (bytes)", ylabel="bits per byte",
                title="Prequential blocks (thin: one seed each)")
    axes[1].legend(fontsize=8)
    pos = np.arange(len(two_part))
    err = np.vstack([two_part["total_bits"] - two_part["total_bits_low"], two_part["total_bits_high"] - two_part["total_bits"]])
    axes[2].bar(pos, two_part["model_bits"], color="tab:red", alpha=0.6, label="weights")
    axes[2].bar(pos, two_part["data_bits"], bottom=two_part["model_bits"], color="tab:green", alpha=0.6,
                label="data given the (quantised) weights")
    axes[2].errorbar(pos, two_part["total_bits"], yerr=err, fmt="none", color="k", capsize=3)
    axes[2].axhline(8 * sizes["train_bytes"].iloc[-1], color="tab:gray", lw=1, label="uniform code")
    axes[2].set_xticks(pos, [f"{b} bits" + ("" if q else "\n(float32)") for b, q in
                             zip(two_part["bits_per_param"], two_part["quantized"])])
    axes[2].set(ylabel="bits", title="Two-part code of the whole text by weight precision")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"Byte-level GPT-2, {n_params:,} parameters; blocks double from {first_block} bytes; mean of "
                 f"{n_seeds} seeds, bands and bars: 95% intervals")
    fig.tight_layout()
    return fig


def plot_gap(doc_bits: pd.DataFrame, gap: dict):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    docs = doc_bits.groupby(["split", "document"], as_index=False)[["bits", "bytes"]].mean()
    docs["bits_per_byte"] = docs["bits"] / docs["bytes"]
    sns.stripplot(data=docs, x="split", y="bits_per_byte", size=4, ax=axes[0], hue="split", legend=False,
                  order=["train", "heldout"])
    for i, split in enumerate(["train", "heldout"]):
        g = docs[docs["split"] == split]
        axes[0].hlines(g["bits"].sum() / g["bytes"].sum(), i - 0.3, i + 0.3, color="k")
    axes[0].set(ylabel="bits per byte (each document coded alone)", xlabel="",
                title="Final model: every document, mean over seeds (black: byte-weighted mean)")
    axes[1].plot(np.zeros(len(gap["per_seed"])), gap["per_seed"], "o", color="tab:blue", alpha=0.6, label="one seed")
    axes[1].errorbar([0.3], [gap["gap_bits_per_byte"]], yerr=[[gap["gap_bits_per_byte"] - gap["low"]],
                                                             [gap["high"] - gap["gap_bits_per_byte"]]],
                     fmt="s", color="k", capsize=4, label="mean, 95% bootstrap interval")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set(xlim=(-0.5, 0.8), xticks=[], ylabel="held-out − fitted (bits per byte)", title="Generalisation gap")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_memorized(table: pd.DataFrame, n_seeds: int):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    labels = [f"{w}\n({'x%d' % c if c else 'held out'})" for w, c in zip(table["work"], table["copies"])]
    colors = ["tab:red" if c > 1 else ("tab:blue" if c == 1 else "tab:gray") for c in table["copies"]]
    pos = np.arange(len(table))
    for ax, col in zip(axes, ("memorized_bits", "memorized_bits_per_byte")):
        err = np.vstack([table[col] - table[f"{col}_low"], table[f"{col}_high"] - table[col]])
        ax.bar(pos, table[col], color=colors)
        ax.errorbar(pos, table[col], yerr=err, fmt="none", color="k", capsize=3)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(pos, labels, rotation=60, fontsize=7)
    axes[0].set(ylabel="memorised bits", title="bits(x | x swapped out) − bits(x | with x)")
    axes[1].set(ylabel="bits per byte", title="per byte")
    fig.suptitle(f"Red: duplicated work; blue: works seen once; grey: held-out controls. Mean of {n_seeds} seeds; "
                 "error bars: 95% intervals over seeds", fontsize=9)
    fig.tight_layout()
    return fig
