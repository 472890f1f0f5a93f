"""Notebook 01, LM compression: a language model with arithmetic coding against classical compressors.

The main model is trained on the training documents and codes held-out text and a training sample of
the same size, in independent chunks and unchunked, beside gzip, bz2, LZMA, zstd, brotli and PPMd on
the same bytes; a sweep over model and data sizes gives the adjusted rate (code + weights) of
Deletang et al. Each function is one step of the notebook; `summarize` and `summarize_sweep` give
metrics.json, `verdicts` and `sweep_verdicts` the sentences the notebook prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from copystudy.compression import baselines, rates
from copystudy.common import intervals, parallel
from copystudy import models
from copystudy.common.data import join_documents, split_documents, text_corpus
from copystudy.common.report import run_path


@dataclass
class Texts:
    train_docs: dict
    train_text: bytes
    heldout_text: bytes  # what is coded: held-out documents, capped at eval_bytes
    train_sample: bytes  # a contiguous training sample of the same size
    heldout_docs: dict = field(default_factory=dict)

    def describe(self, n_docs: int, n_heldout_docs: int) -> str:
        return (f"{n_docs} documents: {len(self.train_docs)} for training ({len(self.train_text):,} bytes), "
                f"{n_heldout_docs} held out; {len(self.heldout_text):,} held-out bytes are coded, "
                f"and a training sample of {len(self.train_sample):,} bytes")


def texts(text_files, heldout_fraction: float, eval_bytes: int | None, seed: int = 0) -> tuple[Texts, str]:
    """Documents split (whole) into training and held-out text; and a one-line description."""
    docs = text_corpus(text_files)
    train_docs, heldout_docs = split_documents(docs, heldout_fraction=heldout_fraction, seed=seed)
    train_text = join_documents(train_docs)
    heldout_text = join_documents(heldout_docs)[:eval_bytes]
    out = Texts(train_docs, train_text, heldout_text, train_text[:len(heldout_text)], heldout_docs)
    return out, out.describe(len(docs), len(heldout_docs))


@dataclass
class Trained:
    """The main LM of one seed, its loss curve, training time, and its bits on every document."""

    seed: int
    lm: object
    losses: list
    seconds: float
    doc_bits: pd.DataFrame


def start_main_models(model: dict, texts: Texts, steps: int, batch_size: int, lr: float, seeds):
    """The main LM once per seed (initialisation and training windows), each a task trained (or
    fine-tuned) for `steps` steps, handed to the cluster; `finish_main_models` collects them."""
    seeds = list(seeds)[:1] if (models.is_pretrained(model) and not steps) else list(seeds)
    task = partial(_main_model, model, texts, steps, batch_size, lr)
    return parallel.submit_tasks(task, seeds, desc="main LM, one per seed")


def finish_main_models(pending, model: dict, steps: int) -> list[Trained]:
    """The trained main LMs; the first seed's model is saved to models/lm/ (a pretrained model used as
    it is saves only where it comes from, and is one model whatever the seeds)."""
    trained = pending.result()
    first = trained[0].lm
    if models.is_pretrained(model) and not steps:
        first.save_reference(run_path("models", "lm"))
    else:
        first.save(run_path("models", "lm"))
    return trained


def _main_model(model: dict, texts: Texts, steps: int, batch_size: int, lr: float, seed: int) -> Trained:
    """One seed's main LM (a task), with its code length of every training and held-out document."""
    lm = models.build(model, seed=seed)
    start = time.time()
    losses = lm.fit(texts.train_text, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                    desc=f"train main LM, seed {seed}") if steps else []
    seconds = time.time() - start
    rows = [{"seed": seed, "split": split, "document": name, "bytes": len(text),
             "bits": float(lm.batched_bits(text).sum()) if lm.byte_level else lm.total_bits(text)}
            for split, docs in (("train", texts.train_docs), ("heldout", texts.heldout_docs))
            for name, text in docs.items()]
    return Trained(seed, lm, losses, seconds, pd.DataFrame(rows))


