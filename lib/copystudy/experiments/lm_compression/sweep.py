"""Notebook 01: the model size x data size sweep (Deletang et al. Fig. 2), run in the background of the
notebook's first sections."""

from __future__ import annotations

import pandas as pd

from copystudy.compression import rates


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
