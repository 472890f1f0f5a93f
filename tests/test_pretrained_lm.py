"""A pretrained causal LM with a tokenizer goes through the same interface, offline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from copystudy.models import loading
from copystudy.models.causal_lm import CausalLM
from tiny_models import tiny_gpt2_with_tokenizer

TEXT = b"The for statement is used to iterate over the elements of a sequence."


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_gpt2_with_tokenizer(tmp_path_factory.mktemp("tiny") / "gpt2")


def test_loads_from_a_folder_and_counts_bits_per_byte(folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lm = CausalLM.from_pretrained(str(folder), device="cpu")
    ids = lm.tokens(TEXT)
    assert lm.detokenize(ids) == TEXT and len(ids) < len(TEXT)
    bits = lm.bits(TEXT)
    assert bits.shape == (len(ids),) and np.all(bits > 0)
    assert lm.bits_per_byte(TEXT) == pytest.approx(bits.sum() / len(TEXT))
    assert bits[0] == pytest.approx(np.log2(lm.vocab_size))


def test_fine_tuning_lowers_bits_and_save_load_keeps_them(folder, tmp_path):
    lm = CausalLM.from_pretrained(str(folder), device="cpu")
    before = lm.bits_per_byte(TEXT)
    lm.fit(TEXT * 20, steps=40, batch_size=4, lr=1e-2, progress_bar=False)
    after = lm.bits_per_byte(TEXT)
    assert after < before / 2
    lm.save(tmp_path / "saved")
    back = CausalLM.load(tmp_path / "saved")
    assert back.tokenizer is not None and back.bits_per_byte(TEXT) == pytest.approx(after, rel=1e-9)
    assert isinstance(back.generate(b"The for", 10), bytes)


def test_byte_tables_are_refused_for_a_tokenizer_model(folder):
    lm = CausalLM.from_pretrained(str(folder), device="cpu")
    with pytest.raises(ValueError, match="byte-level"):
        lm.probs(TEXT)
    with pytest.raises(ValueError, match="UTF-8"):
        lm.tokens(b"\xff\xfe")


@pytest.mark.parametrize("name, message", [
    ("./no/such/folder", "not a folder"),
    ("nobody-here/no-such-model-xyz", "neither a local folder nor in the local Hugging Face cache"),
])
def test_bad_name_or_path_is_a_clear_error(name, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match=message):
        CausalLM.from_pretrained(name)


def test_a_model_too_large_for_the_device_is_refused():
    with pytest.raises(MemoryError, match="GiB needed"):
        loading.check_fits(10**15, loading.pick_device("cpu"), 4.0, "model x")
    with pytest.raises(ValueError, match="model.dtype"):
        loading.torch_dtype("float8")


@pytest.mark.skipif(loading.torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_asking_for_cuda_without_one_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        loading.pick_device("cuda")
    assert loading.pick_device("auto").type in ("cpu", "mps")


def test_a_tokenizer_model_range_codes_text_exactly(folder):
    """Token streams are range-coded and decoded back to the original bytes; the code length is the
    model's own (token_bits) to float precision, and rates are per original byte."""
    from copystudy.compression import rates

    lm = CausalLM.from_pretrained(str(folder), device="cpu")
    text = ("Zürich café — naïve “quotes” ünïcödé. " * 3).encode() + TEXT * 3
    whole = rates.lm_code(lm, text, chunk_size=None, show_progress=False)
    assert whole["roundtrip_exact"] and whole["original_bytes"] == len(text)
    assert whole["n_symbols"] == len(lm.tokens(text)) < len(text)
    assert whole["ideal_bits"] == pytest.approx(lm.total_bits(text), rel=1e-9)
    chunked = rates.lm_code(lm, text, chunk_size=50, show_progress=False)
    assert chunked["roundtrip_exact"] and chunked["n_chunks"] >= len(text) // 50


def test_utf8_chunks_never_split_a_character():
    from copystudy.compression import coding

    text = "aé€😀b".encode() * 40
    for size in (1, 2, 3, 5, 7, 64):
        pieces = coding.chunks(text, size, utf8=True)
        assert b"".join(pieces) == text
        for piece in pieces:
            piece.decode("utf-8")  # raises if a character was cut
            assert len(piece) <= max(size, 4)


@pytest.mark.notebook
@pytest.mark.slow
def test_lm_compression_notebook_runs_on_a_pretrained_model_with_a_tokenizer(folder, run_notebook, monkeypatch):
    """The same notebook, with only the `model` parameter changed, codes text with a tokenizer model
    loaded through name_or_path (offline), and the run's model works with the compress tool."""
    from conftest import run_cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out, metrics = run_notebook("lm_compression", sets=[
        f"model={{family: causal_lm, name_or_path: '{folder}', device: cpu}}", "train_steps=0"])
    assert metrics["roundtrip_exact"] is True and metrics["tokenizer"] and metrics["pretrained"]
    assert metrics["model"] == "gpt2" and metrics["n_params"] > 0
    assert 0 < metrics["rate_chunked_lm"] < 5  # a random model: a rate, not a good one
    assert not (out / "models" / "lm" / "model.safetensors").exists()  # a reference, not a copy
    proc = run_cli("compress", "--run", str(out), str(out / "params.yaml"), "--json")
    result = json.loads(proc.stdout)
    assert result["roundtrip_exact"] is True and result["model_name"] == "gpt2"
