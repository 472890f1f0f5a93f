"""Notebook 01: metrics.json (`summarize`, the coding comparison and the sweep) and the sentences the
notebook prints (`verdicts`, from the metrics alone)."""

from __future__ import annotations

import pandas as pd

from copystudy.common import intervals
from copystudy.compression import baselines, rates
from copystudy.experiments.lm_compression import race
from copystudy.experiments.lm_compression.sweep import summarize_sweep, sweep_verdicts
from copystudy.experiments.lm_compression.steps import ADAPTIVE, Coding, Texts, Trained


# Delétang et al. 2023 on enwik9 (their Table 1 and text), raw rates unless said: the scale ours are read against
DELETANG_ENWIK9 = {"gzip, 2048-byte chunks": 0.481, "LZMA2, 2048-byte chunks": 0.500,
                   "a 200K-parameter transformer, 2048-byte chunks": 0.309, "Chinchilla 70B, 2048-byte chunks": 0.083,
                   "Chinchilla 70B adjusted (weights counted)": 140.08, "gzip, unchunked": 0.323,
                   "LZMA2, unchunked": 0.230}

LM_KEYS = ("rate_chunked_lm", "rate_unchunked_lm", "train_rate_chunked_lm", "train_rate_unchunked_lm",
           "adjusted_rate_chunked_lm", "adjusted_rate_unchunked_lm", "train_adjusted_rate_chunked_lm",
           "model_bits_per_byte_heldout", "model_bits_per_byte_train", "coded_bits_overhead_pct",
           "coded_bits_overhead_pct_unchunked", "lm_vs_gzip_chunked_ratio", "lm_vs_lzma_chunked_ratio",
           "lm_vs_best_classical_chunked_ratio", "rate_unchunked_lm_adaptive",
           "lm_adaptive_vs_best_classical_unchunked_ratio")


def summarize(trained: list[Trained], texts: Texts, coding: Coding, sweep: tuple[pd.DataFrame, pd.DataFrame] | None,
              choice: pd.DataFrame | None = None, n_boot: int = 2000) -> dict:
    """All of metrics.json: the coding comparison (`summarize_coding`), the adaptive learning rate chosen
    on the validation text (`choice`, from `steps.choose_adaptive_lr`) and, when there is one, the
    sweep (`sweep.summarize_sweep`, from `sweep.finish_sweep`'s (table, best)) with the main model's
    held-out rate beside the sweep models'."""
    out = summarize_coding(trained, texts, coding, n_boot)
    out["validation_bytes"] = len(texts.validation_text)
    if choice is not None:
        out.update(race.choice_metrics(choice))
    if sweep is not None:
        out.update(summarize_sweep(*sweep))
        out.update(race.sweep_beside_main(sweep[0], out))
    return out


