"""Notebook 02, description length: how many bits of the training text do the weights hold?

Uniform, two-part and prequential code lengths of growing prefixes of the training text; the
generalisation gap (raw, per document with a bootstrap interval, and calibrated for difficulty on the
last block); memorised bits per work from with/without models (after Morris et al. 2025), with a
duplicated work and held-out controls. The quantities are in `copystudy.description_length`; this
module runs them in the notebook's order, and `summarize` and `verdicts` give metrics.json and the
sentences the notebook prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from copystudy import description_length as dl
from copystudy import models

CAPACITY_BITS_PER_PARAM_MORRIS = 3.6  # Morris et al. 2025, GPT-style models trained to saturation
CODE_LENGTH_COLUMNS = ["train_bytes", "train_steps", "final_loss_bits_per_byte", "uniform_bits", "two_part_bits",
                       "model_bits", "data_bits", "prequential_bits", "uniform_bits_per_byte", "two_part_bits_per_byte",
                       "data_bits_per_byte", "prequential_bits_per_byte", "two_part_bits_fp32", "next_block_bytes",
                       "next_block_bits", "gap_bytes", "gap_bits", "gap_bits_per_byte"]


def causal_lm_trainer(spec: dict, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                      steps: int | None = None, epochs: float = 3.0, min_steps: int = 50,
                      max_steps: int = 1000) -> Callable[[bytes], object]:
    """train(data, seed=seed) -> a CausalLM (from the model spec) trained from scratch on `data` with one fixed recipe.

    Every model (of one seed) starts from the same initialisation (`seed`) and draws its training windows from the
    same random stream; it is trained for `steps` steps, or when steps is None for
    training_steps(len(data), epochs, ...) steps. The step count and final loss are kept on the model
    as `.train_steps` and `.final_loss_bits` (bits per byte, mean of the last 10 steps).
    """
    def train(data: bytes, seed: int = seed):
        model = models.build(spec, seed=seed)
        n = steps if steps is not None else dl.training_steps(
            len(data), epochs, batch_size, model.context, min_steps, max_steps)
        losses = model.fit(data, steps=n, batch_size=batch_size, lr=lr, seed=seed, progress_bar=False)
        model.train_steps = n
        model.final_loss_bits = float(np.mean(losses[-10:]) / math.log(2)) if losses else float("nan")
        return model

    return train


def code_lengths(train_text: bytes, heldout_text: bytes, first_block: int, train, bits_per_param: int,
                 gap_chunk: int, seed: int = 0):
    """One model per doubling prefix: (boundaries, one row of code lengths per prefix, the models)."""
    boundaries = dl.block_schedule(len(train_text), first_block)
    if len(boundaries) < 3:
        raise ValueError(f"first_block ({first_block}) must be at most half the training text ({len(train_text)} bytes)")
    sizes, models = dl.code_lengths_by_size(train_text, boundaries, train, heldout=heldout_text,
                                            bits_per_param=bits_per_param, gap_chunk=gap_chunk, seed=seed)
    return boundaries, sizes[CODE_LENGTH_COLUMNS], models


@dataclass
class Gap:
    raw: dict  # held-out sample minus training sample, under the final model
    docs: dict  # per document, with a bootstrap interval over documents
    doc_bits: pd.DataFrame
    before: dict  # held-out minus the last block, under the model that never saw it ...
    after: dict  # ... and under the final model, which did
    calibrated_bits_per_byte: float

    @property
    def calibrated_bits(self) -> float:
        return self.calibrated_bits_per_byte * self.after["n_bytes"]


def generalization_gap(models: dict, boundaries: list[int], train_text: bytes, heldout_text: bytes, train_docs: dict,
                       heldout_docs: dict, truncated: bool, gap_chunk: int, seed: int = 0) -> Gap:
    """The gap of the final model, raw and per document; and calibrated for difficulty: the last block
    against held-out text under the model before it (never saw it) and the final model (saw it)."""
    final = models[boundaries[-1]]
    raw = dl.generalization_gap(final, train_text, heldout_text, chunk=gap_chunk, seed=seed)
    used_train_docs = {k: v for k, v in train_docs.items() if v in train_text} if truncated else train_docs
    doc_bits = pd.concat([dl.document_bits(final, used_train_docs, "train"),
                          dl.document_bits(final, heldout_docs, "heldout")], ignore_index=True)
    last_block = train_text[boundaries[-2]:]
    after = dl.generalization_gap(final, last_block, heldout_text, chunk=gap_chunk, seed=seed)
    before = dl.generalization_gap(models[boundaries[-2]], last_block, heldout_text, chunk=gap_chunk, seed=seed)
    return Gap(raw, dl.bootstrap_gap(doc_bits, seed=seed), doc_bits, before, after,
               after["gap_bits_per_byte"] - before["gap_bits_per_byte"])


def memorization_design(train_docs: dict, heldout_docs: dict, n_works: int, work_bytes, duplicate_copies: int,
                        train_bytes: int, n_controls: int, seed: int = 0):
    """The works measured (the first duplicated), the with-model training set, and held-out controls."""
    works = dl.choose_works(train_docs, n_works, work_bytes[0], work_bytes[1], seed=seed)
    corpus = dl.memorization_corpus(train_docs, works, works[0], duplicate_copies, max_bytes=train_bytes, seed=seed)
    longest = sorted(heldout_docs, key=lambda k: -len(heldout_docs[k]))
    controls = {k: heldout_docs[k][:work_bytes[1]] for k in longest[:n_controls]}
    return works, corpus, controls


def bits_per_parameter(sizes: pd.DataFrame, memorized: pd.DataFrame, gap: Gap, duplicated: str, n_params: int,
                       train_bytes: int, bits_per_param: int) -> pd.DataFrame:
    """Every estimate of what the weights hold, in bits and bits per parameter."""
    final = sizes.iloc[-1]
    works = memorized[memorized["kind"] == "training work"].set_index("work")
    preq_model_bits = float(final["prequential_bits"] - final["data_bits"])
    rows = [("memorised bits, duplicated work", float(works.loc[duplicated, "memorized_bits"])),
            ("memorised bits, duplicated work, adjusted", float(works.loc[duplicated, "memorized_bits_adjusted"])),
            ("memorised bits, all measured works", float(works["memorized_bits"].sum())),
            ("memorised bits, all measured works, adjusted", float(works["memorized_bits_adjusted"].sum())),
            ("generalisation gap x training bytes", gap.raw["gap_bits_per_byte"] * train_bytes),
            ("calibrated gap x training bytes", gap.calibrated_bits_per_byte * train_bytes),
            ("prequential − L(data | final weights)", preq_model_bits)]
    table = pd.DataFrame([(q, bits, bits / n_params) for q, bits in rows],
                         columns=["quantity", "bits", "bits_per_parameter"])
    extra = pd.DataFrame([(f"weights as sent in the two-part code ({bits_per_param}-bit)", float(final["model_bits"]),
                           float(bits_per_param)),
                          ("capacity, Morris et al. 2025", CAPACITY_BITS_PER_PARAM_MORRIS * n_params,
                           CAPACITY_BITS_PER_PARAM_MORRIS)], columns=table.columns)
    return pd.concat([table, extra], ignore_index=True)


def summarize(sizes: pd.DataFrame, boundaries: list[int], gap: Gap, memorized: pd.DataFrame, duplicated: str,
              duplicate_copies: int, n_params: int, train_bytes: int, heldout_bytes: int) -> dict:
    """The numbers of metrics.json."""
    final = sizes.iloc[-1]
    works = memorized[memorized["kind"] == "training work"].set_index("work")
    controls = memorized[memorized["kind"] == "held-out control"]
    ctrl = controls["memorized_bits_per_byte"]
    once = works[works["copies"] == 1]
    preq_model_bits = float(final["prequential_bits"] - final["data_bits"])
    per_param_works = float(works["memorized_bits_adjusted"].sum()) / n_params
    m = {"n_params": n_params, "train_bytes": train_bytes, "heldout_bytes": heldout_bytes,
         "block_boundaries": boundaries,
         "block_bits": [dl.uniform_bits(boundaries[1])] + list(sizes["next_block_bits"].dropna()),
         "two_part_model_bits": float(final["model_bits"]), "two_part_data_bits": float(final["data_bits"]),
         "prequential_model_bits": preq_model_bits, "prequential_model_bits_per_param": preq_model_bits / n_params,
         "generalization_gap_bits": gap.raw["gap_bits"], "generalization_gap_bits_per_byte": gap.raw["gap_bits_per_byte"],
         "generalization_gap_bytes": gap.raw["n_bytes"],
         "generalization_gap_docs_bits_per_byte": gap.docs["gap_bits_per_byte"],
         "generalization_gap_docs_interval_bits_per_byte": [gap.docs["low"], gap.docs["high"]],
         "generalization_gap_calibrated_bits": gap.calibrated_bits,
         "generalization_gap_calibrated_bits_per_byte": gap.calibrated_bits_per_byte,
         "generalization_gap_calibrated_extrapolated_bits_per_param": gap.calibrated_bits_per_byte * train_bytes / n_params,
         "generalization_gap_extrapolated_bits_per_param": gap.raw["gap_bits_per_byte"] * train_bytes / n_params,
         "memorized_bits_by_work": works["memorized_bits"].to_dict(),
         "memorized_bits_per_byte_by_work": works["memorized_bits_per_byte"].to_dict(),
         "memorized_bits_adjusted_by_work": works["memorized_bits_adjusted"].to_dict(),
         "memorized_bits_control_by_work": controls.set_index("work")["memorized_bits"].to_dict(),
         "memorization_control_shift_bits_per_byte": float(ctrl.mean()) if len(ctrl) else 0.0,
         "memorization_noise_bits_per_byte": float(ctrl.std()) if len(ctrl) > 1 else
         (float(ctrl.abs().mean()) if len(ctrl) else float("nan")),
         "duplicated_work": duplicated, "duplicate_copies": duplicate_copies,
         "memorized_bits_duplicated_work": float(works.loc[duplicated, "memorized_bits"]),
         "memorized_bits_adjusted_duplicated_work": float(works.loc[duplicated, "memorized_bits_adjusted"]),
         "memorized_bits_per_byte_duplicated_work": float(works.loc[duplicated, "memorized_bits_per_byte"]),
         "memorized_bits_adjusted_per_byte_duplicated_work": float(works.loc[duplicated, "memorized_bits_adjusted_per_byte"]),
         "memorized_bits_adjusted_per_byte_single_copy_mean":
             float(once["memorized_bits_adjusted_per_byte"].mean()) if len(once) else float("nan"),
         "memorized_bits_per_param_works": float(works["memorized_bits"].sum()) / n_params,
         "memorized_bits_adjusted_per_param_works": per_param_works,
         "capacity_bits_per_param_morris": CAPACITY_BITS_PER_PARAM_MORRIS}
    for name in ("uniform_bits", "two_part_bits", "two_part_bits_fp32", "prequential_bits", "uniform_bits_per_byte",
                 "two_part_bits_per_byte", "data_bits_per_byte", "prequential_bits_per_byte"):
        m[name] = float(final[name])
    return m


def verdicts(m: dict, bits_per_param: int) -> list[str]:
    """What the code lengths say against what the papers report, one sentence each."""
    out = [f"Training text: {m['train_bytes']:,} bytes = {m['uniform_bits']:,.0f} bits uncoded.",
           f"- prequential code: {m['prequential_bits']:,.0f} bits ({m['prequential_bits_per_byte']:.2f} bits/byte); "
           f"two-part code: {m['two_part_bits']:,.0f} bits ({m['two_part_bits_per_byte']:.2f} bits/byte), of which "
           f"{m['two_part_model_bits']:,.0f} are the {bits_per_param}-bit weights.",
           "  As Blier & Ollivier found for deep nets, the prequential code is the shortest: the learner compresses "
           "the text, and counting the weights at face value hides this."
           if m["prequential_bits"] < min(m["two_part_bits"], m["uniform_bits"]) else
           "  The prequential code is NOT the shortest here, unlike Blier & Ollivier's finding.",
           "  The two-part code is longer than sending the text raw: at this size the weights cost more bits than "
           "they save, so the nominal size of the weights says little about how much of the text they hold."
           if m["two_part_bits"] > m["uniform_bits"] else
           f"  The two-part code beats the uniform code by {m['uniform_bits'] - m['two_part_bits']:,.0f} bits.",
           f"- The prequential model cost (prequential - data bits under the final weights) is "
           f"{m['prequential_model_bits']:,.0f} bits = {m['prequential_model_bits_per_param']:.2f} bits/parameter, "
           f"against {bits_per_param} bits/parameter nominal: everything the learner took in, general and specific."]
    lo, hi = m["generalization_gap_docs_interval_bits_per_byte"]
    calibrated = m["generalization_gap_calibrated_bits_per_byte"]
    out.append(f"- Generalisation gap: {m['generalization_gap_bits']:,.0f} bits over {m['generalization_gap_bytes']:,} "
               f"bytes ({m['generalization_gap_bits_per_byte']:.3f} bits/byte); per document "
               f"{m['generalization_gap_docs_bits_per_byte']:.3f} bits/byte, bootstrap interval [{lo:.3f}, {hi:.3f}]; "
               f"calibrated for difficulty {calibrated:.3f} bits/byte.")
    if lo > 0:
        out.append("  The training text is reliably cheaper than unseen text: the weights hold work-specific information.")
    elif m["generalization_gap_bits"] > 0:
        out.append("  The raw gap is positive but within the spread between documents: on its own it cannot be told "
                   "apart from which documents happened to be held out.")
    else:
        out.append("  The raw gap is not positive: the held-out documents happen to be easier to predict than the "
                   "training sample, which hides any saving on seen text.")
    out.append(f"  Calibrated for difficulty, seen text is {calibrated:.3f} bits/byte cheaper: that much of the last block "
               "is held specifically by the weights that trained on it." if calibrated > 0 else
               "  Even calibrated for difficulty there is no saving on seen text at this scale.")
    single, noise = m["memorized_bits_adjusted_per_byte_single_copy_mean"], m["memorization_noise_bits_per_byte"]
    dup_adjusted = m["memorized_bits_adjusted_per_byte_duplicated_work"]
    out += [f"- Memorised bits: the work duplicated x{m['duplicate_copies']} ({m['duplicated_work']!r}) holds "
            f"{m['memorized_bits_duplicated_work']:,.0f} bits ({m['memorized_bits_per_byte_duplicated_work']:.3f} "
            f"bits/byte; {dup_adjusted:.3f} adjusted for the controls' shift of "
            f"{m['memorization_control_shift_bits_per_byte']:.3f}); works seen once average {single:.3f} bits/byte "
            f"adjusted; the controls scatter by {noise:.3f} bits/byte.",
            "  Duplication raises memorisation well above training noise, as Carlini et al. (2022) and Morris et al. "
            "report." if dup_adjusted > max(single, 0) + 3 * noise else
            "  The duplicated work is NOT clearly more memorised than the works seen once at this scale (within 3x "
            "the controls' scatter).",
            "  Works seen once are also measurably memorised (above 3x the controls' scatter)." if single > 3 * noise
            else "  Works seen once are not memorised beyond the controls' scatter (3x) at this scale.",
            f"- Per parameter: {m['memorized_bits_adjusted_per_param_works']:.4f} bits/parameter for the measured works "
            f"(adjusted), {m['generalization_gap_calibrated_extrapolated_bits_per_param']:.3f} from the calibrated gap "
            f"extrapolated to all {m['train_bytes']:,} training bytes, versus the ~{m['capacity_bits_per_param_morris']} "
            "bits/parameter capacity of Morris et al.: "
            + ("far below capacity" if m["generalization_gap_calibrated_extrapolated_bits_per_param"] < 1
               else "a sizeable share of capacity")
            + " (a small model, a few epochs over structured text; capacity is measured by training to saturation on "
            "random data)."]
    return out


# ---- figures ----------------------------------------------------------------------------------------
def plot_code_lengths(sizes: pd.DataFrame, n_params: int, first_block: int, bits_per_param: int):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    x = sizes["train_bytes"]
    for key, label, ls, color in [("uniform", "uniform (8 bits/byte)", "-", "tab:gray"),
                                  ("two_part", f"two-part ({bits_per_param}-bit weights + data)", "-", "tab:red"),
                                  ("prequential", "prequential (online)", "-", "tab:blue"),
                                  ("data", "data given weights only (weights free)", ":", "tab:green")]:
        axes[0].plot(x, sizes[f"{key}_bits"], ls, marker="o", color=color, label=label)
        axes[1].plot(x, sizes[f"{key}_bits_per_byte"], ls, marker="o", color=color, label=label)
    axes[0].plot(x, sizes["two_part_bits_fp32"], "--", color="tab:red", alpha=0.5, label="two-part, 32-bit weights")
    axes[0].set(xscale="log", yscale="log", xlabel="training-set size (bytes)", ylabel="code length (bits)",
                title="Code length of the training text")
    axes[1].set(xscale="log", yscale="log", xlabel="training-set size (bytes)", ylabel="bits per byte",
                title="Code length per byte")
    axes[1].axhline(8, color="tab:gray", lw=0.8)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Byte-level GPT-2, {n_params:,} parameters; blocks double from {first_block} bytes")
    fig.tight_layout()
    return fig


def plot_gap(gap: Gap, sizes: pd.DataFrame, boundaries: list[int]):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    sns.stripplot(data=gap.doc_bits, x="split", y="bits_per_byte", size=4, ax=axes[0], hue="split", legend=False)
    for i, split in enumerate(["train", "heldout"]):
        g = gap.doc_bits[gap.doc_bits["split"] == split]
        axes[0].hlines(g["bits"].sum() / g["bytes"].sum(), i - 0.3, i + 0.3, color="k")
    axes[0].set(ylabel="bits per byte (each document coded alone)", xlabel="",
                title="Final model: every document (black line: byte-weighted mean)")
    axes[1].plot(sizes["train_bytes"], sizes["gap_bits_per_byte"], marker="o", label="held-out − training sample")
    axes[1].plot([boundaries[-2], boundaries[-1]], [gap.before["gap_bits_per_byte"], gap.after["gap_bits_per_byte"]],
                 "s--", color="tab:orange", label="held-out − last block (unseen, then seen)")
    axes[1].annotate(f"calibrated gap {gap.calibrated_bits_per_byte:+.3f}",
                     (boundaries[-1], gap.after["gap_bits_per_byte"]), textcoords="offset points", xytext=(-120, 12),
                     fontsize=8, color="tab:orange")
    axes[1].legend(fontsize=8)
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set(xscale="log", xlabel="training-set size (bytes)", ylabel="gap (bits per byte)",
                title="Generalisation gap of the model trained on each prefix")
    fig.tight_layout()
    return fig


def plot_memorized(memorized: pd.DataFrame, n_seeds: int):
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    labels = [f"{w}\n({'x%d' % c if c else 'held out'})" for w, c in zip(memorized["work"], memorized["copies"])]
    colors = ["tab:red" if c > 1 else ("tab:blue" if c == 1 else "tab:gray") for c in memorized["copies"]]
    pos = np.arange(len(memorized))
    axes[0].bar(pos, memorized["memorized_bits"], color=colors)
    if n_seeds > 1:
        axes[0].errorbar(pos, memorized["memorized_bits"], yerr=memorized["memorized_bits_sd"], fmt="none",
                         color="k", capsize=3)
    axes[1].bar(pos, memorized["memorized_bits_adjusted_per_byte"], color=colors)
    axes[0].set(ylabel="memorised bits", title="bits(x | without x) − bits(x | with x)")
    axes[1].set(ylabel="bits per byte", title="per byte, minus the controls' mean shift")
    for ax in axes:
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(pos, labels, rotation=60, fontsize=7)
    fig.suptitle(f"Red: duplicated work; blue: works seen once; grey: held-out controls. Mean of {n_seeds} seed(s); "
                 "error bars: standard deviation over seeds", fontsize=9)
    fig.tight_layout()
    return fig
