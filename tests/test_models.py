"""The core models: exact probabilities for coding, save/load round trips, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from copystudy.common import data
from copystudy import models
from copystudy.models.causal_lm import CausalLM
from copystudy.models.diffusion import DiffusionModel


@pytest.fixture(scope="module")
def lm():
    model = CausalLM.from_config(n_layer=1, n_head=2, n_embd=32, context=32, seed=0)
    model.fit(data.join_documents(data.python_docs())[:20000], steps=30, batch_size=8, progress_bar=False)
    return model


def test_probs_are_distributions_and_first_byte_uniform(lm):
    text = b"def f(x):\n    return x\n"
    p = lm.probs(text)
    assert p.shape == (len(text), 256) and np.allclose(p.sum(1), 1.0)
    assert np.all(p[0] == 1 / 256)
    assert lm.bits(b"a")[0] == 8.0 and lm.bits(b"").shape == (0,)


def test_next_probs_is_bitwise_equal_to_probs_across_window_boundaries(lm):
    text = data.python_docs()["for"][:200]
    p = lm.probs(text)
    for i in [0, 1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 49, 64, 65, 100, 199]:
        assert np.array_equal(lm.next_probs(text[:i]), p[i]), i


def test_training_lowers_the_code_length():
    text = b"abcabcabcabc" * 200
    model = CausalLM.from_config(n_layer=1, n_head=1, n_embd=16, context=16, seed=0)
    before = model.bits(text[:300]).mean()
    model.fit(text, steps=100, batch_size=8, lr=1e-2, progress_bar=False)
    assert model.bits(text[:300]).mean() < before / 4
    assert model.generate(b"abcab", 7) == b"cabcabc"


def test_lm_save_load_round_trip(lm, tmp_path):
    lm.save(tmp_path / "lm")
    assert (tmp_path / "lm" / "model.safetensors").is_file()
    back = CausalLM.load(tmp_path / "lm")
    text = b"The quick brown fox jumps over the lazy dog" * 3
    assert np.array_equal(back.probs(text), lm.probs(text))
    with pytest.raises(FileNotFoundError, match="no saved model"):
        CausalLM.load(tmp_path / "nothing")


def test_generate_batches_equal_length_prefixes(lm):
    one = lm.generate(b"import ", 5)
    both = lm.generate([b"import ", b"import "], 5)
    assert both == [one, one] and len(one) == 5
    with pytest.raises(ValueError, match="equal length"):
        lm.generate([b"a", b"bc"], 2)


@pytest.mark.slow
def test_diffusion_fit_sample_save_load(tmp_path):
    images, labels = data.digits()
    model = DiffusionModel.from_config(block_channels=(8, 16), num_classes=10, seed=0)
    losses = model.fit(images[:64], steps=5, batch_size=16, labels=labels[:64], progress_bar=False)
    assert len(losses) == 5 and all(np.isfinite(losses))
    out = model.sample(3, labels=[0, 1, 2], num_inference_steps=5, progress_bar=False)
    assert out.shape == (3, 1, 8, 8) and out.min() >= 0 and out.max() <= 1
    model.save(tmp_path / "d")
    back = DiffusionModel.load(tmp_path / "d")
    again = back.sample(3, labels=[0, 1, 2], num_inference_steps=5, progress_bar=False)
    assert np.array_equal(out, again)
    with pytest.raises(ValueError, match="class-conditional"):
        model.sample(2, num_inference_steps=2, progress_bar=False)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\)"):
        model.fit(images[:4], steps=1, labels=[0, 1, 2, 10], progress_bar=False)


def test_clone_is_independent():
    model = DiffusionModel.from_config(block_channels=(8, 16), seed=0)
    copy = model.clone()
    images, _ = data.digits()
    copy.fit(images[:16], steps=2, batch_size=8, progress_bar=False)
    a = next(model.unet.parameters()).detach()
    b = next(copy.unet.parameters()).detach()
    assert not np.array_equal(a.numpy(), b.numpy())


def test_build_names_the_valid_families():
    assert isinstance(models.build({"family": "causal_lm", "n_layer": 1, "n_embd": 16, "n_head": 1,
                                    "context": 8}), CausalLM)
    with pytest.raises(ValueError, match="causal_lm"):
        models.build({"family": "gan"})
    with pytest.raises(ValueError, match="divisible by n_head"):
        CausalLM.from_config(n_embd=10, n_head=3)


def test_split_documents_is_disjoint_and_sized():
    docs = data.python_docs()
    train, held = data.split_documents(docs, 0.1, seed=0)
    assert not set(train) & set(held) and set(train) | set(held) == set(docs)
    assert sum(map(len, held.values())) >= 0.1 * sum(map(len, docs.values()))


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_dir"):
        data.image_folder(tmp_path / "missing", 8)
    (tmp_path / "owner_a").mkdir()
    with pytest.raises(ValueError, match="owner_a has no images"):
        data.image_folder(tmp_path, 8)


def test_text_folder_reads_owners_from_folders_and_files(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "a.txt").write_text("one")
    (tmp_path / "bob.txt").write_text("two")
    owners = data.text_folder(tmp_path)
    assert owners == {"alice": {"alice/a.txt": b"one"}, "bob": {"bob.txt": b"two"}}
    (tmp_path / "carol").mkdir()
    with pytest.raises(ValueError, match="carol has no text files"):
        data.text_folder(tmp_path)
