"""Notebook 05, royalty shares: Shapley values of a coalition game of copyright owners (Wang et al. 2024).

What the runner and the site need to know, without importing torch: `rules` (parameters that must
agree, checked before the kernel starts) and `HEADLINES` (the numbers the site shows). The notebook's
cells call `steps` (the experiment), its summary (`summarize`, `verdicts`) and `figures`.
"""

from __future__ import annotations

from copystudy import models

# (metrics key, label, format) of the numbers the site shows; a key missing from a run is skipped
HEADLINES = [("typefaces_mean_prompted_share", "typefaces: prompted owner's mean share", ".2f"),
    ("typefaces_prompted_owner_top_share_rate", "typefaces: prompted owner on top", ".2f"),
    ("digits_mean_prompted_share", "digits: prompted owner's mean share", ".2f"),
    ("digits_similarity_mean_prompted_share", "digits: similarity baseline's share", ".2f")]


def rules(v: dict) -> str | None:
    model = v["model"]
    if models.is_pretrained(model) and v["data_dir"] is None:
        return ("a pretrained text-to-image model (model.name_or_path) plays on your own images: set data_dir to a "
                "folder root/<owner>/*.png|jpg, e.g. --set data_dir=~/data/wikiart")
    epochs = {k: v.get(k) for k in ("pretrain_epochs", "finetune_epochs") if v.get(k) is not None}
    if epochs and not models.is_pretrained(model):
        return (f"{', '.join(epochs)} set: epochs apply to LoRA fine-tunes of a pretrained model (model.name_or_path); "
                "the small UNet trains pretrain_steps and finetune_steps")
    if not models.is_pretrained(model):
        steps = model.get("num_train_timesteps", 1000)
        if v["n_strata"] > steps - 1:
            return (f"n_strata={v['n_strata']} exceeds the {steps - 1} timesteps 1..T-1 of the model "
                    f"(model.num_train_timesteps={steps}); the estimator needs n_strata <= T - 1")
    games = {"folder": v["n_folder_owners"]} if v["data_dir"] is not None else {
        "typefaces": len(v["glyph_owners"]), "digits": len(v["digit_owners"])}
    games = {k: n for k, n in games.items() if k == "folder" or k in v["datasets"]}
    if v["shell_split"]:
        if v["shell_dataset"] not in games:
            return (f"shell_dataset={v['shell_dataset']!r} is not one of the games played ({', '.join(games)}); "
                    "choose one of them or set shell_split=false")
        n = games[v["shell_dataset"]]
        if v["shell_dataset"] != "folder" and v["shell_owner"] >= n:
            return f"shell_owner={v['shell_owner']} is not an owner index of the {v['shell_dataset']} game (0..{n - 1})"
    return _estimator_game_rules(v)


def _estimator_game_rules(v: dict) -> str | None:
    """The estimator game (experiments/royalty_estimators): digit classes split into n owners, on the small UNet."""
    n = v.get("estimator_game_n_owners", 0)
    if not n:
        return None
    if models.is_pretrained(v["model"]):
        return ("the estimator game plays on the digits with the small UNet trained here; with a pretrained model "
                "set estimator_game_n_owners=0")
    if n < len(v["digit_owners"]):
        return (f"estimator_game_n_owners={n} is fewer than the {len(v['digit_owners'])} digit classes of digit_owners "
                "it splits (each class needs at least one owner)")
    if n > 12:
        return f"estimator_game_n_owners={n}: 2^{n} fine-tunes is more than this study affords; at most 12"
    steps = v["model"].get("num_train_timesteps", 1000)
    if v.get("estimator_n_strata", 2) > steps - 1:
        return (f"estimator_n_strata={v['estimator_n_strata']} exceeds the {steps - 1} timesteps 1..T-1 of the model "
                f"(model.num_train_timesteps={steps})")
    smallest = min(v.get("estimator_fractions", [1.0]))
    if round(smallest * 2**n) < 2 * n:
        return (f"estimator_fractions: {smallest:g} of 2^{n} = {round(smallest * 2**n)} coalitions is fewer than the "
                f"{2 * n} that one antithetic pair of permutations needs; raise the smallest fraction")
    return None
