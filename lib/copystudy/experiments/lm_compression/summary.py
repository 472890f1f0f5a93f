"""Notebook 01: metrics.json (`summarize`, the coding comparison and the sweep) and the sentences the
notebook prints (`verdicts`, from the metrics alone)."""

from __future__ import annotations

import pandas as pd

from copystudy.common import intervals
from copystudy.compression import baselines, rates
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
              n_boot: int = 2000) -> dict:
    """All of metrics.json: the coding comparison (`summarize_coding`) and, when there is one, the sweep
    (`summarize_sweep`, from `sweep.finish_sweep`'s (table, best))."""
    out = summarize_coding(trained, texts, coding, n_boot)
    if sweep is not None:
        out.update(summarize_sweep(*sweep))
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
        per_seed.append(m)
    keys = [k for k in LM_KEYS if k in per_seed[0]]
    out = {"chunk_size": chunk_size, "roundtrip_exact": bool(details["roundtrip_exact"].all()) if verify else None,
           "model": lm.name, "pretrained": bool(getattr(lm, "name_or_path", None)), "tokenizer": lm.tokenizer is not None,
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
    out.update(document_gap(trained, n_boot=n_boot))
    return out


def document_gap(trained: list[Trained], n_boot: int = 2000, seed: int = 0) -> dict:
    """Held-out minus training code length in bits per byte, per document: the LM's extra advantage on
    the documents it was trained on (`description_length.bootstrap_gap`: byte-weighted rates, an
    interval that resamples the documents of each split and the seeds)."""
    from copystudy.compression.generalization import bootstrap_gap

    gap = bootstrap_gap(pd.concat([t.doc_bits for t in trained], ignore_index=True), n_boot=n_boot, seed=seed)
    return {"lm_heldout_minus_train_bits_per_byte": gap["gap_bits_per_byte"],
            "lm_heldout_minus_train_bits_per_byte_ci": [gap["low"], gap["high"]], "gap_documents": gap["n_documents"]}


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
    lo, hi = m["lm_heldout_minus_train_bits_per_byte_ci"]
    gap = m["lm_heldout_minus_train_bits_per_byte"]
    out += [f"coded size vs ideal sum of -log2 p: +{m['coded_bits_overhead_pct']:.3f} % ({chunked}), "
            f"+{m['coded_bits_overhead_pct_unchunked']:.4f} % (unchunked)",
            f"adjusted rate (weights counted): {100 * m['adjusted_rate_chunked_lm']:.0f} % on the held-out text",
            f"held-out minus training documents, code length per byte: {gap:+.3f} bits/byte, 95% interval "
            f"[{lo:+.3f}, {hi:+.3f}] (bootstrap over seeds and {m['gap_documents']['train']} training / "
            f"{m['gap_documents']['heldout']} held-out documents)",
            ("the LM codes the documents it was trained on better than the held-out ones, beyond the spread of "
             "seeds and documents" if lo > 0 else "the interval includes 0: no advantage on the training documents "
             "beyond the spread of seeds and documents") + "; they are different documents, so part of any gap is "
            "their own difficulty (description_length's swap design separates the two)"]
    return out


def summarize_sweep(table: pd.DataFrame, best: pd.DataFrame) -> dict:
    """The sweep's claims, tested against the seed spread: a U at a data size needs an interior minimum
    whose interval lies below both ends'; the best size grows with the data when the sizes tied with
    the best at the largest D are all larger than those tied with it at the smallest D."""
    means = rates.sweep_means(table)
    u_point = {int(d): rates.is_u_shaped(g.sort_values("n_params")["adjusted_rate"].tolist())
               for d, g in means.groupby("data_bytes")}
    u_sep = {int(d): rates.u_shape_separated(g.sort_values("n_params").reset_index(drop=True))
             for d, g in means.groupby("data_bytes")}
    best_params = {int(r.data_bytes): int(r.n_params) for r in best.itertuples()}
    sizes = [best_params[d] for d in sorted(best_params)]
    grows = all(b >= a for a, b in zip(sizes, sizes[1:])) and sizes[-1] > sizes[0]
    first, last = best.sort_values("data_bytes").iloc[0], best.sort_values("data_bytes").iloc[-1]
    return {"sweep_adjusted_rate": {f"{int(r.data_bytes)}/{r.model}": r.adjusted_rate for r in means.itertuples()},
            "sweep_adjusted_rate_ci": {f"{int(r.data_bytes)}/{r.model}": [r.adjusted_low, r.adjusted_high]
                                       for r in means.itertuples()},
            "sweep_n_seeds": int(means["n_seeds"].min()), "sweep_smallest_model_params": int(means["n_params"].min()),
            "sweep_best_model_params_by_data_bytes": best_params,
            "sweep_tied_models_by_data_bytes": {int(r.data_bytes): r.tied_models.split(",") for r in best.itertuples()},
            "sweep_u_shape_by_data_bytes": u_point, "sweep_u_shape_separated_by_data_bytes": u_sep,
            "sweep_best_grows_with_data": bool(grows),
            "sweep_best_grows_beyond_seed_noise": bool(last.tied_min_params > first.tied_max_params)}


def sweep_verdicts(m: dict) -> list[str]:
    """Is there a U at each data size, and does the best size grow with the data (beyond seed noise)?"""
    out, smallest = [], m["sweep_smallest_model_params"]
    for d, params in sorted(m["sweep_best_model_params_by_data_bytes"].items()):
        if m["sweep_u_shape_separated_by_data_bytes"][d]:
            shape = "a U (an interior minimum, below both ends beyond seed noise)"
        elif m["sweep_u_shape_by_data_bytes"][d]:
            shape = "an interior minimum, but within seed noise of an end: no U established"
        else:
            shape = "no U: the smallest model is best" if params == smallest else "no U: the largest model is best"
        rate = m["sweep_adjusted_rate"]
        best = min((k for k in rate if k.startswith(f"{d}/")), key=rate.get)
        lo, hi = m["sweep_adjusted_rate_ci"][best]
        tied = m["sweep_tied_models_by_data_bytes"][d]
        out.append(f"D = {d:>9,} bytes: best model {params:>8,} params, adjusted rate {rate[best]:.3f} [{lo:.3f}, "
                   f"{hi:.3f}]; within its interval: {', '.join(tied)}; {shape}")
    if m["sweep_best_grows_beyond_seed_noise"]:
        out.append("the best model size grows with the data, beyond seed noise")
    elif m["sweep_best_grows_with_data"]:
        out.append("the best model size grows with the data on average, but not beyond seed noise")
    else:
        out.append("the best model size does NOT grow with the data at this scale")
    return out
