"""One diffusion model per coalition of copyright owners, trained once and cached.

The game: a base model is pre-trained on public data; the model of coalition S fine-tunes the base
on the union of S's works (the empty coalition is the base). Conditioning ids are laid out as
  0 .. P-1          public classes (public typefaces, public digit classes),
  P .. P+m-1        one prompt per style/brand (what a prompt names; an owner's works carry it),
  P+m               "null": no prompt.
A fraction of every training set is repeated with the null id (classifier-free-guidance style), and
after pre-training every prompt embedding is set to the null embedding. So a coalition that lacks the
owner a prompt names answers that prompt as its unconditional model of public + S's works: owners
with similar works still raise the likelihood of an output, as in the paper's text-to-image setting.

With a pretrained text-to-image model (a `model` spec with name_or_path: Stable Diffusion) the same
game is played the paper's way: prompts come from a template ("a painting in the style of {owner}"),
the base is the pretrained model (plus, if there is public data and pretrain.steps > 0, a "null"
LoRA trained on it), and coalition S is the base with a LoRA adapter fine-tuned on S's works; only
the adapters are cached.

Every model is cached under cache_dir/<key>/ (safetensors via DiffusionModel.save) where key hashes
everything that determines it: the training images and labels (in a canonical order, so the same
works reached by different owner splits give the same model), the model and training settings, the
seed, the base model's key and the code version (the source of this module and of the model class).
An interrupted run resumes: finished models are loaded, the rest are trained.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .models.diffusion import DiffusionModel, LatentDiffusionModel
from .training import progress

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir(path: str | Path | None = None) -> Path:
    """The model cache: `path` if given, else $COPYSTUDY_CACHE, else <repo>/cache (git-ignored)."""
    chosen = path or os.environ.get("COPYSTUDY_CACHE") or REPO_ROOT / "cache"
    chosen = Path(chosen).expanduser()
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


def code_version() -> str:
    """Hash of the code that determines a trained model: the model class, the training loop and data
    assembly of this module, and the learning-rate schedule (not unrelated edits elsewhere)."""
    from . import training
    from .models import diffusion

    h = hashlib.sha256()
    h.update(inspect.getsource(diffusion.DiffusionModel).encode())  # the model class: architecture, save/load
    h.update(inspect.getsource(training.cosine_lr).encode())  # the only training helper _train uses
    h.update(inspect.getsource(_finetune_data).encode())
    h.update(inspect.getsource(_train).encode())
    h.update(inspect.getsource(CoalitionGame._pixel_base).encode())
    return h.hexdigest()[:16]


def lora_code_version() -> str:
    """Hash of the code that determines a LoRA adapter of a pretrained model."""
    from .models import diffusion

    h = hashlib.sha256()
    h.update(inspect.getsource(diffusion.LatentDiffusionModel).encode())
    h.update(inspect.getsource(CoalitionGame._pretrained_base).encode())
    return h.hexdigest()[:16]


def fingerprint(*parts) -> str:
    """sha256 over numpy arrays (dtype, shape, bytes) and JSON-able values, in order."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray) and part.dtype == object:  # prompts
            h.update(json.dumps([str(v) for v in part.reshape(-1)]).encode())
        elif isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"array{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"|")
    return h.hexdigest()[:24]


