"""Log-likelihood of an image under a DDPM, in bits, from the variational bound.

-log p(x0) <= L_prior + sum_{t>=1} L_t + L_0 (Ho et al. 2020, eq. 5; the "vb" terms of Nichol &
Dhariwal 2021, whose code this follows):
  L_prior = KL(q(x_T | x0) || N(0, I))                           (closed form, no model)
  L_t     = KL(q(x_t | x_{t+1}, x0) || p_theta(x_t | x_{t+1}))  for t = 1..T-1 (diffusers index t)
  L_0     = -log p_theta(x0 | x_1), a Gaussian discretised to the 256 levels of an 8-bit image.
The model's reverse variance is the posterior variance ("fixed_small", diffusers' default, with the
first entry clipped as in improved-diffusion) and its mean comes from the predicted x0, clipped to
[-1, 1] as the sampler does.

For a latent diffusion model (Stable Diffusion) the bound is computed in the VAE's latent space,
the model's own space: x0 is the latent of the (8-bit) output, x0_pred is not clipped, and L_0 is the
continuous Gaussian density of the latent instead of the discretised one. It is then a log *density*
of the latent, not a probability of the image: it can be positive, and only differences between
models (what a Shapley value is made of) are meaningful.

The sum over T-1 KL terms is estimated by stratified sampling: the timesteps 1..T-1 are cut into K
strata of (nearly) equal size and one timestep is drawn in each; L_0 is averaged over R noise draws.
A `NoisePlan` fixes every timestep and noise up front so that every model (every coalition) is
evaluated on the same draws: common random numbers, so differences between models are not drowned
in Monte Carlo noise. The standard error uses the collapsed-strata estimator (adjacent strata paired,
variance sum_j (Y_2j - Y_2j+1)^2: conservative) plus var(L_0)/R.

All terms are returned per image and per draw (`VLBTerms`), in bits; any linear function of the
utilities (a Shapley value, a difference between two coalitions) can be mapped over the terms to get
its own standard error under the same common random numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

LN2 = math.log(2.0)


# ---------------------------------------------------------------- closed-form pieces
def gaussian_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _log_diff_ndtr(a, b):
    """log(Phi(b) - Phi(a)) for a < b, stable in both tails."""
    # in the upper tail use Phi(b) - Phi(a) = Phi(-a) - Phi(-b)
    upper = a > 0
    hi = torch.where(upper, -a, b)
    lo = torch.where(upper, -b, a)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log(-torch.expm1(torch.clamp(log_lo - log_hi, max=-1e-300)))


def discretized_gaussian_log_likelihood(x, mean, log_scale, bins: int = 256):
    """log P(x) per element for x on the grid of `bins` levels in [-1, 1], under N(mean, exp(log_scale)^2)
    integrated over each level's bin (the two end bins extend to -inf and +inf). In nats."""
    half = 1.0 / (bins - 1)
    inv = torch.exp(-log_scale)
    lo = (x - mean - half) * inv
    hi = (x - mean + half) * inv
    middle = _log_diff_ndtr(lo, hi)
    left = torch.special.log_ndtr(hi)  # x at the lowest level: (-inf, x + half]
    right = torch.special.log_ndtr(-lo)  # x at the highest level: [x - half, inf)
    return torch.where(x < -1 + half, left, torch.where(x > 1 - half, right, middle))


def quantize(images: np.ndarray, bins: int = 256) -> np.ndarray:
    """Round images in [0, 1] to the `bins` levels of an 8-bit image (what a generated work is)."""
    return (np.round(np.clip(images, 0, 1) * (bins - 1)) / (bins - 1)).astype(np.float32)


@dataclass
class Schedule:
    """Float64 diffusion constants for the bound, from a diffusers DDPMScheduler."""

    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    posterior_log_variance: torch.Tensor  # clipped at t=0, as in improved-diffusion
    coef_x0: torch.Tensor
    coef_xt: torch.Tensor

    @classmethod
    def from_scheduler(cls, scheduler) -> "Schedule":
        betas = scheduler.betas.double()
        alphas = 1.0 - betas
        ac = torch.cumprod(alphas, 0)
        ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
        post_logvar = torch.log(torch.cat([post_var[1:2], post_var[1:]]))
        return cls(ac, ac_prev, post_logvar, betas * ac_prev.sqrt() / (1.0 - ac),
                   (1.0 - ac_prev) * alphas.sqrt() / (1.0 - ac))

    @property
    def T(self) -> int:
        return len(self.alphas_cumprod)


