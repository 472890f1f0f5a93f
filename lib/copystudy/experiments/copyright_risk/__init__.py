"""Notebook 04, copyright risk: information content against reconstruction fidelity for every work.

What the runner and the site need to know, without importing torch: `rules` (parameters that must
agree, checked before the kernel starts) and `HEADLINES` (the numbers the site shows). The notebook's
cells call `steps` (the experiment), its summary (`summarize`, `verdicts`) and `figures`.
"""

from __future__ import annotations

# (metrics key, label, format) of the numbers the site shows; a key missing from a run is skipped
HEADLINES = [("canary_info_bits_mean", "canary secret, bits (analytic 19.9)", ".1f"),
    ("document_info_fidelity_rho", "information vs fidelity (documents), Spearman", ".2f"),
    ("image_works_reproduced", "training digits reproduced (of 63, mean over seeds)", ".1f")]


def rules(v: dict) -> str | None:
    from copystudy.common.data import image_count

    images = image_count(v["data_dir"])
    if images is not None and images - v["heldout_size"] < v["image_folds"]:
        source = "scikit-learn's digits" if v["data_dir"] is None else f"data_dir {v['data_dir']}"
        return (f"heldout_size={v['heldout_size']} leaves {max(images - v['heldout_size'], 0)} of the {images} images "
                f"of {source} as works, fewer than image_folds={v['image_folds']} (every fold needs a work); "
                f"set heldout_size to at most {images - v['image_folds']}")
    if v["n_train"] < v["image_folds"]:
        return (f"n_train={v['n_train']} works cannot fill image_folds={v['image_folds']} folds: every fold needs "
                "a work (every model trains on every fold but one)")
    steps = v["model"].get("num_train_timesteps", 1000)
    if v["n_strata"] > steps - 1:
        return (f"n_strata={v['n_strata']} exceeds the {steps - 1} timesteps 1..T-1 of the diffusion model "
                f"(model.num_train_timesteps={steps}); the bound's estimator needs n_strata <= T - 1")
    return None
