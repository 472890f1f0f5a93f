"""The model contract, over every registered family: a tiny instance of each source (config, pretrained)
follows its interface (TextModel or ImageModel), carries the flags its spec promises, and trains,
clones, saves and loads as the experiments assume. A family added to FAMILIES without a tiny instance
in tests/tiny_models.py fails here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from copystudy import models
from copystudy.models import base
from tiny_models import TINY_CONFIGS, TINY_PRETRAINED

CASES = [(name, kind) for name, family in models.FAMILIES.items() for kind in ("config", "pretrained")
         if getattr(family, kind) is not None]
TEXT = b"The for statement iterates over the items of a sequence, in order. " * 6


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    """(family, kind) -> the spec of a tiny model (pretrained weights saved to a temporary folder once)."""
    out = {}
    for name, kind in CASES:
        if kind == "config":
            out[name, kind] = {"family": name, **TINY_CONFIGS[name]}
        else:
            folder = TINY_PRETRAINED[name](tmp_path_factory.mktemp(name) / "weights")
            out[name, kind] = {"family": name, "name_or_path": str(folder), "device": "cpu"}
    return out


def test_every_family_has_a_tiny_instance_and_a_known_modality():
    for name, kind in CASES:
        assert name in (TINY_CONFIGS if kind == "config" else TINY_PRETRAINED), (name, kind)
        assert models.FAMILIES[name].modality in base.MODALITIES and models.FAMILIES[name].name == name


@pytest.mark.parametrize("name, kind", CASES)
def test_declared_options_are_the_constructor_arguments(name, kind):
    """A spec is checked against the options a family declares; they must be exactly what its class
    takes, with the same defaults (a new argument undeclared, or a default changed in one place only,
    fails here)."""
    source = getattr(models.FAMILIES[name], kind)
    make = getattr(source.load_class(), "from_config" if kind == "config" else "from_pretrained")
    declared = {o.name: o.default for o in source.options if o.name != "name_or_path"}
    expected = {k: list(v) if isinstance(v, tuple) else v for k, v in base.signature_defaults(make).items()}
    assert declared == expected
    for option in source.options:  # every default is a valid value of its own option
        if not option.required:
            option.check(option.default)


@pytest.mark.parametrize("name, kind", CASES)
def test_a_tiny_model_keeps_the_contract(name, kind, specs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = specs[name, kind]
    flags = models.capabilities(spec)  # checks the spec against the declared options first
    model = models.build(spec, seed=0) if kind == "config" else models.build(spec)
    assert (model.modality, model.pretrained) == (flags.modality, flags.pretrained) == (
        models.FAMILIES[name].modality, kind == "pretrained")
    if flags.modality == "text":
        assert isinstance(model, models.TextModel) and model.byte_level == flags.byte_level
        _text_contract(model, tmp_path)
    else:
        assert isinstance(model, models.ImageModel)
        _image_contract(model, tmp_path)


def _text_contract(lm, tmp_path):
    ids = np.asarray(lm.tokens(TEXT))
    assert lm.detokenize(ids) == TEXT and ids.max() < lm.vocab_size
    if lm.byte_level:
        assert lm.vocab_size == 256 and ids.tolist() == list(TEXT)
    bits = lm.bits(TEXT)
    assert bits.shape == ids.shape and np.all(bits > 0)
    assert lm.total_bits(TEXT) == pytest.approx(bits.sum()) and lm.bits_per_byte(TEXT) == pytest.approx(bits.sum() / len(TEXT))
    logits = lm.model(input_ids=torch.as_tensor(ids[None, :lm.context]), use_cache=True).logits  # the coder's call
    assert logits.shape[-1] == lm.vocab_size
    copy = lm.clone()
    losses = copy.fit(TEXT, steps=3, batch_size=2, lr=1e-2, seed=0, progress_bar=False)
    assert len(losses) == 3 and np.all(np.isfinite(losses))
    assert np.array_equal(lm.bits(TEXT), bits) and not np.allclose(copy.bits(TEXT), bits)  # the clone is its own
    copy.save(tmp_path / "saved")
    back = type(copy).load(tmp_path / "saved")
    assert (back.byte_level, back.pretrained) == (lm.byte_level, lm.pretrained)
    assert np.allclose(back.bits(TEXT), copy.bits(TEXT), rtol=1e-9, atol=0)
    assert isinstance(lm.generate(TEXT[:8], 4), bytes)


def _image_contract(model, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((4, *model.image_shape)).astype(np.float32)
    labels = ["a logo by alice", "a logo by bob"] * 2 if model.text_conditioned else [0, 1, 2, 0]
    z = model.to_model_space(images)
    t = torch.tensor([5, 100, 400, 900])
    eps = model.noise_prediction(z, t, labels)
    assert eps.shape == z.shape
    copy = model.clone()
    losses = copy.fit(images, steps=2, batch_size=2, lr=1e-2, labels=labels, seed=0, progress_bar=False)
    assert len(losses) == 2 and np.all(np.isfinite(losses))
    assert torch.equal(model.noise_prediction(z, t, labels), eps)  # the original is untouched
    tuned = copy.noise_prediction(z, t, labels)
    assert not torch.allclose(tuned, eps)
    copy.save(tmp_path / "saved")
    back = type(copy).load(tmp_path / "saved")
    assert (back.pretrained, back.text_conditioned) == (model.pretrained, model.text_conditioned)
    assert torch.equal(back.noise_prediction(z, t, labels), tuned)
    out = model.sample(2, labels=labels[:2], num_inference_steps=2, progress_bar=False)
    assert out.shape == (2, *model.image_shape) and out.min() >= 0 and out.max() <= 1


# ---- specs checked key by key -------------------------------------------------------------------
@pytest.mark.parametrize("spec, message", [
    ({"family": "causal_lm", "n_embd": 0}, "model.n_embd=0: must be int >= 1 (default 64), got 0"),
    ({"family": "causal_lm", "n_embd": "abc"}, "model.n_embd=abc: must be int >= 1 (default 64), got str 'abc'"),
    ({"family": "causal_lm", "n_embdd": 64}, "model.n_embdd: no such option of causal_lm from a config; did you mean 'n_embd'?"),
    ({"family": "causal_lm", "context": 31}, "model.context=31: must be even int >= 2 (default 256), got 31, which is odd"),
    ({"family": "causal_lm", "n_embd": 30, "n_head": 4}, "model: n_embd=30 must be a multiple of n_head=4"),
    ({"family": "causl_lm"}, "model.family=causl_lm: not a model family; did you mean 'causal_lm'?"),
    ({"n_layer": 2}, "model.family=null: not a model family"),
    ({"family": "causal_lm", "name_or_path": "gpt2", "n_embd": 64}, "model.n_embd: no such option of causal_lm pretrained"),
    ({"family": "causal_lm", "name_or_path": "gpt2", "dtype": "float8"}, 'model.dtype=float8: must be one of "float32"'),
    ({"family": "diffusion", "block_channels": [8, 12]}, "block_channels [8, 12] must be multiples of norm_num_groups=8"),
    ({"family": "diffusion", "beta_schedule": "cosine"}, "model.beta_schedule=cosine: must be one of"),
    ({"family": "diffusion", "name_or_path": "sd", "lora_rnk": 4}, "did you mean 'lora_rank'?"),
    ({"family": "diffusion", "name_or_path": 5}, "model.name_or_path=5: must be str (required), got int 5"),
    ("gpt2", "model: a model spec is a dict"),
])
def test_check_spec_refuses_in_one_line(spec, message):
    with pytest.raises(ValueError) as info:
        models.check_spec(spec, "model")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_check_spec_accepts_every_option_at_its_default():
    for name, family in models.FAMILIES.items():
        for source in (family.config, family.pretrained):
            if source is not None:
                spec = {"family": name, **{o.name: o.default for o in source.options}}
                spec["name_or_path"] = "somewhere" if source is family.pretrained else None
                models.check_spec(spec, "model")


def test_checking_a_spec_imports_no_torch():
    """The runner checks specs before any kernel starts, so `--check` stays quick."""
    import subprocess
    import sys

    code = ("import sys; from copystudy import models; models.check_spec({'family': 'causal_lm'}, 'model'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_signature_defaults_reads_keyword_parameters():
    def make(name_or_path, a: int = 1, b=(2, 3), **rest):
        return None

    assert base.signature_defaults(make) == {"a": 1, "b": (2, 3)}
