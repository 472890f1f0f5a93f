"""Tiny pretrained-style models built from configs and saved to disk, to test the real loading path offline."""

from __future__ import annotations

from pathlib import Path

from copystudy.common import data


def tiny_gpt2_with_tokenizer(folder: Path, vocab_size: int = 320) -> Path:
    """A byte-level BPE tokenizer trained here and a random tiny GPT-2, saved like a hub checkpoint."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    texts = [t.decode() for t in list(data.python_docs().values())[:10]]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=1, n_head=2)
    folder.mkdir(parents=True, exist_ok=True)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_clip_tokenizer(folder: Path):
    """A CLIP tokenizer with a character-level vocabulary made here (no download)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {tok: i for i, tok in enumerate(["<|startoftext|>", "<|endoftext|>", "!"] + chars
                                             + [c + "</w>" for c in chars])}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)


def tiny_stable_diffusion(folder: Path, image_size: int = 16) -> Path:
    """A random Stable Diffusion pipeline (tiny UNet, VAE, CLIP text encoder, tokenizer) saved to `folder`."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tokenizer = tiny_clip_tokenizer(folder)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=image_size // 2,
                                in_channels=4, out_channels=4, norm_num_groups=8, cross_attention_dim=16,
                                attention_head_dim=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, sample_size=image_size)
    text_encoder = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=16,
                                                intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
                                                vocab_size=len(tokenizer), max_position_embeddings=16))
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              num_train_timesteps=1000, clip_sample=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def tiny_owner_folder(folder: Path, owners=("alice", "bob"), per_owner: int = 3, size: int = 16) -> Path:
    """root/<owner>/*.png with a distinct colour pattern per owner."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, owner in enumerate(owners):
        (folder / owner).mkdir(parents=True, exist_ok=True)
        for i in range(per_owner):
            img = np.zeros((size, size, 3), np.uint8)
            img[..., k % 3] = 200
            img[rng.integers(0, size), :, :] = 255
            Image.fromarray(img).save(folder / owner / f"{i}.png")
    return folder


# ---- a tiny instance of every registered model family, for the model contract -------------------
# family -> the config spec of a tiny model built here (without "family")
TINY_CONFIGS = {
    "causal_lm": {"n_layer": 1, "n_head": 2, "n_embd": 16, "context": 16},
    "diffusion": {"image_size": 8, "block_channels": [8, 16], "num_classes": 3, "attention": False},
}
# family -> a function saving tiny pretrained weights into a folder (the folder is the spec's name_or_path)
TINY_PRETRAINED = {
    "causal_lm": tiny_gpt2_with_tokenizer,
    "diffusion": tiny_stable_diffusion,
}
