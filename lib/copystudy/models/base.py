"""The model contract: what a family implements, the flags it declares, and the options of its specs.

A *family* (`causal_lm`, `diffusion`, ...) is a name in `copystudy.models.FAMILIES` with up to two
sources: a class built from a config (`from_config(**options)`, trained here) and a class loaded from
weights (`from_pretrained(name_or_path, **options)`). Each source declares its options (name, valid
values in the notebooks' spec grammar, default), so a spec is checked key by key before a kernel
starts (`check_spec`). The instances it builds follow `TextModel` or `ImageModel` and carry three
capability flags, which is how code outside `copystudy.models` tells models apart:

- `modality`: "text" or "image";
- `byte_level` (text): the model reads bytes (vocabulary 256, no tokenizer) rather than a tokenizer's ids;
- `pretrained`: its weights came from `name_or_path` rather than a config (`is_pretrained(spec)` for a spec).

This module imports no torch: the runner checks specs with it before any kernel starts.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from copystudy.runner.params import parse_spec

MODALITIES = ("text", "image")


# ---- the interfaces the experiments call --------------------------------------------------------
@runtime_checkable
class TextModel(Protocol):
    """A causal model over bytes or tokens: trained with `fit`, asked for code lengths in bits.

    `model(input_ids, past_key_values=..., use_cache=True)` is the forward pass the range coder calls;
    `context` is the window of every probability, `vocab_size` the alphabet of `tokens`."""

    modality: str
    context: int
    model: Any

    @property
    def byte_level(self) -> bool: ...
    @property
    def pretrained(self) -> bool: ...
    @property
    def name(self) -> str: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def n_params(self) -> int: ...

    def fit(self, data, steps: int, batch_size: int = ..., lr: float = ..., seed: int = 0, **kwargs) -> list[float]: ...
    def tokens(self, data) -> Any: ...
    def detokenize(self, ids) -> bytes: ...
    def bits(self, data) -> Any: ...
    def total_bits(self, data) -> float: ...
    def bits_per_byte(self, data) -> float: ...
    def generate(self, prefix, n: int): ...
    def clone(self) -> "TextModel": ...
    def save(self, directory) -> Path: ...


@runtime_checkable
class ImageModel(Protocol):
    """A denoising diffusion model on images [N, C, H, W] in [0, 1], conditioned on labels.

    Labels are class ids, or text prompts when `text_conditioned`; `noise_prediction` works in the
    model's own space (pixels in [-1, 1], or VAE latents: `to_model_space`), with `scheduler`'s timesteps."""

    modality: str
    text_conditioned: bool
    scheduler: Any

    @property
    def pretrained(self) -> bool: ...
    @property
    def image_shape(self) -> tuple[int, int, int]: ...
    @property
    def n_params(self) -> int: ...

    def fit(self, images, steps: int, batch_size: int = ..., lr: float = ..., labels=None, seed: int = 0,
            **kwargs) -> list[float]: ...
    def sample(self, n: int, labels=None, seed: int = 0, num_inference_steps: int | None = None, **kwargs): ...
    def to_model_space(self, images): ...
    def noise_prediction(self, x_t, t, labels=None): ...
    def clone(self) -> "ImageModel": ...
    def save(self, directory) -> Path: ...


# ---- what a family declares ---------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One key of a model spec: its valid values in the notebooks' grammar (`int >= 1`, `one of ...`,
    `list of int >= 1`, `... or None`; see copystudy.runner.params) and its default."""

    name: str
    spec: str
    default: Any = None
    required: bool = False

    def check(self, value):
        """The value, or ValueError saying what was given (as the notebook parameters' checks do)."""
        return parse_spec(self.spec).check(value)


@dataclass(frozen=True)
class Source:
    """One way a family makes a model: its class (or "module:Class", imported on first use), the
    options of its spec, and rules across options (spec -> problem or None)."""

    cls: Any
    options: tuple[Option, ...]
    rules: Callable[[dict], str | None] | None = None

    def load_class(self):
        if isinstance(self.cls, str):
            module, _, name = self.cls.partition(":")
            return getattr(importlib.import_module(module), name)
        return self.cls

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)


@dataclass(frozen=True)
class Capabilities:
    """The flags of a model, or of the model a spec will build (see the module docstring)."""

    modality: str
    byte_level: bool
    pretrained: bool


@dataclass(frozen=True)
class Family:
    """A registered family: its modality, and the sources it builds from (config and/or pretrained).

    `byte_level`: whether models built from a config read bytes (text only); pretrained text models
    come with their tokenizer."""

    name: str
    modality: str
    config: Source | None = None
    pretrained: Source | None = None
    byte_level: bool = False

    def source(self, spec: dict) -> Source:
        source = self.pretrained if is_pretrained(spec) else self.config
        if source is None:
            kind = "pretrained weights (name_or_path)" if is_pretrained(spec) else "a config (no name_or_path)"
            raise ValueError(f"family {self.name!r} has no models from {kind}")
        return source

    def capabilities(self, spec: dict) -> Capabilities:
        pretrained = is_pretrained(spec)
        return Capabilities(self.modality, self.modality == "text" and self.byte_level and not pretrained, pretrained)


def is_pretrained(spec: dict) -> bool:
    """Whether a spec loads weights (`name_or_path` set) rather than building a model from a config."""
    return bool(spec.get("name_or_path"))


def signature_defaults(func) -> dict:
    """name -> default of a function's keyword parameters (what a source's options must match)."""
    return {p.name: p.default for p in inspect.signature(func).parameters.values()
            if p.name not in ("self", "cls", "name_or_path") and p.kind is not p.VAR_KEYWORD}


# ---- checking a spec ----------------------------------------------------------------------------
def _shown(value) -> str:
    """A value as it is typed in YAML or --set (strings bare, None as null)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10**9).removesuffix("\n").removesuffix("\n...")


def check_spec(spec, where: str, families: dict) -> None:
    """Every key of a model spec against its family's declared options; ValueError with one line.

    `where` names the spec (`model`, `sweep_models.4K`): messages read `model.n_embd=0: must be int >= 1
    (default 64), got 0` or `model.n_embdd: no such option of causal_lm from a config; did you mean 'n_embd'?`."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: a model spec is a dict such as {{family: causal_lm, n_embd: 64}}, got {spec!r}")
    name = spec.get("family")
    if name not in families:
        close = difflib.get_close_matches(str(name), list(families), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{where}.family={_shown(name)}: not a model family{hint} (families: {', '.join(families)})")
    family = families[name]
    try:
        source = family.source(spec)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    kind = "pretrained (name_or_path)" if is_pretrained(spec) else "from a config"
    for key, value in spec.items():
        if key == "family" or (key == "name_or_path" and not value):
            continue
        option = source.option(key)
        if option is None:
            valid = [o.name for o in source.options]
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"{where}.{key}: no such option of {name} {kind}; {hint}options: {', '.join(valid)}")
        try:
            option.check(value)
        except ValueError as exc:
            default = "required" if option.required else f"default {_shown(option.default)}"
            raise ValueError(f"{where}.{key}={_shown(value)}: must be {option.spec} ({default}), {exc}") from None
    missing = [o.name for o in source.options if o.required and o.name not in spec]
    if missing:
        raise ValueError(f"{where}: {name} {kind} needs {', '.join(missing)}")
    problem = source.rules({**{o.name: o.default for o in source.options}, **spec}) if source.rules else None
    if problem:
        raise ValueError(f"{where}: {problem}")
