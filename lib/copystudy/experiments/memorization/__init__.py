"""Notebook 03, memorization: when can a model reconstruct its training works?

What the runner and the site need to know, without importing torch: `rules` (parameters that must
agree, checked before the kernel starts) and `HEADLINES` (the numbers the site shows). The notebook's
cells call `steps` (the experiment), its summary (`summarize`, `verdicts`) and `figures`.
"""

from __future__ import annotations

# (metrics key, label, format) of the numbers the site shows; a key missing from a run is skipped
HEADLINES = [("extraction_rate_high_budget_by_n", "extraction rate by training-set size, higher epoch budget",
                      "dict"),
                     ("rank_exposure_saturates_at_exposures", "canary exposures at which rank exposure saturates, by LM",
                      "dict")]


def rules(v: dict) -> str | None:
    from copystudy.common.data import image_count

    images = image_count(v["data_dir"])
    if images is not None and v["heldout_size"] >= images:
        return (f"heldout_size={v['heldout_size']} leaves no training images: {_source(v)} has {images} images; "
                f"set heldout_size below {images}")
    line = len("\naccount 0000 has PIN ") + 2 * v["n_digits"] - 1  # a canary line after a line break
    if v["lm_context"] < line:
        return (f"lm_context={v['lm_context']} is shorter than a canary line after a line break ({line} bytes with "
                f"n_digits={v['n_digits']}): the model could not score a secret given its prefix")
    if v["n_candidates"] > 10 ** v["n_digits"] - 1:
        return (f"n_candidates={v['n_candidates']} exceeds the {10 ** v['n_digits'] - 1} other secrets of "
                f"{v['n_digits']} digits")
    return None


def _source(v: dict) -> str:
    return "scikit-learn's digits" if v["data_dir"] is None else f"data_dir {v['data_dir']}"
