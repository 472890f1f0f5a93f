"""Rules that tie a notebook's parameters together, checked before the kernel once every value fits its spec.

A spec (`copystudy.runner.params`) says what one parameter may be; a rule here says what parameters may be
together, for example that the stratified likelihood estimate needs fewer strata than the model has
timesteps. One function per notebook, returning the first problem as a sentence (None when all is well).
"""

from __future__ import annotations

from copystudy.runner.params import ParameterError


def _royalty_shares_rules(v: dict) -> str | None:
    model = v["model"]
    if model.get("name_or_path") and v["data_dir"] is None:
        return ("a pretrained text-to-image model (model.name_or_path) plays on your own images: set data_dir to a "
                "folder root/<owner>/*.png|jpg, e.g. --set data_dir=~/data/wikiart")
    epochs = {k: v.get(k) for k in ("pretrain_epochs", "finetune_epochs") if v.get(k) is not None}
    if epochs and not model.get("name_or_path"):
        return (f"{', '.join(epochs)} set: epochs apply to LoRA fine-tunes of a pretrained model (model.name_or_path); "
                "the small UNet trains pretrain_steps and finetune_steps")
    if not model.get("name_or_path"):
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
    if v["model"].get("name_or_path"):
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


def _description_length_rules(v: dict) -> str | None:
    if v["min_steps"] > v["max_steps"]:
        return f"min_steps={v['min_steps']} is larger than max_steps={v['max_steps']}"
    context = v["model"].get("context")
    if isinstance(context, int) and not v["model"].get("name_or_path") and v["first_block"] < 2 * (context + 1):
        return (f"first_block={v['first_block']} must be at least 2 x (model.context + 1) = {2 * (context + 1)} bytes: "
                "each prefix model holds out at least context + 1 bytes of its prefix to stop early")
    return None


def _copyright_risk_rules(v: dict) -> str | None:
    if v["n_train"] < v["image_folds"]:
        return (f"n_train={v['n_train']} works cannot fill image_folds={v['image_folds']} folds: every fold needs "
                "a work (every model trains on every fold but one)")
    steps = v["model"].get("num_train_timesteps", 1000)
    if v["n_strata"] > steps - 1:
        return (f"n_strata={v['n_strata']} exceeds the {steps - 1} timesteps 1..T-1 of the diffusion model "
                f"(model.num_train_timesteps={steps}); the bound's estimator needs n_strata <= T - 1")
    return None


def _memorization_rules(v: dict) -> str | None:
    line = len("\naccount 0000 has PIN ") + 2 * v["n_digits"] - 1  # a canary line after a line break
    if v["lm_context"] < line:
        return (f"lm_context={v['lm_context']} is shorter than a canary line after a line break ({line} bytes with "
                f"n_digits={v['n_digits']}): the model could not score a secret given its prefix")
    if v["n_candidates"] > 10 ** v["n_digits"] - 1:
        return (f"n_candidates={v['n_candidates']} exceeds the {10 ** v['n_digits'] - 1} other secrets of "
                f"{v['n_digits']} digits")
    return None


def _model_rules(v: dict) -> str | None:
    """Every byte-level GPT-2 spec (a dict parameter, or a dict of them) has heads that divide its width."""
    specs = [(k, s) for k, s in v.items() if isinstance(s, dict)]
    specs += [(f"{k}.{name}", s) for k, d in v.items() if isinstance(d, dict) for name, s in d.items()
              if isinstance(s, dict)]
    specs += [(f"{k}[{i}]", s) for k, lst in v.items() if isinstance(lst, list) for i, s in enumerate(lst)
              if isinstance(s, dict)]
    for key, spec in specs:
        if not spec.get("name_or_path") and isinstance(spec.get("n_embd"), int) and isinstance(spec.get("n_head"), int):
            if spec["n_head"] < 1 or spec["n_embd"] % spec["n_head"]:
                return f"{key}: n_embd={spec['n_embd']} must be a multiple of n_head={spec['n_head']}"
    return None


RULES = {"royalty_shares": _royalty_shares_rules, "description_length": _description_length_rules,
         "copyright_risk": _copyright_risk_rules, "memorization": _memorization_rules}


def check_rules(name: str, values: dict) -> None:
    """The notebook's rules across parameters (RULES), then those of every model spec; one-line ParameterError."""
    for rule in (RULES.get(name), _model_rules):
        problem = rule(values) if rule else None
        if problem:
            raise ParameterError(f"{name}: {problem}")
