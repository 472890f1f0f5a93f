"""A small pixel-space diffusion model (diffusers UNet2DModel + DDPMScheduler) for the image experiments.

Stable Diffusion with LoRA, behind the same interface, is `latent_diffusion.LatentDiffusionModel`.

Images are float arrays [N, C, H, W] in [0, 1]; the model works in [-1, 1] and predicts the noise
(epsilon), as in Ho et al. 2020. With `num_classes` set it is class-conditional (the prompt of the
royalty experiments is a class id).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel

from copystudy.models.training import progress, set_seed, train

WRAPPER_FILE = "copystudy.json"


class DiffusionModel:
    """A denoising diffusion model on small images: train, fine-tune, sample, save.

    Implements `copystudy.models.base.ImageModel`, built from a config; labels are class ids."""

    modality = "image"
    pretrained = False
    text_conditioned = False

    def __init__(self, unet: UNet2DModel, scheduler: DDPMScheduler):
        self.unet = unet.eval()
        self.scheduler = scheduler

    @classmethod
    def from_config(cls, image_size: int = 8, channels: int = 1, block_channels=(16, 32),
                    layers_per_block: int = 1, attention: bool = True, num_classes: int | None = None,
                    num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2",
                    norm_num_groups: int = 8, seed: int = 0) -> "DiffusionModel":
        """A fresh UNet: one down/up block per entry of block_channels, attention in the lowest one."""
        block_channels = tuple(int(c) for c in block_channels)
        if any(c % norm_num_groups for c in block_channels):
            raise ValueError(f"block_channels {block_channels} must be multiples of norm_num_groups={norm_num_groups}")
        if image_size % (2 ** (len(block_channels) - 1)):
            raise ValueError(f"image_size {image_size} must be divisible by 2^(len(block_channels)-1)")
        n = len(block_channels)
        down = ["DownBlock2D"] * n
        up = ["UpBlock2D"] * n
        if attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        set_seed(seed)
        unet = UNet2DModel(sample_size=image_size, in_channels=channels, out_channels=channels,
                           block_out_channels=block_channels, layers_per_block=layers_per_block,
                           down_block_types=tuple(down), up_block_types=tuple(up),
                           norm_num_groups=norm_num_groups, num_class_embeds=num_classes,
                           attention_head_dim=min(block_channels[-1], 32))
        scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                                  clip_sample=True)
        return cls(unet, scheduler)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    @property
    def num_classes(self) -> int | None:
        return self.unet.config.num_class_embeds

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = self.unet.config
        return (c.in_channels, c.sample_size, c.sample_size)

    def clone(self) -> "DiffusionModel":
        """An independent copy (to fine-tune without touching this one)."""
        return DiffusionModel(copy.deepcopy(self.unet), copy.deepcopy(self.scheduler))

    def _labels(self, labels, n):
        if self.num_classes is None:
            if labels is not None:
                raise ValueError("labels given to an unconditional model (num_classes=None)")
            return None
        if labels is None:
            raise ValueError(f"this model is class-conditional ({self.num_classes} classes): pass labels")
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} images")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {labels.min()}..{labels.max()}")
        return labels

    def to_model_space(self, images: np.ndarray) -> torch.Tensor:
        """Images in [0, 1] as the model sees them: pixels in [-1, 1] (float32)."""
        return torch.as_tensor(np.asarray(images, dtype=np.float32)) * 2 - 1

    def noise_prediction(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None):
        """epsilon_theta(x_t, t[, label]) for images in model space ([-1, 1]); labels: class ids."""
        if labels is not None and not isinstance(labels, torch.Tensor):
            labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        return self.unet(x_t, t, class_labels=labels).sample

    def fit(self, images: np.ndarray, steps: int, batch_size: int = 64, lr: float = 1e-3, labels=None,
            seed: int = 0, progress_bar: bool = True, desc: str = "train diffusion", replay=None,
            replay_share: float = 0.0, embed_lr_scale: float = 1.0) -> list[float]:
        """Epsilon-prediction MSE on random batches; returns the loss per step.

        replay: other (images, labels) of which a share `replay_share` of every batch is drawn (every
        batch, when `images` is empty); embed_lr_scale: learning rate of the class embeddings as a
        multiple of lr (Adam would otherwise move a fresh prompt embedding by only ~lr per step)."""
        n_replay = int(round(replay_share * batch_size)) if replay is not None and len(images) else 0
        if replay is not None and not len(images):
            n_replay = batch_size
        parts = [(images, labels, batch_size - n_replay)] if n_replay < batch_size else []
        parts += [(replay[0], replay[1], n_replay)] if n_replay else []
        sets = []
        for x, y, k in parts:
            x0 = torch.as_tensor(np.asarray(x, dtype=np.float32)) * 2 - 1
            if tuple(x0.shape[1:]) != self.image_shape:
                raise ValueError(f"images of shape {tuple(x0.shape[1:])}, model expects {self.image_shape}")
            sets.append((x0, self._labels(y, len(x0)), k))
        gen = torch.Generator().manual_seed(seed)
        T = self.scheduler.config.num_train_timesteps

        def batch_loss(step: int) -> torch.Tensor:
            xs, ys = [], []
            for x0, y, k in sets:
                idx = torch.randint(0, len(x0), (k,), generator=gen)
                xs.append(x0[idx])
                ys.append(None if y is None else y[idx])
            x0 = torch.cat(xs)
            y = None if ys[0] is None else torch.cat(ys)
            noise = torch.randn(x0.shape, generator=gen)
            t = torch.randint(0, T, (len(x0),), generator=gen)
            return torch.nn.functional.mse_loss(self.noise_prediction(self.scheduler.add_noise(x0, noise, t), t, y), noise)

        named = list(self.unet.named_parameters())
        embed = [p for n, p in named if n.startswith("class_embedding")]
        groups = [{"params": [p for n, p in named if not n.startswith("class_embedding")], "weight_decay": 0.0}]
        groups += [{"params": embed, "weight_decay": 0.0, "lr_scale": embed_lr_scale}] if embed else []
        return train(self.unet, batch_loss, steps, lr, groups=groups, desc=desc, progress_bar=progress_bar)

    @torch.no_grad()
    def sample(self, n: int, labels=None, seed: int = 0, num_inference_steps: int | None = None,
               batch_size: int = 256, progress_bar: bool = True, guidance: float = 1.0,
               null_label: int | None = None) -> np.ndarray:
        """n images [n, C, H, W] in [0, 1] by ancestral DDPM sampling (fewer steps skip timesteps).

        guidance != 1: classifier-free guidance (Ho & Salimans 2022), as text-to-image models are
        sampled: eps = eps(x, null) + guidance * (eps(x, label) - eps(x, null)), null = `null_label`."""
        y = self._labels(labels, n)
        if guidance != 1.0 and (y is None or null_label is None):
            raise ValueError("classifier-free guidance needs labels and the null_label")
        gen = torch.Generator().manual_seed(seed)
        scheduler = copy.deepcopy(self.scheduler)
        scheduler.set_timesteps(num_inference_steps or scheduler.config.num_train_timesteps)
        out = []
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            x = torch.randn((hi - lo, *self.image_shape), generator=gen)
            yb = None if y is None else y[lo:hi]
            steps = progress(scheduler.timesteps, desc=f"sample {lo}-{hi}", disable=not progress_bar or None,
                             leave=False)
            for t in steps:
                tt = t.expand(len(x))
                eps = self.noise_prediction(x, tt, yb)
                if guidance != 1.0:
                    eps_null = self.noise_prediction(x, tt, torch.full_like(yb, null_label))
                    eps = eps_null + guidance * (eps - eps_null)
                x = scheduler.step(eps, t, x, generator=gen).prev_sample
            out.append(((x.clamp(-1, 1) + 1) / 2).numpy())
        return np.concatenate(out) if out else np.zeros((0, *self.image_shape), np.float32)

    def save(self, directory: str | Path) -> Path:
        """UNet weights as safetensors with their config, and the scheduler config."""
        directory = Path(directory)
        self.unet.save_pretrained(directory / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(directory / "scheduler")
        (directory / WRAPPER_FILE).write_text(json.dumps({"family": "diffusion", "kind": "pixel"}))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "DiffusionModel":
        directory = Path(directory)
        if not (directory / "unet" / "config.json").exists():
            raise FileNotFoundError(f"{directory} holds no saved diffusion model (unet/config.json missing)")
        unet = UNet2DModel.from_pretrained(directory / "unet", local_files_only=True)
        scheduler = DDPMScheduler.from_pretrained(directory / "scheduler", local_files_only=True)
        return cls(unet, scheduler)
