"""Stable Diffusion through the same interface, offline: a tiny random pipeline saved and loaded back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from copystudy.common import data
from copystudy.models.latent_diffusion import LatentDiffusionModel
from tiny_models import tiny_owner_folder, tiny_stable_diffusion


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tiny_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny-sd")
    return LatentDiffusionModel.from_pretrained(str(folder), device="cpu")


@pytest.fixture(scope="module")
def owners(tmp_path_factory):
    return data.image_folder(tiny_owner_folder(tmp_path_factory.mktemp("owners")), 16, channels=3)


def _prompts(owners):
    images = np.concatenate(list(owners.values()))
    prompts = [f"a logo by {o}" for o, v in owners.items() for _ in v]
    return images, prompts


def test_lora_fine_tune_changes_only_the_clone(base, owners, tmp_path):
    images, prompts = _prompts(owners)
    z = base.to_model_space(images[:2])
    t = torch.tensor([10, 600])
    before = base.noise_prediction(z, t, prompts[:2])
    tuned = base.clone()
    losses = tuned.fit(images, steps=4, batch_size=2, lr=1e-3, labels=prompts, progress_bar=False)
    assert len(losses) == 4 and all(np.isfinite(losses))
    after = tuned.noise_prediction(z, t, prompts[:2])
    assert not torch.allclose(before, after)
    assert torch.equal(base.noise_prediction(z, t, prompts[:2]), before)  # the shared base is untouched
    assert tuned.n_adapter_params > 0 and base.n_adapter_params == 0
    tuned.save(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "lora.safetensors").is_file()
    again = base.load_adapter(tmp_path / "adapter")
    assert torch.equal(again.noise_prediction(z, t, prompts[:2]), after)


def test_sampling_and_latent_shapes(base):
    out = base.sample(2, labels=["a logo by alice", "a logo by bob"], num_inference_steps=2)
    assert out.shape == (2, *base.image_shape) and 0 <= out.min() and out.max() <= 1
    assert tuple(base.to_model_space(out).shape[1:]) == base.latent_shape


def test_prompts_are_required(base, owners):
    images, _ = _prompts(owners)
    with pytest.raises(ValueError, match="one prompt"):
        base.clone().fit(images, steps=1, labels=None, progress_bar=False)


def test_bad_folders_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="not a folder"):
        LatentDiffusionModel.from_pretrained(str(tmp_path / "missing"))
    (tmp_path / "not-a-pipeline").mkdir()
    with pytest.raises(ValueError, match="could not load a Stable Diffusion pipeline"):
        LatentDiffusionModel.from_pretrained(str(tmp_path / "not-a-pipeline"))


@pytest.mark.notebook
@pytest.mark.slow
def test_royalty_shares_notebook_runs_on_a_tiny_stable_diffusion(tmp_path, run_notebook, monkeypatch):
    """The royalty notebook, with only parameters changed, plays the paper's game on a Stable Diffusion
    pipeline loaded through name_or_path (offline): owners from a folder, prompts from a template, one
    LoRA adapter per coalition (plus a null LoRA on the public folder), likelihoods in latent space."""
    import json

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sd = tiny_stable_diffusion(tmp_path / "tiny-sd")
    owners = tiny_owner_folder(tmp_path / "owners", owners=("alice", "bob", "carol", "public"), per_owner=3)
    cache = tmp_path / "cache"
    out, metrics = run_notebook("royalty_shares", sets=[
        f"model={{family: diffusion, name_or_path: '{sd}', device: cpu, lora_rank: 4}}",
        f"data_dir={owners}", "n_folder_owners=3", "image_size=16", "prompt_template='a logo by {owner}'",
        "shell_dataset=folder", "estimator_game_n_owners=0", "pretrain_steps=4", "pretrain_batch_size=2", "finetune_steps=2",
        "finetune_batch_size=2", "sample_steps=2", "likelihood_batch_size=16", f"cache_dir={cache}"])
    assert metrics["folder_n_owners"] == 3
    for prompt, shares in metrics["folder_share_matrix"].items():  # all 0 if no owner raises the likelihood
        assert sum(shares.values()) in (pytest.approx(0.0), pytest.approx(1.0)) and min(shares.values()) >= 0
    import pandas as pd

    table = pd.read_csv(out / "tables" / "shares.csv")
    assert len(table) == metrics["n_seeds"] * 3 * 3 and np.isfinite(table["shapley_bits"]).all()
    assert (table["shapley_se_bits"] > 0).all()
    assert 0 <= metrics["folder_prompted_owner_top_share_rate"] <= 1
    assert "shell_srs_after" in metrics and metrics["outputs_from_independent_replicate"] is True
    adapters = sorted(cache.rglob("lora.safetensors"))
    # the null LoRA; per fine-tune seed (smoke: 2) the empty coalition's control LoRA (on the public folder;
    # the split and copy-cat games' is the same) and 7 coalitions, the 8 shell coalitions holding one half
    # (x any subset of the other two) and the 8 holding the copy-cat; and each seed's replicate full coalition
    n_seeds = metrics["n_seeds"]
    assert len(adapters) == 1 + n_seeds * (2**3 + 2 * 2**2 + 2**3) + n_seeds
    assert not list(cache.rglob("diffusion_pytorch_model.safetensors"))  # adapters only, never the base
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    assert (out / "figures" / "outputs.png").is_file() and (out / "tables" / "shares.csv").is_file()


@pytest.mark.parametrize("case, message, code", [
    ("bad_model", "neither a local folder nor in the local Hugging Face cache", 2),  # the runner's offline model check
    ("empty_owner", "owner folder .*carol has no images", 2),  # refused by the runner, before any kernel
    ("no_data_dir", "plays on your own images: set data_dir", 2),
])
def test_royalty_notebook_refuses_bad_inputs_before_training(case, message, code, tmp_path, monkeypatch):
    """A bad name_or_path, an empty owner folder, or a pretrained model without data: the run stops with
    a clear error and nothing has been trained (the model cache stays empty)."""
    import re

    from conftest import ROOT, run_cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    owners = tiny_owner_folder(tmp_path / "owners", owners=("alice", "bob"), per_owner=2)
    (owners / "carol").mkdir()
    if case != "empty_owner":
        (owners / "carol").rmdir()
    name = "nobody-here/no-such-model-xyz" if case == "bad_model" else str(tiny_stable_diffusion(tmp_path / "sd"))
    cache = tmp_path / "cache"
    sets = [f"model={{family: diffusion, name_or_path: '{name}', device: cpu}}", f"cache_dir={cache}",
            "shell_split=false", "estimator_game_n_owners=0"] + ([] if case == "no_data_dir" else [f"data_dir={owners}"])
    proc = run_cli("run", "royalty_shares", "--params", str(ROOT / "params/royalty_shares/smoke.yaml"),
                   "--out", str(tmp_path / "run"), "--quiet", *[a for s in sets for a in ("--set", s)], check=False)
    assert proc.returncode == code
    assert re.search(message, proc.stdout + proc.stderr)
    if code == 2:  # refused before any kernel: nothing was made
        assert not cache.exists() and not (tmp_path / "run").exists()
    else:  # the notebook made its cache folder, then stopped before any model was trained
        assert cache.is_dir() and not any(cache.iterdir())
