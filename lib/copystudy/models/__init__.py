"""Models behind one small interface; a model is chosen in params by a spec dict.

    {"family": "causal_lm", "n_layer": 2, "n_embd": 64}            # built from a config, trained here
    {"family": "causal_lm", "name_or_path": "gpt2"}                 # pretrained, with its tokenizer
    {"family": "diffusion", "block_channels": [16, 32]}             # small pixel UNet
    {"family": "diffusion", "name_or_path": "CompVis/stable-diffusion-v1-4", "lora_rank": 8}

What an experiment needs from a model: `fit` (train or fine-tune on data), `sample` or `generate`,
code lengths / noise predictions for log-likelihoods in bits, `clone`, `save`/`load`. A family is a
module with a class built `from_config(**kwargs)` and, for pretrained weights,
`from_pretrained(name_or_path, **kwargs)`; register it in FAMILIES.
"""

from __future__ import annotations

from copystudy.models.causal_lm import CausalLM
from copystudy.models.diffusion import DiffusionModel
from copystudy.models.latent_diffusion import LatentDiffusionModel

# family -> (class built from a config, class loaded from name_or_path)
FAMILIES = {
    "causal_lm": (CausalLM, CausalLM),
    "diffusion": (DiffusionModel, LatentDiffusionModel),
}


def build(spec: dict, **defaults):
    """A model from a spec dict: {"family": ..., "name_or_path": ... or config arguments}.

    `defaults` fill in config arguments the spec leaves out (e.g. image_size from the data); they do
    not apply to pretrained models, whose shapes come with their weights.
    """
    spec = dict(spec)
    family = spec.pop("family", None)
    if family not in FAMILIES:
        raise ValueError(f"model.family must be one of {sorted(FAMILIES)}, got {family!r}")
    from_config, from_pretrained = FAMILIES[family]
    name_or_path = spec.pop("name_or_path", None)
    try:
        if name_or_path:
            return from_pretrained.from_pretrained(name_or_path, **spec)
        return from_config.from_config(**{**defaults, **spec})
    except TypeError as exc:  # an argument the family does not take
        raise ValueError(f"model: {exc}") from exc