def canonical_order(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices sorting works by the hash of (image, label): a data set's order no longer depends on
    how it was assembled from owners."""
    def label_bytes(lab):  # a conditioning id, or a prompt
        return str(lab).encode() if isinstance(lab, str) else int(lab).to_bytes(8, "little")

    keys = [hashlib.sha256(np.ascontiguousarray(im).tobytes() + label_bytes(lab)).hexdigest()
            for im, lab in zip(images, labels)]
    return np.argsort(np.array(keys), kind="stable")


@dataclass
class TrainConfig:
    """How a model is trained (pre-training or one coalition's fine-tune)."""

    steps: int
    batch_size: int = 32
    lr: float = 1e-3
    uncond_fraction: float = 0.25  # share of works repeated with the null id
    seed: int = 0
    embed_lr_scale: float = 1.0  # learning rate of the prompt embeddings, as a multiple of lr
    public_replay: float = 0.0  # fine-tunes: share of every batch drawn from the public data

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _finetune_data(images, labels, null_id: int, uncond_fraction: float, seed: int):
    """Canonically ordered works plus a seeded subset repeated with the null id."""
    order = canonical_order(images, labels)
    images, labels = np.asarray(images)[order], np.asarray(labels)[order]
    rng = np.random.default_rng(seed)
    n_null = int(round(uncond_fraction * len(images)))
    pick = np.sort(rng.choice(len(images), size=n_null, replace=False)) if n_null else np.zeros(0, np.int64)
    return (np.concatenate([images, images[pick]]),
            np.concatenate([labels, np.full(len(pick), null_id, labels.dtype)]))


def _train(model: DiffusionModel, images, labels, null_id: int, cfg: TrainConfig, desc: str,
           public=None) -> float:
    """Epsilon-prediction training as DiffusionModel.fit, plus two things a fine-tune needs: a larger
    learning rate for the class (prompt) embeddings, which Adam would otherwise move by only ~lr per
    step from where they start, and a share `public_replay` of every batch drawn from `public`
    (images, labels), so every coalition, the empty one included, gets the same extra training on
    public data and only the owners' works differ. Returns the wall time in seconds."""
    from .training import cosine_lr

    start = time.perf_counter()
    sets = []
    n_public = int(round(cfg.public_replay * cfg.batch_size)) if public is not None and len(images) else 0
    if public is not None and not len(images):
        n_public = cfg.batch_size  # the empty coalition: the same recipe on public data only
    if n_public < cfg.batch_size:
        sets.append((_finetune_data(images, labels, null_id, cfg.uncond_fraction, cfg.seed), cfg.batch_size - n_public))
    if n_public:
        sets.append((_finetune_data(public[0], public[1], null_id, cfg.uncond_fraction, cfg.seed), n_public))
    tensors = [(torch.as_tensor(x, dtype=torch.float32) * 2 - 1, torch.as_tensor(y), k) for (x, y), k in sets]
    unet, scheduler = model.unet, model.scheduler
    embed = [p for n, p in unet.named_parameters() if n.startswith("class_embedding")]
    rest = [p for n, p in unet.named_parameters() if not n.startswith("class_embedding")]
    groups = [{"params": rest, "scale": 1.0}, {"params": embed, "scale": cfg.embed_lr_scale}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    T = scheduler.config.num_train_timesteps
    unet.train()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, cfg.steps, cfg.lr) * group["scale"]
        xs, ys = [], []
        for x, y, k in tensors:
            idx = torch.randint(0, len(x), (k,), generator=gen)
            xs.append(x[idx])
            ys.append(y[idx])
        x0, y = torch.cat(xs), torch.cat(ys)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, T, (len(x0),), generator=gen)
        loss = torch.nn.functional.mse_loss(unet(scheduler.add_noise(x0, noise, t), t, class_labels=y).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
    unet.eval()
    return time.perf_counter() - start


def _load_or_train(key: str, cache: Path, make, kind: str, load=DiffusionModel.load):
    """Load cache/<key> with load(folder) if complete, else make() -> (model, meta) and save it
    atomically. Returns (model, meta, trained)."""
    target = cache / key
    if (target / "meta.json").exists():
        return load(target), json.loads((target / "meta.json").read_text()), False
    model, meta = make()
    tmp = cache / f".{key}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    (tmp / "meta.json").write_text(json.dumps({"kind": kind, **meta}, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return model, meta, True


@dataclass
class CoalitionGame:
    """Owners' works and the public data of one royalty game, plus how its models are built."""

    owners: list[str]
    works: list[np.ndarray]  # per owner [n_i, C, H, W] in [0, 1]
    work_labels: list[np.ndarray]  # per owner: the prompt id (conditioning id) of each work
    public_images: np.ndarray
    public_labels: np.ndarray
    num_classes: int  # public classes + prompts + 1 (null)
    model_config: dict
    pretrain: TrainConfig
    finetune: TrainConfig
    cache: Path
    log: list[dict] = field(default_factory=list)  # one entry per model obtained: trained or loaded
    loaded_base: object = field(default=None, repr=False)  # a pretrained base, loaded once per game
    _base: object = field(default=None, init=False, repr=False)  # the empty coalition's model, once obtained

    @property
    def pretrained(self) -> bool:
        """A pretrained text-to-image model with LoRA fine-tunes, rather than a small UNet trained here."""
        return bool(self.model_config.get("name_or_path"))

    @property
    def null_id(self) -> int:
        return self.num_classes - 1

    @property
    def n(self) -> int:
        return len(self.owners)

    def base_key(self) -> str:
        if self.pretrained:
            where = {k: v for k, v in self.model_config.items() if k not in ("device", "family")}
            return fingerprint("pretrained-base", self.public_images, self.public_labels, where,
                               self.pretrain.as_dict(), lora_code_version())
        return fingerprint("base", self.public_images, self.public_labels, self.num_classes,
                           self.model_config, self.pretrain.as_dict(), self.prompt_ids(), code_version())

    def prompt_ids(self) -> list[int]:
        return sorted({int(v) for labels in self.work_labels for v in np.unique(labels)})

    def base_model(self):
        """The model of the empty coalition: trained here on the public data, or the pretrained model
        (obtained once per game; every coalition fine-tunes a clone of it)."""
        if self._base is None:
            self._base = self._pretrained_base() if self.pretrained else self._pixel_base()
        return self._base

    def _pretrained_base(self) -> LatentDiffusionModel:
        """The pretrained model, plus a "null" LoRA on the public data when there is any and
        pretrain.steps > 0 (the re-implementation's null LoRA)."""
        from . import models

        if self.loaded_base is None:
            self.loaded_base = models.build({"family": "diffusion", **self.model_config})
        pretrained = self.loaded_base
        if not len(self.public_images) or self.pretrain.steps <= 0:
            return pretrained

        def make():
            model = pretrained.clone()
            start = time.perf_counter()
            model.fit(self.public_images, self.pretrain.steps, self.pretrain.batch_size, self.pretrain.lr,
                      labels=self.public_labels, seed=self.pretrain.seed, desc="null LoRA on public data")
            return model, {"train_seconds": time.perf_counter() - start, "n_works": int(len(self.public_images))}

        model, meta, trained = _load_or_train(self.base_key(), self.cache, make, "base", pretrained.load_adapter)
        self.log.append({"kind": "base", "coalition": (), "trained": trained, "train_seconds": meta["train_seconds"]})
        return model

    def _pixel_base(self) -> DiffusionModel:
        """The pre-trained base (empty coalition), with every prompt embedding set to the null one."""
        def make():
            model = DiffusionModel.from_config(num_classes=self.num_classes, seed=self.pretrain.seed,
                                               **self.model_config)
            seconds = _train(model, self.public_images, self.public_labels, self.null_id, self.pretrain,
                             "pre-train base")
            with torch.no_grad():
                emb = model.unet.class_embedding.weight
                for p in self.prompt_ids():
                    emb[p] = emb[self.null_id]
            return model, {"train_seconds": seconds, "n_works": int(len(self.public_images))}

        model, meta, trained = _load_or_train(self.base_key(), self.cache, make, "base")
        self.log.append({"kind": "base", "coalition": (), "trained": trained, "train_seconds": meta["train_seconds"]})
        return model

    def coalition_data(self, members) -> tuple[np.ndarray, np.ndarray]:
        members = sorted(members)
        if not members:
            return (np.zeros((0, *self.works[0].shape[1:]), np.float32),
                    np.zeros(0, self.work_labels[0].dtype))
        return (np.concatenate([self.works[i] for i in members]),
                np.concatenate([self.work_labels[i] for i in members]))

    def model(self, members):
        """The model of coalition `members` (owner indices): the base fine-tuned on their works."""
        members = tuple(sorted(set(int(i) for i in members)))
        if self.pretrained:
            return self._lora_model(members)
        if not members and self.finetune.public_replay <= 0:
            return self.base_model()
        images, labels = self.coalition_data(members)
        order = canonical_order(images, labels)
        key = fingerprint("finetune", self.base_key(), images[order], labels[order], self.finetune.as_dict(),
                          code_version())

        def make():
            model = self.base_model().clone()
            names = "+".join(self.owners[i] for i in members) or "(public only)"
            seconds = _train(model, images, labels, self.null_id, self.finetune, f"fine-tune {names}",
                             public=(self.public_images, self.public_labels))
            return model, {"train_seconds": seconds, "n_works": int(len(images)),
                           "owners": [self.owners[i] for i in members]}

        model, meta, trained = _load_or_train(key, self.cache, make, "finetune")
        self.log.append({"kind": "finetune", "coalition": members, "trained": trained,
                         "train_seconds": meta["train_seconds"]})
        return model

    def _lora_model(self, members: tuple) -> LatentDiffusionModel:
        """The pretrained base with a LoRA adapter fine-tuned on the coalition's works (the empty
        coalition is the base itself, as in the paper)."""
        base = self.base_model()
        if not members:
            return base
        images, labels = self.coalition_data(members)
        order = canonical_order(images, labels)
        key = fingerprint("lora", self.base_key(), images[order], labels[order], self.finetune.as_dict(),
                          lora_code_version())

        def make():
            model = base.clone()
            start = time.perf_counter()
            model.fit(images[order], self.finetune.steps, self.finetune.batch_size, self.finetune.lr,
                      labels=labels[order], seed=self.finetune.seed, progress_bar=False)
            return model, {"train_seconds": time.perf_counter() - start, "n_works": int(len(images)),
                           "owners": [self.owners[i] for i in members]}

        model, meta, trained = _load_or_train(key, self.cache, make, "finetune", base.load_adapter)
        self.log.append({"kind": "finetune", "coalition": members, "trained": trained,
                         "train_seconds": meta["train_seconds"]})
        return model

    def noise_plan(self, n_images: int, n_strata: int, n_decoder: int, seed: int):
        """Common random numbers for the bound, in the model's own space (pixels, or VAE latents)."""
        from .likelihood import NoisePlan

        base = self.base_model()
        shape = base.latent_shape if self.pretrained else base.image_shape
        return NoisePlan.make(n_images, shape, base.scheduler.config.num_train_timesteps,
                              n_strata=n_strata, n_decoder=n_decoder, seed=seed)

    def for_each_coalition(self, fn, desc: str = "coalitions"):
        """fn(mask, model) for every coalition mask 0..2**n-1 (bit i = owner i); returns the results.

        Models are obtained one at a time (trained or loaded) and dropped after use."""
        results = []
        for mask in progress(range(2**self.n), desc=desc):
            members = [i for i in range(self.n) if mask >> i & 1]
            model = self.model(members)
            results.append(fn(mask, model))
        return results

    def training_summary(self) -> dict:
        trained = {e["coalition"] for e in self.log if e["trained"] and e["kind"] == "finetune"}
        finetunes = {e["coalition"]: e["train_seconds"] for e in self.log if e["kind"] == "finetune"}
        return {"models_trained": sum(e["trained"] for e in self.log),
                "finetunes_trained": len(trained),
                "finetune_seconds_mean": float(np.mean(list(finetunes.values()))) if finetunes else 0.0,
                "finetune_seconds_total": float(np.sum(list(finetunes.values()))) if finetunes else 0.0}


def build_game(owner_works: dict[str, np.ndarray], public: dict[str, np.ndarray], model_config: dict,
               pretrain: TrainConfig, finetune: TrainConfig, cache: Path,
               prompt_template: str = "a painting in the style of {owner}") -> CoalitionGame:
    """A game with one prompt per owner: public classes get ids 0..P-1, owner i the prompt id P+i.

    With a pretrained model (model_config has name_or_path) the prompts are text from
    `prompt_template`, and public data (for an optional null LoRA) may be empty."""
    pretrained = bool(model_config.get("name_or_path"))
    bad = [name for name in owner_works if "+" in name]
    if bad:
        raise ValueError(f"owner names may not contain '+' (the coalition separator): {bad}")
    if not owner_works:
        raise ValueError("a royalty game needs at least one owner")
    if not public and not pretrained:
        raise ValueError("a royalty game needs public data for the base model")
    if pretrained and "{owner}" not in prompt_template:
        raise ValueError(f"prompt_template must contain {{owner}}, got {prompt_template!r}")

    def labels(name: str, index: int, n: int) -> np.ndarray:  # a text prompt, or a conditioning id
        if pretrained:
            return np.array([prompt_template.format(owner=name)] * n, dtype=object)
        return np.full(n, index, np.int64)

    P = len(public)
    owners = list(owner_works)
    works = [np.asarray(owner_works[o], np.float32) for o in owners]
    if public:
        public_images = np.concatenate([np.asarray(v, np.float32) for v in public.values()])
        public_labels = np.concatenate([labels(k, j, len(v)) for j, (k, v) in enumerate(public.items())])
    else:
        public_images, public_labels = np.zeros((0, *works[0].shape[1:]), np.float32), np.zeros(0, object)
    work_labels = [labels(o, P + i, len(w)) for i, (o, w) in enumerate(zip(owners, works))]
    return CoalitionGame(owners, works, work_labels, public_images, public_labels,
                         0 if pretrained else P + len(owners) + 1, dict(model_config), pretrain, finetune, Path(cache))


def split_game(game: CoalitionGame, owner: int, seed: int = 0) -> CoalitionGame:
    """Shell companies: owner `owner`'s works split at random between two owners (same prompt, same
    base). Coalitions holding both halves or neither train on the same works as before: cache hits."""
    works = game.works[owner]
    if len(works) < 2:
        raise ValueError(f"owner {game.owners[owner]!r} has fewer than 2 works to split")
    perm = np.random.default_rng(seed).permutation(len(works))
    halves = [np.sort(perm[: len(works) // 2]), np.sort(perm[len(works) // 2:])]
    name = game.owners[owner]
    owners, new_works, new_labels = [], [], []
    for i, o in enumerate(game.owners):
        if i == owner:
            for j, half in enumerate(halves, start=1):
                owners.append(f"{name}-shell{j}")
                new_works.append(works[half])
                new_labels.append(game.work_labels[i][half])
        else:
            owners.append(o)
            new_works.append(game.works[i])
            new_labels.append(game.work_labels[i])
    return CoalitionGame(owners, new_works, new_labels, game.public_images, game.public_labels, game.num_classes,
                         game.model_config, game.pretrain, game.finetune, game.cache, loaded_base=game.loaded_base)


def utility_terms(game: CoalitionGame, images: np.ndarray, labels: np.ndarray, plan, batch_size: int = 512):
    """Variational-bound terms (bits) of every output under every coalition's model, all with the same
    noise plan (common random numbers): a VLBTerms with leading shape [2**n, n_outputs]."""
    from .likelihood import VLBTerms, vlb_terms

    terms = game.for_each_coalition(lambda mask, model: vlb_terms(model, images, labels, plan, batch_size=batch_size),
                                    desc="coalition likelihoods")
    return VLBTerms.stack(terms)


@torch.no_grad()
def guided_sample(model: DiffusionModel, labels, null_id: int, guidance: float = 1.0, seed: int = 0,
                  num_inference_steps: int | None = None, batch_size: int = 256) -> np.ndarray:
    """Ancestral DDPM sampling with classifier-free guidance (Ho & Salimans 2022), as text-to-image
    models are sampled: eps = eps(x, null) + guidance * (eps(x, prompt) - eps(x, null)).
    guidance = 1 is plain conditional sampling. Returns [N, C, H, W] in [0, 1]."""
    import copy

    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    gen = torch.Generator().manual_seed(seed)
    scheduler = copy.deepcopy(model.scheduler)
    scheduler.set_timesteps(num_inference_steps or scheduler.config.num_train_timesteps)
    out = []
    for lo in range(0, len(labels), batch_size):
        y = labels[lo:lo + batch_size]
        x = torch.randn((len(y), *model.image_shape), generator=gen)
        null = torch.full_like(y, null_id)
        for t in scheduler.timesteps:
            tt = t.expand(len(x))
            eps = model.noise_prediction(x, tt, y)
            if guidance != 1.0:
                eps_null = model.noise_prediction(x, tt, null)
                eps = eps_null + guidance * (eps - eps_null)
            x = scheduler.step(eps, t, x, generator=gen).prev_sample
        out.append(((x.clamp(-1, 1) + 1) / 2).numpy())
    return np.concatenate(out)


def generate_outputs(game: CoalitionGame, samples_per_prompt: int, seed: int = 0, num_inference_steps=None,
                     guidance: float = 1.0):
    """Samples from the full-coalition model for every owner's prompt (classifier-free guidance
    `guidance`, 1 = none).

    Returns (outputs [N, C, H, W] quantised to 8 bits, conditioning ids [N], prompted owner index [N])."""
    from .likelihood import quantize

    full = game.model(range(game.n))
    owner = np.repeat(np.arange(game.n), samples_per_prompt)
    if game.pretrained:  # the pipeline's own sampler, with classifier-free guidance
        labels = np.array([labels[0] for labels in game.work_labels], dtype=object)[owner]
        outputs = full.sample(len(labels), labels, seed=seed, num_inference_steps=num_inference_steps or 50,
                              guidance_scale=guidance)
        return quantize(outputs), labels, owner
    prompt_ids = [int(np.unique(labels)[0]) for labels in game.work_labels]
    labels = np.array(prompt_ids, np.int64)[owner]
    outputs = guided_sample(full, labels, game.null_id, guidance, seed=seed, num_inference_steps=num_inference_steps)
    return quantize(outputs), labels, owner
