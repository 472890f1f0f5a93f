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
