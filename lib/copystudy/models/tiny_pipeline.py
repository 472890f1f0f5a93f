"""A tiny text-to-image pipeline (Stable Diffusion's parts, built from configs) trained here on public images.

The paper's game runs on a pretrained Stable Diffusion; testing that path on a random pipeline shows
only that it runs (every coalition scores the same noise). `train_tiny_pipeline` makes a pipeline
that has learned something, in a few minutes of one CPU core, with no download: a small VAE trained
to reconstruct the images, then a small UNet and CLIP text encoder trained together on the VAE's
latents with one text prompt per image (10% of prompts dropped to "", so classifier-free guidance
works). It is saved with `save_pretrained`, so `model.name_or_path` loads it like any hub checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from copystudy.models.training import train

MAX_PROMPT_TOKENS = 40  # the tokenizer is character level: a prompt like "a glyph by STIXGeneralItalic" is 29 tokens


def char_tokenizer(max_length: int = MAX_PROMPT_TOKENS):
    """A CLIP tokenizer with a character-level vocabulary made here (no download, no merges)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {tok: i for i, tok in enumerate(["<|startoftext|>", "<|endoftext|>", "!"] + chars
                                             + [c + "</w>" for c in chars])}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def build_tiny_pipeline(image_size: int = 16, seed: int = 0):
    """A random StableDiffusionPipeline: VAE (x2 down), UNet with cross-attention in both blocks, CLIP text encoder."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = char_tokenizer()
    width = 32
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=image_size // 2,
                                in_channels=4, out_channels=4, norm_num_groups=8, cross_attention_dim=width,
                                attention_head_dim=8, down_block_types=("CrossAttnDownBlock2D",) * 2,
                                up_block_types=("CrossAttnUpBlock2D",) * 2)
    vae = AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4,
                        norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, sample_size=image_size)
    text_encoder = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=width,
                                                intermediate_size=2 * width, num_attention_heads=4,
                                                num_hidden_layers=2, vocab_size=len(tokenizer),
                                                max_position_embeddings=MAX_PROMPT_TOKENS))
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              num_train_timesteps=1000, clip_sample=False, steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def fit_vae(vae, images: torch.Tensor, steps: int, batch_size: int, lr: float, seed: int, kl_weight: float = 1e-4,
            progress_bar: bool = False):
    """Reconstruction (MSE in [-1, 1]) plus a small KL term; then the latent scaling factor set to 1/std of
    the latents, as Stable Diffusion's is, so the diffusion sees unit-variance latents."""
    gen = torch.Generator().manual_seed(seed)

    def batch_loss(step):
        x = images[torch.randint(0, len(images), (batch_size,), generator=gen)]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        kl = 0.5 * (post.mean ** 2 + post.var - 1 - post.logvar).mean()
        return torch.nn.functional.mse_loss(rec, x) + kl_weight * kl

    vae.requires_grad_(True)
    losses = train(vae, batch_loss, steps, lr, betas=(0.9, 0.999), desc="tiny VAE", progress_bar=progress_bar)
    vae.requires_grad_(False).eval()
    with torch.no_grad():
        std = float(torch.cat([vae.encode(images[i:i + 256]).latent_dist.mean
                               for i in range(0, len(images), 256)]).std())
    vae.register_to_config(scaling_factor=1.0 / std)
    return losses


