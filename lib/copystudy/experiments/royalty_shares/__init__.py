"""Notebook 05, royalty shares: Shapley values of a coalition game of copyright owners (Wang et al. 2024).

What the runner and the site need to know, without importing torch: `rules` (parameters that must
agree, checked before the kernel starts) and `HEADLINES` (the numbers the site shows). The notebook's
cells call `steps` (the experiment), its summary (`summarize`, `verdicts`) and `figures`.
"""

from __future__ import annotations

from copystudy import models
# Exact Shapley values need a model for every coalition: 2^n of them. Past this many players (a game's
# owners, and the extra shell company of check (a)) that is more than this study can train; a larger
# game is estimated from a sample of coalitions (`python -m copystudy shapley --plan N`).
MAX_EXACT_OWNERS = 12

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
    if v["data_dir"] is not None:
        folder = _folder_game_rules(v)
        if isinstance(folder, str):
            return folder
        games = {"folder": folder}  # None: data_dir does not list; the input check says why
    else:
        games = {k: n for k, n in {"typefaces": len(v["glyph_owners"]), "digits": len(v["digit_owners"])}.items()
                 if k in v["datasets"]}
    for game, n in games.items():
        problem = _too_many(game, n, v) if n is not None else None
        if problem:
            return problem
    if v["shell_split"]:
        if v["shell_dataset"] not in games:
            return (f"shell_dataset={v['shell_dataset']!r} is not one of the games played ({', '.join(games)}); "
                    "choose one of them or set shell_split=false")
        n = games[v["shell_dataset"]]
        if n is not None and v["shell_owner"] >= n:
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
    if n > MAX_EXACT_OWNERS:
        return (f"estimator_game_n_owners={n}: 2^{n} fine-tunes is more than this study affords; at most "
                f"{MAX_EXACT_OWNERS}")
    steps = v["model"].get("num_train_timesteps", 1000)
    if v.get("estimator_n_strata", 2) > steps - 1:
        return (f"estimator_n_strata={v['estimator_n_strata']} exceeds the {steps - 1} timesteps 1..T-1 of the model "
                f"(model.num_train_timesteps={steps})")
    smallest = min(v.get("estimator_fractions", [1.0]))
    if round(smallest * 2**n) < 2 * n:
        return (f"estimator_fractions: {smallest:g} of 2^{n} = {round(smallest * 2**n)} coalitions is fewer than the "
                f"{2 * n} that one antithetic pair of permutations needs; raise the smallest fraction")
    return None


def folder_roles(names: list[str], data_dir_public, n_folder_owners: int) -> tuple[list[str], list[str]]:
    """(owners, public) among the owner folders `names` of data_dir: the first n_folder_owners are owners
    and the rest public, or, with data_dir_public, those folders are public and all others owners."""
    public = list(data_dir_public) if data_dir_public is not None else names[n_folder_owners:]
    owners = [n for n in names if n not in public][: n_folder_owners if data_dir_public is None else None]
    return owners, public


def _too_many(game: str, n: int, v: dict) -> str | None:
    """The cap on exact enumeration: a game of n owners (and a shell company if check (a) splits one)."""
    players = n + (1 if v["shell_split"] and v["shell_dataset"] == game else 0)
    if players <= MAX_EXACT_OWNERS:
        return None
    shell = " (one more as a shell company)" if players > n else ""
    fewer = ("play fewer owners (n_folder_owners, or more data_dir_public folders)" if game == "folder"
             else f"list fewer {'glyph_owners' if game == 'typefaces' else 'digit_owners'}")
    return (f"the {game} game has {n} owners{shell}: exact Shapley values need 2^{players} = {2 ** players:,} "
            f"coalition models, more than this study trains (at most {MAX_EXACT_OWNERS} players); {fewer}, or for "
            "many owners train a sample of coalitions and estimate: python -m copystudy shapley --plan N "
            "--owners a,b,... --estimator kernel")


def _folder_game_rules(v: dict) -> int | str | None:
    """The folder game's owner count from a listing of data_dir (nothing read), or its problem as a sentence;
    None when the folder does not list (the input check says why)."""
    from copystudy.common.data import owner_folders

    try:
        names = [p.name for p in owner_folders(v["data_dir"])]
    except OSError:
        return None
    if not names:
        return None  # the input check names the empty folder
    owners, public = folder_roles(names, v["data_dir_public"], v["n_folder_owners"])
    unknown = [p for p in public if p not in names]
    if unknown:
        return f"data_dir_public {unknown} are not sub-folders of {v['data_dir']}; its sub-folders: {names}"
    if not owners:
        return f"data_dir {v['data_dir']} leaves no owners: every sub-folder ({len(names)}) is in data_dir_public"
    if _too_many("folder", len(owners), v):
        return _too_many("folder", len(owners), v)
    if not public and not models.is_pretrained(v["model"]):
        return (f"data_dir {v['data_dir']} has no public folders: its {len(names)} sub-folders are all owners "
                f"(n_folder_owners={v['n_folder_owners']}), and the small UNet pre-trains on public data; add "
                "sub-folders beyond the first n_folder_owners, name public ones in data_dir_public, or lower "
                "n_folder_owners")
    return len(owners)
