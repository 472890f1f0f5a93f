"""Notebook 02: memorised bits per work with a noise floor: works at 1, 2, 4 and 8 copies, each in half
of the models and swapped for stand-ins from different unseen documents in the other half; a null from
controls no model saw; the dose-response over copies. The quantities are in
`copystudy.memorization.memorized_bits`; metrics and verdicts of this section are here."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pandas as pd

from copystudy.common import parallel
from copystudy.memorization import memorized_bits as mb


def trainer(model: dict, batch_size: int, lr: float, steps: int):
    """train(data, seed) for every memorisation model: exactly `steps` steps, no early stopping."""
    return partial(mb.train_fixed_steps, dict(model), batch_size, lr, steps)


@dataclass
class Memorized:
    """The design, one row per (model, text) with its bits, the table per work, the null, the dose-response."""

    design: mb.Design
    scores: pd.DataFrame
    works: pd.DataFrame
    null: pd.DataFrame
    dose: pd.DataFrame
    slope: dict
    floor: float


def start(design: mb.Design, train):
    """The design's models handed to the cluster in the background (they fill workers the code lengths
    leave idle); `finish` collects and scores them."""
    texts = {**design.works, **design.controls}
    return parallel.submit_tasks(partial(mb.train_and_score, design, train, texts), list(range(design.n_models)),
                                 desc="memorisation models", background=True)


def finish(design: mb.Design, pending, seed: int = 0) -> Memorized:
    scores = pd.DataFrame([row for rows in pending.result() for row in rows])
    works, null = mb.work_table(design, scores), mb.null_table(design, scores)
    floor = mb.null_quantile(null, 0.95)
    works["above_null"] = works["memorized_bits_per_byte"] > floor
    return Memorized(design, scores, works, null, mb.dose_response(works, floor, seed=seed),
                     mb.dose_slope(works, seed=seed), floor)


def sizes_equal(scores: pd.DataFrame) -> bool:
    """Did every model train on exactly the same number of bytes for the same steps?"""
    return bool(scores["train_bytes"].nunique() == 1 and scores["train_steps"].nunique() == 1)


def metrics(memo: Memorized) -> dict:
    """The memorisation numbers of metrics.json."""
    d, w = memo.dose.set_index("copies"), memo.works
    null = memo.null["difference_bits_per_byte"]
    m = {"memorization_n_works": len(w), "memorization_n_models": memo.design.n_models,
         "memorization_n_controls": len(memo.design.controls), "memorization_sizes_equal": sizes_equal(memo.scores),
         "memorization_train_bytes": int(memo.scores["train_bytes"].iloc[0]),
         "memorization_steps": int(memo.scores["train_steps"].iloc[0]),
         "memorization_stand_ins_per_work": len(next(iter(memo.design.stand_ins.values()))),
         "memorization_stand_in_documents_distinct": all(
             len({lbl.rsplit("[", 1)[0] for lbl, _ in cuts}) == len(cuts) for cuts in memo.design.stand_ins.values()),
         "memorization_null_q95_bits_per_byte": memo.floor,
         "memorization_null_median_bits_per_byte": float(null.median()),
         "memorization_null_n": int(len(null)),
         "memorized_bits_per_byte_by_work": dict(zip(w["work"], w["memorized_bits_per_byte"].astype(float))),
         "memorized_bits_by_work": dict(zip(w["work"], w["memorized_bits"].astype(float))),
         "copies_by_work": dict(zip(w["work"], w["copies"].astype(int))),
         "memorized_above_null_by_work": dict(zip(w["work"], w["above_null"].astype(bool)))}
    for key in ("memorized_bits_per_byte", "share_above_null"):
        m[f"{key}_by_copies"] = {int(c): float(r[key]) for c, r in d.iterrows()}
        m[f"{key}_by_copies_ci"] = {int(c): [float(r[f"{key}_low"]), float(r[f"{key}_high"])] for c, r in d.iterrows()}
    m["memorized_bits_by_copies"] = {int(c): float(r["memorized_bits"]) for c, r in d.iterrows()}
    m["memorized_n_above_null_by_copies"] = {int(c): int(r["n_above_null"]) for c, r in d.iterrows()}
    m["memorized_bits_per_byte_per_doubling"] = memo.slope["slope"]
    m["memorized_bits_per_byte_per_doubling_ci"] = [memo.slope["low"], memo.slope["high"]]
    return m


def verdicts(m: dict) -> list[str]:
    """The memorisation sentences, from the metrics alone."""
    q = m["memorization_null_q95_bits_per_byte"]
    out = [f"- Memorised bits ({m['memorization_n_works']} works, {m['memorization_n_models']} models of "
           f"{m['memorization_train_bytes']:,} bytes and {m['memorization_steps']} steps each, equal sizes: "
           f"{m['memorization_sizes_equal']}; each work out of half the models, swapped for stand-ins from "
           f"{m['memorization_stand_ins_per_work']} different unseen documents: "
           f"{m['memorization_stand_in_documents_distinct']}). Null from {m['memorization_n_controls']} controls under "
           f"every work's pattern ({m['memorization_null_n']} differences): median "
           f"{m['memorization_null_median_bits_per_byte']:+.3f} bits/byte, 95th percentile {q:+.3f}."]
    for c, v in sorted(m["memorized_bits_per_byte_by_copies"].items()):
        lo, hi = m["memorized_bits_per_byte_by_copies_ci"][c]
        s, (slo, shi) = m["share_above_null_by_copies"][c], m["share_above_null_by_copies_ci"][c]
        where = ("above the null's 95th percentile" if lo > q else "below the null's 95th percentile" if hi < q
                 else "not separated from the null's 95th percentile")
        out.append(f"  x{c}: {v:+.3f} bits/byte [{lo:+.3f}, {hi:+.3f}] ({m['memorized_bits_by_copies'][c]:+,.0f} bits a "
                   f"work), {where}; {s:.0%} of its works memorised [{slo:.0%}, {shi:.0%}]")
    slope, (lo, hi) = m["memorized_bits_per_byte_per_doubling"], m["memorized_bits_per_byte_per_doubling_ci"]
    out.append(f"  Dose-response: {slope:+.3f} bits/byte per doubling of the copies [{lo:+.3f}, {hi:+.3f}]: "
               + ("memorisation rises with the copies beyond the spread of works." if lo > 0 else
                  "no rise with the copies is shown at this scale (the interval reaches zero)."))
    once = m["memorized_bits_per_byte_by_copies_ci"].get(1)
    if once is not None:
        out.append("  Works seen once are memorised beyond the noise floor." if once[0] > q else
                   "  Works seen once are NOT shown to be memorised beyond the noise floor.")
    return out
