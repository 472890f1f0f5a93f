"""Notebook 01: a fair race. The classical compressors given the LM's side information (primed with, or
a dictionary trained on, the LM's training text), the LM's training length and adaptive learning rate
chosen on validation text, a text of another kind (Python source), and the sweep models' rates beside
the main model's. Metrics and verdicts; `summary` calls them."""

from __future__ import annotations

import pandas as pd

from copystudy.common import intervals
from copystudy.compression import baselines

PRIMED = [f"{c}_primed" for c in baselines.COMPRESSORS]


def seed_metrics(rate, trained, chunked: str, unchunked: str) -> dict:
    """One seed's numbers of the race: the LM against the best primed compressor (held-out text), on the
    out-of-domain text, and the training length its validation score chose. rate(name, text,
    chunking, seed=...) reads the rates table."""
    m = {}
    if rate("gzip_primed") is not None:
        best = min(PRIMED, key=lambda n: rate(n))
        best_u = min(PRIMED, key=lambda n: rate(n, chunking=unchunked))
        m["lm_vs_best_primed_chunked_ratio"] = rate("lm", seed=trained.seed) / rate(best)
        m["lm_vs_best_primed_unchunked_ratio"] = rate("lm", chunking=unchunked, seed=trained.seed) / rate(
            best_u, chunking=unchunked)
        adaptive = rate("lm", chunking="unchunked, adaptive", seed=trained.seed)
        if adaptive is not None:
            m["lm_adaptive_vs_best_primed_unchunked_ratio"] = adaptive / rate(best_u, chunking=unchunked)
    if rate("lm", "ood", seed=trained.seed) is not None:
        plain = list(baselines.COMPRESSORS)
        for label, chunking in (("chunked", chunked), ("unchunked", unchunked)):
            lm = rate("lm", "ood", chunking, seed=trained.seed)
            m[f"ood_rate_{label}_lm"] = lm
            m[f"ood_lm_vs_best_classical_{label}_ratio"] = lm / min(rate(n, "ood", chunking) for n in plain)
    if trained.best_step is not None:
        m["main_model_best_step"] = float(trained.best_step)
    if trained.validation_bits_per_byte is not None:
        m["main_model_validation_bits_per_byte"] = float(trained.validation_bits_per_byte)
    return m


def exact_metrics(rate, chunked: str, unchunked: str, trained) -> dict:
    """The numbers without seeds: primed and out-of-domain classical rates, the best primed compressor,
    and the share of seeds whose training stopped on its validation score (Wilson interval)."""
    out = {}
    if rate("gzip_primed") is not None:
        for name in PRIMED:
            out[f"rate_chunked_{name}"] = rate(name)
            out[f"rate_unchunked_{name}"] = rate(name, chunking=unchunked)
        out["best_primed_chunked"] = min(PRIMED, key=lambda n: rate(n))
        out["best_primed_unchunked"] = min(PRIMED, key=lambda n: rate(n, chunking=unchunked))
    if rate("gzip", "ood") is not None:
        for name in [*baselines.COMPRESSORS, *(PRIMED if rate("gzip_primed", "ood") is not None else [])]:
            out[f"ood_rate_chunked_{name}"] = rate(name, "ood")
            out[f"ood_rate_unchunked_{name}"] = rate(name, "ood", unchunked)
        out["ood_best_classical_chunked"] = min(baselines.COMPRESSORS, key=lambda n: rate(n, "ood"))
        out["ood_best_classical_unchunked"] = min(baselines.COMPRESSORS, key=lambda n: rate(n, "ood", unchunked))
    stopped = [t.stopped_early for t in trained if t.stopped_early is not None]
    if stopped:
        share, lo, hi = intervals.wilson(int(sum(stopped)), len(stopped))
        out["main_model_stopped_early_share"], out["main_model_stopped_early_share_ci"] = share, [lo, hi]
    return out


def choice_metrics(choice: pd.DataFrame) -> dict:
    """The adaptive learning rate chosen on the validation text, and every candidate's bits per byte."""
    chosen = choice[choice["chosen"]].iloc[0]
    return {"adaptive_lr_chosen": float(chosen["lr"]),
            "adaptive_lr_validation_bits_per_byte": {f"{lr:g}": float(b) for lr, b in
                                                     zip(choice["lr"], choice["bits_per_byte"])}}


def sweep_beside_main(table: pd.DataFrame, m: dict) -> dict:
    """The sweep models' held-out rate at the largest data size (mean and interval over seeds) and the
    epochs they trained, beside the main model's ideal held-out rate: how far from converged the
    sweep's models are."""
    largest = table[table["data_bytes"] == table["data_bytes"].max()]
    out = {"sweep_heldout_rate_at_largest_data": {}, "sweep_heldout_rate_at_largest_data_ci": {},
           "sweep_epochs_at_largest_data": {}, "sweep_largest_data_bytes": int(table["data_bytes"].max())}
    for name, g in largest.groupby("model", sort=False):
        mean, lo, hi = intervals.mean_ci(g["heldout_rate"])
        out["sweep_heldout_rate_at_largest_data"][name] = mean
        out["sweep_heldout_rate_at_largest_data_ci"][name] = [max(lo, 0.0), hi]
        out["sweep_epochs_at_largest_data"][name] = float(g["epochs"].mean())
    out["main_model_heldout_rate_ideal"] = m["model_bits_per_byte_heldout"] / 8
    out["main_model_heldout_rate_ideal_ci"] = [v / 8 for v in m["model_bits_per_byte_heldout_ci"]]
    return out


