"""Models behind one small interface; a model is chosen in params by a spec dict.

    {"family": "causal_lm", "n_layer": 2, "n_embd": 64}            # built from a config, trained here
    {"family": "causal_lm", "name_or_path": "gpt2"}                 # pretrained, with its tokenizer
    {"family": "diffusion", "block_channels": [16, 32]}             # small pixel UNet
    {"family": "diffusion", "name_or_path": "CompVis/stable-diffusion-v1-4", "lora_rank": 8}

The contract (the interfaces `TextModel` and `ImageModel`, the capability flags, the declared options
of a spec) is in `copystudy.models.base`. FAMILIES registers each family with its options; the
classes are imported on first use, so checking a spec (`check_spec`) needs no torch.
"""

from __future__ import annotations

from copystudy.models.base import (Capabilities, Family, ImageModel, Option, Source, TextModel,  # noqa: F401
                                   is_pretrained)
from copystudy.models import base

DTYPE = Option("dtype", 'one of "float32", "float16", "bfloat16"', "float32")
BETA_SCHEDULES = '"linear", "scaled_linear", "squaredcos_cap_v2", "laplace", "sigmoid"'
PRETRAINED = (Option("name_or_path", "str", required=True), DTYPE, Option("device", "str", "auto"),
              Option("trust_remote_code", "bool", False))


def _heads_divide_width(spec: dict) -> str | None:
    if spec["n_embd"] % spec["n_head"]:
        return f"n_embd={spec['n_embd']} must be a multiple of n_head={spec['n_head']}"
    return None


def _channels_fit_groups(spec: dict) -> str | None:
    groups, channels = spec["norm_num_groups"], spec["block_channels"]
    if any(c % groups for c in channels):
        return f"block_channels {list(channels)} must be multiples of norm_num_groups={groups}"
    return None


FAMILIES: dict[str, Family] = {
    "causal_lm": Family(
        "causal_lm", "text", byte_level=True,
        config=Source("copystudy.models.causal_lm:CausalLM", (
            Option("n_layer", "int >= 1", 2), Option("n_head", "int >= 1", 2), Option("n_embd", "int >= 1", 64),
            Option("context", "even int >= 2", 256), Option("dropout", "float in [0, 1)", 0.0),
            Option("seed", "int >= 0", 0), Option("device", "str", "cpu"),
            Option("vocab_size", "int in [2, 256]", 256)), _heads_divide_width),
        pretrained=Source("copystudy.models.causal_lm:CausalLM", (
            *PRETRAINED, Option("context", "int >= 2 or None", None)))),
    "diffusion": Family(
        "diffusion", "image",
        config=Source("copystudy.models.diffusion:DiffusionModel", (
            Option("image_size", "int >= 1", 8), Option("channels", "int >= 1", 1),
            Option("block_channels", "list of int >= 1", [16, 32]), Option("layers_per_block", "int >= 1", 1),
            Option("attention", "bool", True), Option("num_classes", "int >= 1 or None", None),
            Option("num_train_timesteps", "int >= 2", 1000),
            Option("beta_schedule", f"one of {BETA_SCHEDULES}", "squaredcos_cap_v2"),
            Option("norm_num_groups", "int >= 1", 8), Option("seed", "int >= 0", 0)), _channels_fit_groups),
        pretrained=Source("copystudy.models.latent_diffusion:LatentDiffusionModel", (
            *PRETRAINED, Option("lora_rank", "int >= 1", 8), Option("lora_alpha", "int >= 1", 8),
            Option("lora_targets", "list of unique str", ["to_q", "to_k", "to_v", "to_out.0"]),
            Option("resolution", "int >= 8 or None", None)))),
}


def check_spec(spec, where: str = "model") -> None:
    """Every key of a model spec against its family's declared options (types, ranges, unknown keys with
    a did-you-mean, rules across keys); ValueError with one line, e.g. `model.n_embd=0: must be int >= 1
    (default 64), got 0`. Needs no torch: the runner calls it before any kernel starts."""
    base.check_spec(spec, where, FAMILIES)


def capabilities(spec: dict) -> Capabilities:
    """The flags of the model a spec builds (modality, byte_level, pretrained), without building it."""
    check_spec(spec)
    return FAMILIES[spec["family"]].capabilities(spec)


def build(spec: dict, **defaults):
    """A model from a spec dict: {"family": ..., "name_or_path": ... or config arguments}.

    `defaults` fill in config arguments the spec leaves out (e.g. image_size from the data); they do
    not apply to pretrained models, whose shapes come with their weights.
    """
    spec = dict(spec)
    family = spec.pop("family", None)
    if family not in FAMILIES:
        raise ValueError(f"model.family must be one of {sorted(FAMILIES)}, got {family!r}")
    name_or_path = spec.pop("name_or_path", None)
    source = FAMILIES[family].source({"name_or_path": name_or_path})
    cls = source.load_class()
    try:
        if name_or_path:
            return cls.from_pretrained(name_or_path, **spec)
        return cls.from_config(**{**defaults, **spec})
    except TypeError as exc:  # an argument the family does not take
        raise ValueError(f"model: {exc}") from exc