def fit_unet_and_text(pipe, images: torch.Tensor, prompts: np.ndarray, steps: int, batch_size: int, lr: float,
                      seed: int, drop_prompt: float = 0.1, progress_bar: bool = False):
    """epsilon-prediction MSE on the VAE's (scaled) latents, UNet and text encoder trained together."""
    with torch.no_grad():
        latents = torch.cat([pipe.vae.encode(images[i:i + 256]).latent_dist.mean
                             for i in range(0, len(images), 256)]) * pipe.vae.config.scaling_factor
    tok = pipe.tokenizer(list(prompts) + [""], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    ids, empty = tok[:-1], tok[-1]
    gen = torch.Generator().manual_seed(seed)
    T = pipe.scheduler.config.num_train_timesteps
    both = torch.nn.ModuleDict({"unet": pipe.unet, "text": pipe.text_encoder}).requires_grad_(True)

    def batch_loss(step):
        idx = torch.randint(0, len(latents), (batch_size,), generator=gen)
        noise = torch.randn((batch_size, *latents.shape[1:]), generator=gen)
        t = torch.randint(0, T, (batch_size,), generator=gen)
        drop = torch.rand(batch_size, generator=gen) < drop_prompt
        batch_ids = torch.where(drop[:, None], empty[None], ids[idx])
        cond = pipe.text_encoder(batch_ids)[0]
        pred = pipe.unet(pipe.scheduler.add_noise(latents[idx], noise, t), t, encoder_hidden_states=cond).sample
        return torch.nn.functional.mse_loss(pred, noise)

    losses = train(both, batch_loss, steps, lr, betas=(0.9, 0.999), desc="tiny UNet + text encoder",
                   progress_bar=progress_bar)
    both.requires_grad_(False).eval()
    return losses


def train_tiny_pipeline(folder: str | Path, works: dict[str, np.ndarray], template: str = "a glyph by {owner}",
                        vae_steps: int = 400, unet_steps: int = 1200, batch_size: int = 32, lr: float = 2e-3,
                        seed: int = 0, progress_bar: bool = False) -> Path:
    """Build, train and save a tiny text-to-image pipeline on `works` (name -> images [n, C, H, W] in [0, 1];
    grayscale is repeated to RGB); the works of `name` carry the prompt template.format(owner=name).

    A folder that already holds a pipeline trained with the same settings is returned as it is (a
    test session trains it once). Deterministic given the seed (on one machine, one thread count)."""
    folder = Path(folder)
    names = list(works)
    arrays = [np.asarray(works[n], np.float32) for n in names]
    settings = {"names": names, "n_works": [len(a) for a in arrays], "template": template, "vae_steps": vae_steps,
                "unet_steps": unet_steps, "batch_size": batch_size, "lr": lr, "seed": seed,
                "checksum": float(sum(a.astype(np.float64).sum() for a in arrays))}
    stamp = folder / "copystudy_training.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("settings") == settings:
        return folder
    images = np.concatenate([np.repeat(a, 3, axis=1) if a.shape[1] == 1 else a for a in arrays])
    x = torch.as_tensor(images) * 2 - 1
    prompts = np.array([template.format(owner=n) for n, a in zip(names, arrays) for _ in range(len(a))], dtype=object)
    pipe = build_tiny_pipeline(images.shape[-1], seed)
    vae_losses = fit_vae(pipe.vae, x, vae_steps, batch_size, lr, seed, progress_bar=progress_bar)
    unet_losses = fit_unet_and_text(pipe, x, prompts, unet_steps, batch_size, lr, seed + 1, progress_bar=progress_bar)
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(folder)
    stamp.write_text(json.dumps({"settings": settings, "vae_final_loss": float(np.mean(vae_losses[-50:])),
                                 "unet_final_loss": float(np.mean(unet_losses[-50:]))}, indent=1))
    return folder


def glyph_pipeline(folder: str | Path, exclude=(), size: int = 16, chars: str | None = None,
                   template: str = "a glyph by {owner}", **train_kwargs) -> Path:
    """The tiny pipeline trained on the glyphs of every usable typeface except `exclude` (the owners of a
    game, so its public pre-training never saw their works)."""
    from copystudy.common import glyphs

    chars = chars or glyphs.DEFAULT_CHARS
    _, public = glyphs.glyph_owners([], chars, size, public=[f for f in glyphs.typefaces(chars) if f not in exclude])
    return train_tiny_pipeline(folder, public, template, **train_kwargs)
