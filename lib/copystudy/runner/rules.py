"""Rules that tie a notebook's parameters together, checked before the kernel once every value fits its spec.

A spec (`copystudy.runner.params`) says what one parameter may be; a rule says what parameters may be
together, for example that the stratified likelihood estimate needs fewer strata than the model has
timesteps. Each experiment declares its own (`copystudy.experiments.<name>.rules`, returning the first
problem as a sentence, None when all is well); the rules of model specs are here: every spec with a
`family` is checked key by key against the options its family declares (`copystudy.models.check_spec`).
"""

from __future__ import annotations

from copystudy import experiments, models
from copystudy.runner.params import ParameterError


def model_specs(v: dict) -> list[tuple[str, dict]]:
    """(where, spec) of every model spec among the values: a dict parameter (`model`), a dict of them
    (`sweep_models.4K`) or a list of them (`lm_sizes[0]`)."""
    specs = [(k, s) for k, s in v.items() if isinstance(s, dict)]
    specs += [(f"{k}.{name}", s) for k, d in v.items() if isinstance(d, dict) for name, s in d.items()
              if isinstance(s, dict)]
    specs += [(f"{k}[{i}]", s) for k, lst in v.items() if isinstance(lst, list) for i, s in enumerate(lst)
              if isinstance(s, dict)]
    return specs


def _spec_options(v: dict) -> str | None:
    """Every model spec (a dict with a `family`) against its family's declared options."""
    for key, spec in model_specs(v):
        if "family" in spec:
            try:
                models.check_spec(spec, key)
            except ValueError as exc:
                return str(exc)
    return None


def _model_rules(v: dict) -> str | None:
    """Every byte-level GPT-2 spec (a dict parameter, or a dict of them) has heads that divide its width."""
    for key, spec in model_specs(v):
        if not models.is_pretrained(spec) and isinstance(spec.get("n_embd"), int) and isinstance(spec.get("n_head"), int):
            if spec["n_head"] < 1 or spec["n_embd"] % spec["n_head"]:
                return f"{key}: n_embd={spec['n_embd']} must be a multiple of n_head={spec['n_head']}"
    return None


def check_rules(name: str, values: dict) -> None:
    """Every model spec key by key, the notebook's own rules, then those of every model spec; one-line
    ParameterError. Model specs go first: the notebook's rules may read their keys."""
    for rule in (_spec_options, experiments.rules(name), _model_rules):
        problem = rule(values) if rule else None
        if problem:
            raise ParameterError(f"{name}: {problem}")
