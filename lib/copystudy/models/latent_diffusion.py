"""Stable Diffusion (diffusers' StableDiffusionPipeline) fine-tuned with LoRA, behind DiffusionModel's interface."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler
from diffusers.utils import logging as diffusers_logging

from copystudy.models.diffusion import WRAPPER_FILE
from copystudy.models.training import train

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
LORA_FILE = "lora.safetensors"


class LatentDiffusionModel:
    """Stable Diffusion (diffusers' StableDiffusionPipeline) fine-tuned with LoRA, behind the same interface.

    Images are [N, 3, H, W] in [0, 1]; labels are text prompts. Training and likelihoods work in the
    VAE's latent space (the model's own space): `to_model_space` encodes images with the VAE's mean
    and scaling factor. Fine-tuning trains only LoRA adapters (peft) on the UNet's attention
    projections; the base weights are shared by every clone, so a coalition costs only its adapter.
    Implements `copystudy.models.base.ImageModel`.
    """

    modality = "image"
    pretrained = True
    text_conditioned = True

    def __init__(self, pipe, lora_rank: int = 8, lora_alpha: int = 8, lora_targets=LORA_TARGETS,
                 name_or_path: str = "", resolution: int | None = None):
        self.pipe = pipe
        native = pipe.unet.config.sample_size * pipe.vae_scale_factor
        self.resolution = int(resolution or native)
        if self.resolution % (8 * pipe.vae_scale_factor):
            raise ValueError(f"model.resolution must be a multiple of {8 * pipe.vae_scale_factor} pixels "
                             f"(this model's native size is {native}), got {self.resolution}")
        self.unet, self.vae = pipe.unet, pipe.vae
        self.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.lora = {"r": int(lora_rank), "lora_alpha": int(lora_alpha), "target_modules": list(lora_targets)}
        self.name_or_path = name_or_path
        for module in (pipe.unet, pipe.vae, pipe.text_encoder):
            module.requires_grad_(False).eval()
        self._adapter = None  # LoRA state dict of this model (None: the base model)
        self._token = object()  # which adapter the shared UNet currently holds

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype: str = "float32", device: str = "auto",
                        lora_rank: int = 8, lora_alpha: int = 8, lora_targets=LORA_TARGETS,
                        trust_remote_code: bool = False, resolution: int | None = None) -> "LatentDiffusionModel":
        """A StableDiffusionPipeline from a local folder or hub id (offline: from the cache).

        resolution: image side in pixels the model works at (None: its native size, 512 for SD v1.4)."""
        from diffusers import StableDiffusionPipeline

        from copystudy.models import loading

        where = loading.resolve(name_or_path)
        dev = loading.pick_device(device)
        size = loading.weight_bytes(where)
        loading.check_fits(size, dev, 1.5, f"model {name_or_path} (inference and LoRA fine-tuning)")
        diffusers_logging.disable_progress_bar()
        try:
            pipe = StableDiffusionPipeline.from_pretrained(
                where, dtype=loading.torch_dtype(dtype), safety_checker=None, feature_extractor=None,
                requires_safety_checker=False, trust_remote_code=trust_remote_code,
                local_files_only=Path(where).is_dir())
        except (OSError, ValueError, EnvironmentError) as exc:
            raise ValueError(f"model.name_or_path {name_or_path!r}: could not load a Stable Diffusion "
                             f"pipeline ({exc})") from exc
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe.to(dev), lora_rank, lora_alpha, lora_targets, name_or_path, resolution)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def n_params(self) -> int:
        """Parameters of the UNet (with its LoRA layers once any adapter exists)."""
        return sum(p.numel() for p in self.unet.parameters())

    @property
    def n_adapter_params(self) -> int:
        """Parameters of this model's own LoRA adapter (0 for the base)."""
        return 0 if self._adapter is None else sum(v.numel() for v in self._adapter.values())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.resolution, self.resolution)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = self.resolution // self.pipe.vae_scale_factor
        return (self.unet.config.in_channels, side, side)

    def clone(self) -> "LatentDiffusionModel":
        """The same base with its own adapter (the base weights are shared, not copied)."""
        other = copy.copy(self)
        other._adapter = None if self._adapter is None else {k: v.clone() for k, v in self._adapter.items()}
        other._token = object()
        return other

    # ---- adapters -------------------------------------------------------------------------------
    def _activate(self, train: bool = False) -> None:
        """Put this model's adapter into the shared UNet (a fresh one when training from the base)."""
        from peft import LoraConfig
        from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

        if not getattr(self.unet, "peft_config", None):
            self.unet.add_adapter(LoraConfig(init_lora_weights="gaussian", **self.lora))
        self._state_fn = get_peft_model_state_dict
        if not train and getattr(self.unet, "_copystudy_active", None) is self._token:
            return  # this model's adapter is already in the shared UNet
        self.unet._copystudy_active = None if train else self._token
        if self._adapter is not None:
            set_peft_model_state_dict(self.unet, self._adapter)
        else:  # the base model: adapters at zero contribute nothing
            with torch.no_grad():
                for name, p in self.unet.named_parameters():
                    if "lora_B" in name:
                        p.zero_()
                    elif "lora_A" in name and train:
                        torch.nn.init.normal_(p, std=1 / self.lora["r"])
        for name, p in self.unet.named_parameters():
            p.requires_grad_(train and "lora_" in name)

    def condition(self, prompts) -> torch.Tensor:
        """Text-encoder states for a list of prompts (the UNet's cross-attention input)."""
        prompts = [str(p) for p in np.asarray(prompts, dtype=object).reshape(-1)]
        tok = self.pipe.tokenizer(prompts, padding="max_length", max_length=self.pipe.tokenizer.model_max_length,
                                  truncation=True, return_tensors="pt")
        with torch.no_grad():
            return self.pipe.text_encoder(tok.input_ids.to(self.device))[0]

    @torch.no_grad()
    def to_model_space(self, images: np.ndarray, batch_size: int = 8) -> torch.Tensor:
        """VAE latents (mean of the posterior x scaling factor) of images in [0, 1]."""
        x = torch.as_tensor(np.asarray(images, dtype=np.float32)) * 2 - 1
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"images of shape {tuple(x.shape[1:])}, model expects {self.image_shape}")
        out = []
        for lo in range(0, len(x), batch_size):
            xb = x[lo:lo + batch_size].to(self.device, self.vae.dtype)
            out.append(self.vae.encode(xb).latent_dist.mean * self.vae.config.scaling_factor)
        return torch.cat(out).float()

    def noise_prediction(self, x_t: torch.Tensor, t: torch.Tensor, labels=None) -> torch.Tensor:
        """epsilon_theta(z_t, t, prompt) in latent space; labels are prompts or precomputed text states."""
        self._activate()
        cond = labels if isinstance(labels, torch.Tensor) else self.condition(labels)
        out = self.unet(x_t.to(self.device, self.unet.dtype), t.to(self.device), encoder_hidden_states=cond).sample
        return out.to(x_t.dtype).to(x_t.device)

    def fit(self, images: np.ndarray, steps: int, batch_size: int = 4, lr: float = 1e-4, labels=None,
            seed: int = 0, progress_bar: bool = True, desc: str = "LoRA fine-tune") -> list[float]:
        """LoRA fine-tuning on (image, prompt) pairs: epsilon-prediction MSE in latent space."""
        if labels is None or len(labels) != len(images):
            raise ValueError("a text-conditioned model needs one prompt (label) per image")
        torch.manual_seed(seed)
        latents = self.to_model_space(images)
        prompts = np.asarray(labels, dtype=object)
        self._activate(train=True)
        params = [p for p in self.unet.parameters() if p.requires_grad]
        gen = torch.Generator().manual_seed(seed)
        T = self.scheduler.config.num_train_timesteps

        def batch_loss(step: int) -> torch.Tensor:
            idx = torch.randint(0, len(latents), (batch_size,), generator=gen)
            noise = torch.randn((batch_size, *self.latent_shape), generator=gen).to(self.device)
            t = torch.randint(0, T, (batch_size,), generator=gen).to(self.device)
            z_t = self.scheduler.add_noise(latents[idx.to(latents.device)], noise, t)
            cond = self.condition(prompts[idx.numpy()])
            pred = self.unet(z_t.to(self.unet.dtype), t, encoder_hidden_states=cond).sample.float()
            return torch.nn.functional.mse_loss(pred, noise)

        # the re-implementation's recipe: AdamW with torch's defaults (betas 0.9/0.999, weight decay 0.01)
        losses = train(self.unet, batch_loss, steps, lr, groups=[{"params": params, "weight_decay": 0.01}],
                       betas=(0.9, 0.999), desc=desc, progress_bar=progress_bar)
        self._adapter = {k: v.detach().clone() for k, v in self._state_fn(self.unet).items()}
        self._token = object()
        self.unet._copystudy_active = self._token
        for p in params:
            p.requires_grad_(False)
        return losses

    @torch.no_grad()
    def sample(self, n: int, labels=None, seed: int = 0, num_inference_steps: int | None = 50,
               batch_size: int = 4, progress_bar: bool = False, guidance: float = 7.5) -> np.ndarray:
        """n images [n, 3, H, W] in [0, 1] from the pipeline, one prompt per image."""
        if labels is None or len(labels) != n:
            raise ValueError("a text-conditioned model needs one prompt (label) per sample")
        self._activate()
        gen = torch.Generator(device="cpu").manual_seed(seed)
        out = []
        for lo in range(0, n, batch_size):
            result = self.pipe(list(labels[lo:lo + batch_size]), num_inference_steps=num_inference_steps or 50,
                               guidance_scale=guidance, generator=gen, output_type="np",
                               height=self.resolution, width=self.resolution)
            out.append(np.asarray(result.images, dtype=np.float32).transpose(0, 3, 1, 2))
        return np.concatenate(out)

    def save(self, directory: str | Path) -> Path:
        """The LoRA adapter as safetensors, and where the base comes from (the base is not copied)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self._adapter is not None:
            save_file({k: v.contiguous().cpu() for k, v in self._adapter.items()}, directory / LORA_FILE)
        (directory / WRAPPER_FILE).write_text(json.dumps({"family": "diffusion", "kind": "latent",
                                                          "base": self.name_or_path, "lora": self.lora,
                                                          "resolution": self.resolution}))
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> "LatentDiffusionModel":
        """A model saved by `save`: its base loaded again from where it came from, with the saved adapter."""
        wrapper = json.loads((Path(directory) / WRAPPER_FILE).read_text())
        lora = wrapper["lora"]
        base = cls.from_pretrained(wrapper["base"], device=device, lora_rank=lora["r"], lora_alpha=lora["lora_alpha"],
                                   lora_targets=lora["target_modules"], resolution=wrapper.get("resolution"))
        return base.load_adapter(directory)

    def load_adapter(self, directory: str | Path) -> "LatentDiffusionModel":
        """A clone of this base with the adapter saved in `directory` (none saved: the base itself)."""
        from safetensors.torch import load_file

        other = self.clone()
        path = Path(directory) / LORA_FILE
        other._adapter = load_file(path, device=str(self.device)) if path.exists() else None
        other._token = object()
        return other