def summarize_coding(trained: list[Trained], texts: Texts, coding: Coding, n_boot: int = 2000) -> dict:
    """The numbers of the coding comparison: the LM's as the mean over seeds with a 95% interval
    (`<key>_ci`), the classical compressors' exactly (they have no seed)."""
    table, details, chunk_size, verify = coding.rates, coding.details, coding.chunk_size, coding.verify
    chunked, unchunked = rates.chunking_label(chunk_size), rates.chunking_label(None)
    lm = trained[0].lm

    def rate(name, text="heldout", chunking=chunked, col="raw_rate", seed=None):
        row = table[(table.compressor == name) & (table.text == text) & (table.chunking == chunking)]
        if seed is not None:
            row = row[row.seed == seed]
        return float(row[col].iloc[0]) if len(row) else None

    classical = list(baselines.COMPRESSORS)
    best_chunked = min(classical, key=lambda n: rate(n))
    best_unchunked = min(classical, key=lambda n: rate(n, chunking=unchunked))
    per_seed = []
    for t in trained:
        def lm_row(text, chunking, s=t.seed):
            return details[(details.text == text) & (details.chunking == chunking) & (details.seed == s)].iloc[0]

        held_chunked, held_whole, train_whole = lm_row("heldout", chunked), lm_row("heldout", unchunked), lm_row(
            "train", unchunked)
        m = {"rate_chunked_lm": rate("lm", seed=t.seed), "rate_unchunked_lm": rate("lm", chunking=unchunked, seed=t.seed),
             "train_rate_chunked_lm": rate("lm", "train", seed=t.seed),
             "train_rate_unchunked_lm": rate("lm", "train", unchunked, seed=t.seed),
             "adjusted_rate_chunked_lm": rate("lm", col="adjusted_rate", seed=t.seed),
             "adjusted_rate_unchunked_lm": rate("lm", chunking=unchunked, col="adjusted_rate", seed=t.seed),
             "train_adjusted_rate_chunked_lm": rate("lm", "train", col="adjusted_rate", seed=t.seed),
             "model_bits_per_byte_heldout": held_whole["ideal_bits"] / held_whole["original_bytes"],
             "model_bits_per_byte_train": train_whole["ideal_bits"] / train_whole["original_bytes"],
             "coded_bits_overhead_pct": held_chunked["overhead_pct"],
             "coded_bits_overhead_pct_unchunked": held_whole["overhead_pct"]}
        m["lm_vs_gzip_chunked_ratio"] = m["rate_chunked_lm"] / rate("gzip")
        m["lm_vs_lzma_chunked_ratio"] = m["rate_chunked_lm"] / rate("lzma")
        m["lm_vs_best_classical_chunked_ratio"] = m["rate_chunked_lm"] / rate(best_chunked)
        adaptive = rate("lm", chunking=ADAPTIVE, seed=t.seed)
        if adaptive is not None:
            m["rate_unchunked_lm_adaptive"] = adaptive
            m["lm_adaptive_vs_best_classical_unchunked_ratio"] = adaptive / rate(best_unchunked, chunking=unchunked)
        m.update(race.seed_metrics(rate, t, chunked, unchunked))
        per_seed.append(m)
    keys = list(per_seed[0])
    out = {"chunk_size": chunk_size, "roundtrip_exact": bool(details["roundtrip_exact"].all()) if verify else None,
           "model": lm.name, "pretrained": lm.pretrained, "tokenizer": not lm.byte_level,
           "n_params": lm.n_params, "model_bytes_float16": rates.model_bytes(lm.n_params),
           "heldout_bytes": len(texts.heldout_text), "train_sample_bytes": len(texts.train_sample),
           "train_text_bytes": len(texts.train_text), "seeds": [t.seed for t in trained],
           **intervals.summarize_seeds(per_seed, keys)}
    for name in classical:
        out[f"rate_chunked_{name}"] = rate(name)
        out[f"rate_unchunked_{name}"] = rate(name, chunking=unchunked)
        out[f"train_rate_chunked_{name}"] = rate(name, "train")
        out[f"train_rate_unchunked_{name}"] = rate(name, "train", unchunked)
    out["best_classical_chunked"], out["best_classical_unchunked"] = best_chunked, best_unchunked
    # "beats" means the whole 95% interval over seeds lies below the best classical compressor's rate
    out["lm_beats_every_classical_chunked"] = bool(out["rate_chunked_lm_ci"][1] < rate(best_chunked))
    out["lm_beats_gzip_and_lzma_chunked"] = bool(out["rate_chunked_lm_ci"][1] < min(rate("gzip"), rate("lzma")))
    out["lm_beats_every_classical_unchunked"] = bool(out["rate_unchunked_lm_ci"][1] <
                                                     rate(best_unchunked, chunking=unchunked))
    if "rate_unchunked_lm_adaptive" in out:
        out["adaptive_roundtrip_exact"] = bool(details.loc[details.chunking == ADAPTIVE, "roundtrip_exact"].all()) \
            if verify else None
        out["lm_adaptive_beats_every_classical_unchunked"] = bool(
            out["rate_unchunked_lm_adaptive_ci"][1] < rate(best_unchunked, chunking=unchunked))
    names = ["lm", *classical]
    out["best_compressor_chunked"] = min(names, key=lambda n: out[f"rate_chunked_{n}"])
    out.update(race.exact_metrics(rate, chunked, unchunked, trained))
    out.update(document_gap(trained, n_boot=n_boot))
    return race.clip_rates(out)


def document_gap(trained: list[Trained], n_boot: int = 2000, seed: int = 0) -> dict:
    """The study's generalisation gap (`generalization.generalization_gap`): held-out minus fitted
    documents, bits per byte, each document coded alone, with an interval over documents and seeds;
    the same documents as description_length's."""
    from copystudy.compression.generalization import generalization_gap

    gap = generalization_gap(pd.concat([t.doc_bits for t in trained], ignore_index=True), n_boot=n_boot, seed=seed)
    return {"generalization_gap_bits_per_byte": gap["gap_bits_per_byte"],
            "generalization_gap_bits_per_byte_ci": [gap["low"], gap["high"]],
            "generalization_gap_documents": gap["n_documents"]}


def _pct(m, key):
    lo, hi = m[f"{key}_ci"]
    return f"{100 * m[key]:.2f} % [{100 * lo:.2f}, {100 * hi:.2f}]"