def describe_model(trained: list[Trained], steps: int) -> str:
    lm = trained[0].lm
    tokens = f"tokenizer with {lm.vocab_size:,} tokens" if not lm.byte_level else "bytes as tokens"
    seconds = np.mean([t.seconds for t in trained])
    done = (f"trained {steps} steps ({seconds:.0f} s each) with {len(trained)} seed(s)" if steps
            else "not trained here")
    return (f"{lm.name}: {lm.n_params:,} parameters = {rates.model_bytes(lm.n_params):,} bytes in float16; "
            f"{tokens}, context {lm.context}; {done}; seed {trained[0].seed}'s model saved to models/lm/")


def code(trained: list[Trained], texts: Texts, chunk_size: int, verify: bool, adaptive: dict):
    """Every seed's LM on the held-out text and the training sample, chunked and unchunked, plus the
    adaptive coder on the held-out text (byte-level models), each a task; and the classical
    compressors once (they have no seed).

    Returns (rates: one row per compressor, seed, text and chunking; details of the LM's coding)."""
    data = {"heldout": texts.heldout_text, "train": texts.train_sample}
    jobs = [(t.seed, text, c) for t in trained for text in data for c in (chunk_size, None)]
    if trained[0].lm.byte_level and adaptive.get("block"):
        jobs += [(t.seed, "heldout", ADAPTIVE) for t in trained]
    lms = {t.seed: t.lm for t in trained}
    task = partial(_code_task, lms, data, verify, adaptive)

    def cost(job):  # an unchunked or adaptive stream is one slow stream
        return len(data[job[1]]) * (1 if isinstance(job[2], int) else 20)

    done = parallel.map_tasks(task, jobs, desc="LM coding, every seed", cost=cost)
    details = pd.DataFrame(done)
    details["coded_bits_per_byte"] = details["coded_bits"] / details["original_bytes"]
    details["ideal_bits_per_byte"] = details["ideal_bits"] / details["original_bytes"]
    if verify and not details["roundtrip_exact"].all():
        raise AssertionError("the LM round trip did not reproduce the input")
    lm = trained[0].lm
    rows = [{"compressor": "lm", "label": f"{lm.name} ({lm.n_params:,} params)", "seed": d.seed, "text": d.text,
             "chunking": d.chunking, "original_bytes": d.original_bytes, "compressed_bytes": d.coded_bytes,
             "raw_rate": rates.raw_rate(d.coded_bytes, d.original_bytes),
             "adjusted_rate": rates.adjusted_rate(d.coded_bytes, d.original_bytes, lm.n_params),
             "roundtrip_exact": d.roundtrip_exact} for d in details.itertuples()]
    classical = rates.baseline_rates(data, (chunk_size, None), verify, utf8=not lm.byte_level)
    rates = pd.concat([pd.DataFrame(rows), classical], ignore_index=True)
    rates["bits_per_byte"] = 8 * rates["raw_rate"]
    return rates, details


ADAPTIVE = "unchunked, adaptive"


def _code_task(lms: dict, data: dict, verify: bool, adaptive: dict, job) -> dict:
    """One coding job (a task): seed's LM on one text, in chunks, unchunked, or adaptive."""
    seed, text, chunking = job
    lm = lms[seed]
    if chunking == ADAPTIVE:
        info = rates.adaptive_code(lm, data[text], seed=seed, verify=verify, **adaptive)
    else:
        info = rates.lm_code(lm, data[text], chunking, verify=verify, show_progress=False)
        chunking = rates.chunking_label(chunking)
    return {"seed": seed, "text": text, "chunking": chunking, **info}


def rates_table(rates: pd.DataFrame) -> pd.DataFrame:
    """Raw rates in %, one row per compressor, one column per text and chunking (the LM: mean over seeds)."""
    wide = rates.pivot_table(index=["compressor", "label"], columns=["text", "chunking"], values="raw_rate",
                             sort=False, aggfunc="mean")
    wide.columns = [f"{t} {c}" for t, c in wide.columns]
    return (100 * wide).round(2).reset_index()


LM_KEYS = ("rate_chunked_lm", "rate_unchunked_lm", "train_rate_chunked_lm", "train_rate_unchunked_lm",
           "adjusted_rate_chunked_lm", "adjusted_rate_unchunked_lm", "train_adjusted_rate_chunked_lm",
           "model_bits_per_byte_heldout", "model_bits_per_byte_train", "coded_bits_overhead_pct",
           "coded_bits_overhead_pct_unchunked", "lm_vs_gzip_chunked_ratio", "lm_vs_lzma_chunked_ratio",
           "lm_vs_best_classical_chunked_ratio", "rate_unchunked_lm_adaptive",
           "lm_adaptive_vs_best_classical_unchunked_ratio")