def prior_kl_bits(x0: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """L_prior per image (bits): x0 [N, C, H, W] in [-1, 1]."""
    ac = schedule.alphas_cumprod[-1]
    kl = gaussian_kl(ac.sqrt() * x0, torch.log(1.0 - ac).expand_as(x0), torch.zeros_like(x0), torch.zeros_like(x0))
    return kl.flatten(1).sum(1) / LN2


def gaussian_nll(x, mean, logvar):
    """-log N(x; mean, exp(logvar)) elementwise, in nats (a density: continuous data)."""
    return 0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 * torch.exp(-logvar))


def term_bits(x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: Schedule,
              continuous: bool = False) -> torch.Tensor:
    """The vb term at diffusers timestep t (L_0 decoder NLL if t == 0, else the KL L_t) per image, bits.

    x0, x_t in [-1, 1] (float64; any scale with continuous=True, for latents); t [N] long; eps: the
    model's noise prediction at (x_t, t). continuous: no clipping and a Gaussian density for L_0."""
    shape = (-1,) + (1,) * (x0.dim() - 1)
    ac = schedule.alphas_cumprod[t].view(shape)
    x0_pred = (x_t - (1 - ac).sqrt() * eps) / ac.sqrt()
    if not continuous:
        x0_pred = x0_pred.clamp(-1, 1)
    c0, ct = schedule.coef_x0[t].view(shape), schedule.coef_xt[t].view(shape)
    logvar = schedule.posterior_log_variance[t].view(shape).expand_as(x0)
    model_mean = c0 * x0_pred + ct * x_t
    true_mean = c0 * x0 + ct * x_t
    kl = gaussian_kl(true_mean, logvar, model_mean, logvar).flatten(1).sum(1)
    if continuous:
        nll = gaussian_nll(x0, model_mean, logvar).flatten(1).sum(1)
    else:
        nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * logvar).flatten(1).sum(1)
    return torch.where(t == 0, nll, kl) / LN2


# ---------------------------------------------------------------- common random numbers
@dataclass
class NoisePlan:
    """Timesteps and noises fixed up front, shared by every model evaluated with this plan.

    timesteps [N, K] (one per stratum of 1..T-1), stratum_sizes [K], noise [N, K, C, H, W],
    decoder_noise [N, R, C, H, W]. Image i of any batch uses row i.
    """

    timesteps: np.ndarray
    stratum_sizes: np.ndarray
    noise: np.ndarray
    decoder_noise: np.ndarray
    T: int

    @classmethod
    def make(cls, n_images: int, image_shape, T: int, n_strata: int = 32, n_decoder: int = 4, seed: int = 0) -> "NoisePlan":
        if n_strata < 2 or n_strata % 2:
            raise ValueError(f"n_strata must be an even number >= 2 (strata are paired for the standard error), got {n_strata}")
        if n_strata > T - 1:
            raise ValueError(f"n_strata={n_strata} exceeds the {T - 1} timesteps 1..T-1")
        if n_decoder < 2:
            raise ValueError(f"n_decoder must be >= 2 (for its standard error), got {n_decoder}")
        rng = np.random.default_rng(seed)
        edges = 1 + np.floor(np.arange(n_strata + 1) * (T - 1) / n_strata).astype(np.int64)
        sizes = np.diff(edges)
        timesteps = edges[:-1][None, :] + np.floor(rng.random((n_images, n_strata)) * sizes[None, :]).astype(np.int64)
        noise = rng.standard_normal((n_images, n_strata, *image_shape)).astype(np.float32)
        decoder_noise = rng.standard_normal((n_images, n_decoder, *image_shape)).astype(np.float32)
        return cls(timesteps, sizes, noise, decoder_noise, T)


@dataclass
class VLBTerms:
    """Monte Carlo terms of the bound, in bits, for any leading shape (images, coalitions, ...).

    prior [...]; decoder [..., R] (L_0 draws); strata [..., K] (stratum size x L_t at its drawn t).
    The NLL estimate is prior + mean(decoder) + sum(strata); utility = log-likelihood = -NLL.
    """

    prior: np.ndarray
    decoder: np.ndarray
    strata: np.ndarray

    def nll_bits(self) -> np.ndarray:
        return self.prior + self.decoder.mean(-1) + self.strata.sum(-1)

    def log_likelihood_bits(self) -> np.ndarray:
        return -self.nll_bits()

    def standard_error(self) -> np.ndarray:
        """Monte Carlo standard error of nll_bits() (equally of the log-likelihood)."""
        r = self.decoder.shape[-1]
        var_decoder = self.decoder.var(-1, ddof=1) / r
        pairs = self.strata[..., 0::2] - self.strata[..., 1::2]
        return np.sqrt(var_decoder + (pairs**2).sum(-1))

    def map(self, fn) -> "VLBTerms":
        """Apply a linear map over the leading axes to every term (keeps the draw axis last)."""
        def apply(a, draws):
            moved = np.moveaxis(a, -1, 0) if draws else a
            out = np.stack([fn(m) for m in moved]) if draws else fn(moved)
            return np.moveaxis(out, 0, -1) if draws else out
        return VLBTerms(apply(self.prior, False), apply(self.decoder, True), apply(self.strata, True))

    def __getitem__(self, index) -> "VLBTerms":
        return VLBTerms(self.prior[index], self.decoder[index], self.strata[index])

    @staticmethod
    def stack(terms: list["VLBTerms"]) -> "VLBTerms":
        return VLBTerms(np.stack([t.prior for t in terms]), np.stack([t.decoder for t in terms]),
                        np.stack([t.strata for t in terms]))