def verdicts(m: dict) -> list[str]:
    """What the run shows, from its metrics alone: the coding comparison and, when there is one, the sweep."""
    scale = "Delétang et al. on enwik9, for scale: " + ", ".join(f"{k} {100 * v:,.1f} %" for k, v in DELETANG_ENWIK9.items())
    return coding_verdicts(m) + (sweep_verdicts(m) if "sweep_adjusted_rate" in m else []) + [scale]


def coding_verdicts(m: dict) -> list[str]:
    """What the coding comparison shows, with 95% intervals over seeds (classical rates are exact)."""
    chunked = rates.chunking_label(m["chunk_size"])
    n = m["n_seeds"]
    best, best_u = m["best_classical_chunked"], m["best_classical_unchunked"]
    out = [f"held-out text, {chunked}: LM {_pct(m, 'rate_chunked_lm')} (mean [95% interval] over {n} seeds); "
           f"best classical {best} {100 * m[f'rate_chunked_{best}']:.2f} %, gzip {100 * m['rate_chunked_gzip']:.2f} %, "
           f"LZMA {100 * m['rate_chunked_lzma']:.2f} %, PPMd {100 * m['rate_chunked_ppmd']:.2f} %"]
    ratio = m["lm_vs_best_classical_chunked_ratio"]
    if m["lm_beats_every_classical_chunked"]:
        out.append(f"  the LM beats every classical compressor on the same chunks: its output is {100 * (1 - ratio):.1f} % "
                   f"smaller than {best}'s (ratio {ratio:.3f}, interval {m['lm_vs_best_classical_chunked_ratio_ci'][0]:.3f}"
                   f"-{m['lm_vs_best_classical_chunked_ratio_ci'][1]:.3f}); the whole interval lies below {best}")
    else:
        out.append(f"  the LM does NOT beat every classical compressor on the same chunks: ratio to {best} {ratio:.3f} "
                   f"(interval {m['lm_vs_best_classical_chunked_ratio_ci'][0]:.3f}-"
                   f"{m['lm_vs_best_classical_chunked_ratio_ci'][1]:.3f})")
    out.append(f"unchunked: static LM {_pct(m, 'rate_unchunked_lm')}, best classical {best_u} "
               f"{100 * m[f'rate_unchunked_{best_u}']:.2f} %: the static LM "
               + ("beats every classical compressor" if m["lm_beats_every_classical_unchunked"] else
                  "does NOT beat every classical compressor"))
    if "rate_unchunked_lm_adaptive" in m:
        r = m["lm_adaptive_vs_best_classical_unchunked_ratio"]
        out.append(f"unchunked, adaptive LM (keeps training on what it has coded): {_pct(m, 'rate_unchunked_lm_adaptive')}"
                   f", round trip {'exact' if m['adaptive_roundtrip_exact'] else 'NOT exact'}; "
                   + (f"beats every classical compressor, {100 * (1 - r):.1f} % below {best_u}"
                      if m["lm_adaptive_beats_every_classical_unchunked"] else
                      f"does NOT beat every classical compressor: {100 * (r - 1):+.1f} % against {best_u}"))
    lo, hi = m["generalization_gap_bits_per_byte_ci"]
    gap = m["generalization_gap_bits_per_byte"]
    out += [f"coded size vs ideal sum of -log2 p: +{m['coded_bits_overhead_pct']:.3f} % ({chunked}), "
            f"+{m['coded_bits_overhead_pct_unchunked']:.4f} % (unchunked)",
            f"adjusted rate (weights counted): {100 * m['adjusted_rate_chunked_lm']:.0f} % on the held-out text",
            f"generalisation gap (held-out minus fitted documents, each coded alone): {gap:+.3f} bits/byte, 95% "
            f"interval [{lo:+.3f}, {hi:+.3f}] (bootstrap over seeds and {m['generalization_gap_documents']['train']} "
            f"fitted / {m['generalization_gap_documents']['heldout']} held-out documents, the same documents as "
            "description_length's)",
            ("the LM codes the documents it was trained on better than the held-out ones, beyond the spread of "
             "seeds and documents" if lo > 0 else "the interval includes 0: no advantage on the training documents "
             "beyond the spread of seeds and documents" if hi >= 0 else "the held-out documents are reliably "
             "cheaper: they are easier text") + "; they are different documents, so part of any gap is their own "
            "difficulty (description_length measures memorised bits per work with the data held equal)"]
    return out + race.race_verdicts(m)