def summarize(trained: list[Trained], texts: Texts, rates: pd.DataFrame, details: pd.DataFrame, chunk_size: int,
              verify: bool, n_boot: int = 2000) -> dict:
    """The numbers of metrics.json for the coding comparison: the LM's as the mean over seeds with a
    95% interval (`<key>_ci`), the classical compressors' exactly (they have no seed)."""
    chunked, unchunked = rates.chunking_label(chunk_size), rates.chunking_label(None)
    lm = trained[0].lm

    def rate(name, text="heldout", chunking=chunked, col="raw_rate", seed=None):
        row = rates[(rates.compressor == name) & (rates.text == text) & (rates.chunking == chunking)]
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
    out = {"roundtrip_exact": bool(details["roundtrip_exact"].all()) if verify else None,
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
    out.update(document_gap(trained, n_boot=n_boot))
    return out


def document_gap(trained: list[Trained], n_boot: int = 2000, seed: int = 0) -> dict:
    """Held-out minus training code length in bits per byte, per document: the LM's extra advantage on
    the documents it was trained on (`description_length.bootstrap_gap`: byte-weighted rates, an
    interval that resamples the documents of each split and the seeds)."""
    from copystudy.compression import code_lengths as dl

    gap = dl.bootstrap_gap(pd.concat([t.doc_bits for t in trained], ignore_index=True), n_boot=n_boot, seed=seed)
    return {"lm_heldout_minus_train_bits_per_byte": gap["gap_bits_per_byte"],
            "lm_heldout_minus_train_bits_per_byte_ci": [gap["low"], gap["high"]], "gap_documents": gap["n_documents"]}


def _pct(m, key):
    lo, hi = m[f"{key}_ci"]
    return f"{100 * m[key]:.2f} % [{100 * lo:.2f}, {100 * hi:.2f}]"


def verdicts(m: dict, chunk_size: int) -> list[str]:
    """What the coding comparison shows, with 95% intervals over seeds (classical rates are exact)."""
    chunked = rates.chunking_label(chunk_size)
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


def start_sweep(train_docs: dict, heldout_text: bytes, model_sizes: dict, data_sizes: list[int], steps: int,
                batch_size: int, lr: float, epochs: float, stdlib_bytes: int, seeds, seed: int = 0):
    """The sweep's text and its models handed to the cluster in the background (they fill workers the
    main models and their coding leave idle); finish_sweep collects them. Without a cluster they
    train at finish_sweep."""
    text = rates.sweep_corpus(train_docs, stdlib_bytes, seed=seed)
    return text, rates.submit_sweep(text, heldout_text, model_sizes, data_sizes, steps=steps,
                                          batch_size=batch_size, lr=lr, seeds=list(seeds), epochs=epochs,
                                          background=True)


def finish_sweep(pending) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = pd.DataFrame(pending.result())
    table["data"] = table["data_bytes"].map(lambda d: f"{d / 1000:.0f} KB")
    return table, rates.best_model_per_data_size(table)


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
            "sweep_n_seeds": int(means["n_seeds"].min()),
            "sweep_best_model_params_by_data_bytes": best_params,
            "sweep_tied_models_by_data_bytes": {int(r.data_bytes): r.tied_models.split(",") for r in best.itertuples()},
            "sweep_u_shape_by_data_bytes": u_point, "sweep_u_shape_separated_by_data_bytes": u_sep,
            "sweep_best_grows_with_data": bool(grows),
            "sweep_best_grows_beyond_seed_noise": bool(last.tied_min_params > first.tied_max_params)}


def sweep_verdicts(m: dict, table: pd.DataFrame) -> list[str]:
    out, smallest = [], table["n_params"].min()
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