def _eps_fn(model):
    """A noise-prediction function (x_t, t, labels) -> eps from a DiffusionModel or a callable."""
    if hasattr(model, "noise_prediction"):
        return model.noise_prediction
    return model


@torch.no_grad()
def vlb_terms(model, images: np.ndarray, labels, plan: NoisePlan, scheduler=None, batch_size: int = 512) -> VLBTerms:
    """Terms of the variational bound for each image under `model`, with the plan's draws.

    model: a copystudy DiffusionModel (or a callable eps(x_t, t, labels) with `scheduler` given), or a
    LatentDiffusionModel (the bound of the output's latent, labels are prompts);
    images: [N, C, H, W] in [0, 1], quantised to 8 bits; labels: conditioning ids [N] or None.
    """
    scheduler = scheduler if scheduler is not None else model.scheduler
    schedule = Schedule.from_scheduler(scheduler)
    if schedule.T != plan.T:
        raise ValueError(f"the noise plan was made for T={plan.T} timesteps, the model has {schedule.T}")
    eps_fn = _eps_fn(model)
    n = len(images)
    if n > len(plan.timesteps):
        raise ValueError(f"{n} images but the noise plan covers {len(plan.timesteps)}")
    latent = getattr(model, "text_conditioned", False)
    if latent:  # the model's own space: VAE latents of the 8-bit outputs; prompts -> text-encoder states
        x0 = model.to_model_space(quantize(np.asarray(images))).double().cpu()
        y = model.condition(labels)
    else:
        x0 = torch.as_tensor(quantize(np.asarray(images)), dtype=torch.float64) * 2 - 1
        y = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)
    K, R = plan.timesteps.shape[1], plan.decoder_noise.shape[1]
    # one flat list of (image, timestep, noise) evaluations: K strata then R decoder draws per image
    img = np.repeat(np.arange(n), K + R)
    t_all = np.concatenate([plan.timesteps[:n], np.zeros((n, R), np.int64)], axis=1).reshape(-1)
    noise_all = np.concatenate([plan.noise[:n], plan.decoder_noise[:n]], axis=1).reshape(n * (K + R), *x0.shape[1:])
    out = np.empty(n * (K + R))
    for lo in range(0, len(img), batch_size):
        hi = min(lo + batch_size, len(img))
        idx = torch.as_tensor(img[lo:hi])
        t = torch.as_tensor(t_all[lo:hi])
        noise = torch.as_tensor(noise_all[lo:hi], dtype=torch.float64)
        ac = schedule.alphas_cumprod[t].view(-1, *([1] * (x0.dim() - 1)))
        x_t = ac.sqrt() * x0[idx] + (1 - ac).sqrt() * noise
        eps = eps_fn(x_t.float(), t, None if y is None else y[idx.to(y.device)]).double().cpu()
        out[lo:hi] = term_bits(x0[idx], x_t, t, eps, schedule, continuous=latent).numpy()
    out = out.reshape(n, K + R)
    return VLBTerms(prior_kl_bits(x0, schedule).numpy(), out[:, K:], out[:, :K] * plan.stratum_sizes[None, :])


@torch.no_grad()
def exact_vlb_bits(model, images: np.ndarray, labels, noise: np.ndarray, scheduler=None, batch_size: int = 512) -> np.ndarray:
    """The bound with every timestep t = 0..T-1 evaluated once (noise [N, T, C, H, W]); for checks on small T."""
    scheduler = scheduler if scheduler is not None else model.scheduler
    T = scheduler.config.num_train_timesteps
    plan = NoisePlan(np.tile(np.arange(1, T), (len(images), 1)), np.ones(T - 1, np.int64),
                     noise[:, 1:], noise[:, :1], T)
    terms = vlb_terms(model, images, labels, plan, scheduler, batch_size)
    return terms.nll_bits()