def clip_rates(m: dict) -> dict:
    """Rates and ratios cannot be negative: a t interval's lower end is clipped at 0."""
    for key, value in m.items():
        if key.endswith("_ci") and ("rate" in key or "ratio" in key) and isinstance(value, list) and len(value) == 2 \
                and all(isinstance(v, float) for v in value):
            m[key] = [max(value[0], 0.0), value[1]]
    return m


def _pct(m, key):
    lo, hi = m[f"{key}_ci"]
    return f"{100 * m[key]:.2f} % [{100 * lo:.2f}, {100 * hi:.2f}]"


def _ratio(m, key) -> str:
    lo, hi = m[f"{key}_ci"]
    return f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def _side(ratio_ci) -> str:
    return ("smaller, beyond the seeds' spread" if ratio_ci[1] < 1 else "larger, beyond the seeds' spread"
            if ratio_ci[0] > 1 else "not separated from it (the interval contains 1)")


def race_verdicts(m: dict) -> list[str]:
    """What the fair race shows, from the metrics alone."""
    out = []
    if "main_model_best_step" in m:
        out.append(f"training length chosen on the validation text ({m['validation_bytes']:,} bytes, disjoint from the "
                   f"coded held-out text): best step {m['main_model_best_step']:.0f} "
                   f"[{m['main_model_best_step_ci'][0]:.0f}, {m['main_model_best_step_ci'][1]:.0f}]; "
                   f"{m['main_model_stopped_early_share']:.0%} of the seeds stopped before the step ceiling")
    if "adaptive_lr_chosen" in m:
        cands = ", ".join(f"{lr}: {b:.3f}" for lr, b in m["adaptive_lr_validation_bits_per_byte"].items())
        out.append(f"adaptive learning rate chosen on the validation text: {m['adaptive_lr_chosen']:g} (bits/byte by "
                   f"rate: {cands})")
    if "best_primed_chunked" in m:
        b, bu = m["best_primed_chunked"], m["best_primed_unchunked"]
        out.append("classical compressors given the LM's side information (its training text; zstd: a dictionary "
                   "trained on it), held-out chunks: " + ", ".join(
                       f"{n.removesuffix('_primed')} {100 * m[f'rate_chunked_{n}']:.2f} % (plain "
                       f"{100 * m['rate_chunked_' + n.removesuffix('_primed')]:.2f} %)" for n in PRIMED))
        out.append(f"  LM / best primed ({b.removesuffix('_primed')}), chunks: ratio "
                   f"{_ratio(m, 'lm_vs_best_primed_chunked_ratio')}: the LM's output is "
                   f"{_side(m['lm_vs_best_primed_chunked_ratio_ci'])}")
        out.append(f"  unchunked: LM / best primed ({bu.removesuffix('_primed')}) {_ratio(m, 'lm_vs_best_primed_unchunked_ratio')}"
                   + (f"; adaptive LM / best primed {_ratio(m, 'lm_adaptive_vs_best_primed_unchunked_ratio')}, "
                      f"{_side(m['lm_adaptive_vs_best_primed_unchunked_ratio_ci'])}"
                      if "lm_adaptive_vs_best_primed_unchunked_ratio" in m else ""))
    if "ood_rate_chunked_lm" in m:
        for label in ("chunked", "unchunked"):
            best = m[f"ood_best_classical_{label}"]
            out.append(f"Python source (another kind of text, never trained on), {label}: LM {_pct(m, f'ood_rate_{label}_lm')}; "
                       + ", ".join(f"{n} {100 * m[f'ood_rate_{label}_{n}']:.2f} %" for n in baselines.COMPRESSORS)
                       + f"; LM / best classical ({best}) {_ratio(m, f'ood_lm_vs_best_classical_{label}_ratio')}, "
                       f"{_side(m[f'ood_lm_vs_best_classical_{label}_ratio_ci'])}")
    if "sweep_heldout_rate_at_largest_data" in m:
        rates = m["sweep_heldout_rate_at_largest_data"]
        lo, hi = m["main_model_heldout_rate_ideal_ci"]
        out.append(f"sweep models at {m['sweep_largest_data_bytes']:,} bytes, held-out rate (ideal, unchunked): "
                   + ", ".join(f"{k} {v:.3f} after {m['sweep_epochs_at_largest_data'][k]:.1f} epochs"
                               for k, v in rates.items())
                   + f"; the main model {m['main_model_heldout_rate_ideal']:.3f} [{lo:.3f}, {hi:.3f}]. The sweep's "
                   "models are not trained to convergence: where a sweep model's rate lies above the main model's of "
                   "the same size, part of the U's right arm is under-training")
    return out


def primed_table(m: dict) -> pd.DataFrame:
    """Plain and primed rates of every classical compressor and the LM, held-out and Python source, from
    the metrics (for the figure)."""
    rows = []
    for text, prefix in (("held-out docs", ""), ("Python source", "ood_")):
        for name in ["lm", *baselines.COMPRESSORS]:
            for kind, key in (("plain", name), ("primed", f"{name}_primed")):
                k = f"{prefix}rate_chunked_{key}"
                if name == "lm" and kind == "primed" or k not in m:
                    continue
                ci = m.get(f"{k}_ci", [m[k], m[k]])
                rows.append({"text": text, "compressor": name, "kind": "LM" if name == "lm" else kind,
                             "rate": m[k], "low": ci[0], "high": ci[1]})
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["text", "compressor", "kind", "rate", "low", "high"])