# ---- figures ----------------------------------------------------------------------------------------
def plot_training_loss(trained: list[Trained], train_text: bytes):
    """Training loss in bits per byte, a moving mean per seed (None when nothing was trained)."""
    import matplotlib.pyplot as plt

    if not trained[0].losses:
        return None
    lm = trained[0].lm
    tokens_per_byte = len(lm.tokens(train_text)) / len(train_text)  # 1 for a byte-level model
    fig, ax = plt.subplots(figsize=(7, 4))
    for t in trained:
        loss_bits = np.array(t.losses) / np.log(2) * tokens_per_byte
        window = max(1, len(loss_bits) // 30)
        ax.plot(np.arange(window - 1, len(loss_bits)), np.convolve(loss_bits, np.ones(window) / window, "valid"),
                lw=1.5, label=f"seed {t.seed} (moving mean, {window} steps)")
    ax.axhline(8, color="grey", ls=":", label="uniform code (8 bits/byte)")
    ax.set(xlabel="training step", ylabel="training loss (bits per byte)", ylim=(0, None),
           title=f"Training {lm.name} ({lm.n_params:,} parameters), {len(trained)} seeds")
    ax.legend()
    return fig


def plot_rates(rates: pd.DataFrame, lm, chunk_size: int, corpus: str):
    """Raw rates as bars, chunked and unchunked; the LM's bar is the mean over seeds with its 95% interval."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    chunked, unchunked = rates.chunking_label(chunk_size), rates.chunking_label(None)
    data = rates.copy()
    adaptive = data["chunking"] == ADAPTIVE
    data.loc[adaptive, "compressor"], data.loc[adaptive, "chunking"] = "lm_adaptive", unchunked
    names = {"lm": "LM", "lm_adaptive": "LM\nadaptive"}
    data = data.assign(rate_pct=100 * data["raw_rate"], compressor=data["compressor"].replace(names),
                       text=data["text"].replace({"heldout": "held-out text (never trained on)",
                                                  "train": "training sample"}))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True, width_ratios=[7, 7 + adaptive.any()])
    for ax, chunking in zip(axes, (chunked, unchunked)):
        panel = data[data["chunking"] == chunking]
        order = [n for n in (names["lm"], names["lm_adaptive"], *baselines.COMPRESSORS) if n in set(panel.compressor)]
        sns.barplot(data=panel, x="compressor", y="rate_pct", hue="text", order=order, palette="deep", capsize=0.15,
                    errorbar=lambda x: intervals.mean_ci(x)[1:], ax=ax, legend=ax is axes[-1])
        ax.set(title=chunking, xlabel="", ylabel="raw compression rate (%)")
        ax.grid(axis="x", visible=False)
    axes[-1].legend(title="coded text", loc="upper right")
    fig.suptitle(f"Compressed size / original size on {corpus} (LM: {lm.n_params:,} params, weights not counted;"
                 f" LM bars: mean and 95% interval over seeds)")
    fig.tight_layout()
    return fig


def plot_sweep(table: pd.DataFrame, best: pd.DataFrame):
    """The adjusted rate against model size per data size (best marked), and the raw rates."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    adjusted, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=table, x="n_params", y="adjusted_rate", hue="data", marker="o", ax=ax, palette="viridis",
                 errorbar=("ci", 95), err_style="bars")
    ax.scatter(best["n_params"], best["adjusted_rate"], s=160, facecolors="none", edgecolors="red", zorder=5,
               label="best size per data size")
    ax.set(xscale="log", yscale="log", xlabel="model parameters", ylabel="adjusted rate\n(code + 2 bytes/param) / data",
           title=f"Two-part code of the training data vs model size\n(mean and 95% interval over "
                 f"{table['seed'].nunique()} seeds; the bars are narrower than the markers where unseen)")
    ax.axhline(1, color="grey", ls=":", lw=1)
    ax.legend(title="training data")
    raw, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=table, x="n_params", y="train_rate", hue="data", marker="o", ax=ax, palette="viridis",
                 errorbar=("ci", 95))
    sns.lineplot(data=table, x="n_params", y="heldout_rate", hue="data", marker="s", ls="--", ax=ax,
                 palette="viridis", legend=False, errorbar=("ci", 95))
    ax.set(xscale="log", xlabel="model parameters", ylabel="raw rate (compressed / original)",
           title="Raw rate vs model size (mean and 95% interval over seeds)")
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="k", marker="o"), Line2D([], [], color="k", marker="s", ls="--")]
    labels += ["its own training data", "held-out text"]
    ax.legend(handles, labels, title="training data (colour); coded text (line)")
    return adjusted, raw
