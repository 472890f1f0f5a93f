"""Notebook 01, LM compression: a language model with arithmetic coding against classical compressors.

What the runner and the site need to know, without importing torch: `rules` (parameters that must
agree, checked before the kernel starts) and `HEADLINES` (the numbers the site shows). The notebook's
cells call `steps` (the experiment), its summary (`summarize`, `verdicts`) and `figures`.
"""

from __future__ import annotations

# (metrics key, label, format) of the numbers the site shows; a key missing from a run is skipped
HEADLINES = [("rate_chunked_lm", "LM, held-out 2048-byte chunks", "pct"),
    ("rate_chunked_brotli", "brotli, same chunks", "pct"),
    ("rate_unchunked_lm_adaptive", "adaptive LM, unchunked", "pct"),
    ("rate_unchunked_ppmd", "PPMd, unchunked", "pct"),
    ("lm_vs_best_primed_chunked_ratio", "LM / best compressor given its training text, chunks", ".3f"),
    ("ood_rate_chunked_lm", "LM on Python source, chunks", "pct")]


def rules(v: dict) -> str | None:
    """No rules across this notebook's parameters beyond their specs."""
    return None
