"""The diffusion variational bound on cases with a known answer."""

import math

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from scipy.stats import norm

from copystudy.compression.likelihood import (
    NoisePlan, Schedule, VLBTerms, discretized_gaussian_log_likelihood, exact_vlb_bits, gaussian_kl, quantize,
    vlb_terms,
)


def test_gaussian_kl_matches_torch_distributions():
    rng = np.random.default_rng(0)
    m1, m2 = (torch.as_tensor(rng.normal(size=20)) for _ in range(2))
    lv1, lv2 = (torch.as_tensor(rng.normal(size=20)) for _ in range(2))
    ours = gaussian_kl(m1, lv1, m2, lv2)
    p = torch.distributions.Normal(m1, torch.exp(0.5 * lv1))
    q = torch.distributions.Normal(m2, torch.exp(0.5 * lv2))
    torch.testing.assert_close(ours, torch.distributions.kl_divergence(p, q))


def test_discretized_gaussian_sums_to_one_and_matches_scipy():
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)
    mean, log_scale = torch.tensor(0.3, dtype=torch.float64), torch.tensor(math.log(0.05), dtype=torch.float64)
    logp = discretized_gaussian_log_likelihood(levels, mean.expand(256), log_scale.expand(256))
    assert abs(torch.exp(logp).sum().item() - 1.0) < 1e-9
    x = levels[100].item()
    expected = norm.cdf((x + 1 / 255 - 0.3) / 0.05) - norm.cdf((x - 1 / 255 - 0.3) / 0.05)
    assert abs(math.exp(logp[100].item()) - expected) < 1e-12
    # far tail stays finite
    far = discretized_gaussian_log_likelihood(levels[:1] + 2 / 255, torch.tensor([0.99], dtype=torch.float64),
                                              torch.tensor([math.log(0.001)], dtype=torch.float64))
    assert torch.isfinite(far).all() and far.item() < -1e4


def oracle(x0, schedule):
    """A model that knows x0: its noise prediction recovers the true noise, so every KL term is 0."""
    def eps(x_t, t, labels):
        ac = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
        return ((x_t.double() - ac.sqrt() * x0) / (1 - ac).sqrt()).float()
    return eps


def test_bound_of_an_oracle_model_has_closed_form():
    """Oracle: KL terms vanish (up to float32 rounding), the decoder mean at t=0 is x0 exactly, so the
    bound is the prior KL plus, per pixel, -log2 of the Gaussian mass of x0's bin (one-sided at 0 and 1)."""
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    schedule = Schedule.from_scheduler(scheduler)
    rng = np.random.default_rng(0)
    image = quantize(rng.random((1, 1, 4, 4)))
    image[0, 0, 0, :2] = [0.0, 1.0]
    x0 = torch.as_tensor(image, dtype=torch.float64) * 2 - 1
    plan = NoisePlan.make(1, (1, 4, 4), 1000, n_strata=16, n_decoder=3, seed=0)
    terms = vlb_terms(oracle(x0, schedule), image, None, plan, scheduler=scheduler)
    assert np.abs(terms.strata).max() < 1e-4
    sd = math.exp(0.5 * schedule.posterior_log_variance[0].item())
    interior = -math.log2(norm.cdf(1 / 255 / sd) - norm.cdf(-1 / 255 / sd))
    edge = -math.log2(norm.cdf(1 / 255 / sd))
    np.testing.assert_allclose(terms.decoder, 14 * interior + 2 * edge, rtol=1e-6)
    ac_T = schedule.alphas_cumprod[-1].item()
    x = x0.numpy().ravel()
    prior = np.sum(0.5 * (-1 - math.log(1 - ac_T) + (1 - ac_T) + ac_T * x**2)) / math.log(2)
    np.testing.assert_allclose(terms.prior, prior, rtol=1e-9)
    assert abs(terms.nll_bits()[0] - (prior + 14 * interior + 2 * edge)) < 1e-3


def test_stratified_estimate_is_exact_with_one_timestep_per_stratum():
    """With T-1 strata of one timestep each, the estimate equals the full sum over t (same noises)."""
    from copystudy.models.diffusion import DiffusionModel

    model = DiffusionModel.from_config(image_size=4, block_channels=(8, 16), attention=False, num_classes=2,
                                       num_train_timesteps=21, seed=0)
    rng = np.random.default_rng(1)
    images = quantize(rng.random((3, 1, 4, 4)))
    labels = np.array([0, 1, 1])
    noise = rng.standard_normal((3, 21, 1, 4, 4)).astype(np.float32)
    exact = exact_vlb_bits(model, images, labels, noise)
    plan = NoisePlan(np.tile(np.arange(1, 21), (3, 1)), np.ones(20, np.int64), noise[:, 1:], noise[:, :1].repeat(2, 1), 21)
    terms = vlb_terms(model, images, labels, plan)
    np.testing.assert_allclose(terms.nll_bits(), exact, rtol=1e-9)
    # stratified sampling with fewer strata is unbiased: its mean over seeds approaches the full-sum
    # mean over noises; the reported standard error is of the right size (within a factor of 3)
    estimates, ses = [], []
    for seed in range(40):
        p = NoisePlan.make(3, (1, 4, 4), 21, n_strata=4, n_decoder=2, seed=seed)
        t = vlb_terms(model, images, labels, p)
        estimates.append(t.nll_bits())
        ses.append(t.standard_error())
    full = np.mean([exact_vlb_bits(model, images, labels, np.random.default_rng(100 + s).standard_normal(
        (3, 21, 1, 4, 4)).astype(np.float32)) for s in range(40)], axis=0)
    estimates = np.array(estimates)
    spread = estimates.std(0)
    assert np.all(np.abs(estimates.mean(0) - full) < 4 * spread / math.sqrt(40) + 1.0)
    ratio = np.mean(ses, 0) / spread
    assert np.all((ratio > 1 / 3) & (ratio < 3))


def test_terms_map_and_stack():
    a = VLBTerms(np.ones(3), np.ones((3, 2)), np.arange(12.0).reshape(3, 4))
    b = VLBTerms.stack([a, a])
    assert b.nll_bits().shape == (2, 3)
    diff = b.map(lambda v: v[1] - v[0])
    np.testing.assert_allclose(diff.nll_bits(), 0)
    assert np.all(diff.standard_error() == 0)


def test_plan_validation():
    with pytest.raises(ValueError, match="even"):
        NoisePlan.make(2, (1, 4, 4), 100, n_strata=5)
    with pytest.raises(ValueError, match="n_decoder"):
        NoisePlan.make(2, (1, 4, 4), 100, n_strata=4, n_decoder=1)


def test_latent_bound_is_unclipped_and_continuous():
    """In latent space (values beyond [-1, 1]) a perfect noise prediction costs 0 bits in every KL term,
    which the clipped pixel-space bound cannot give; L_0 is then a Gaussian density."""
    import math

    from diffusers import DDPMScheduler

    from copystudy.compression import likelihood as L

    schedule = L.Schedule.from_scheduler(DDPMScheduler(num_train_timesteps=50, beta_schedule="scaled_linear"))
    gen = torch.Generator().manual_seed(0)
    x0 = 3 * torch.randn((4, 4, 2, 2), generator=gen, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    t = torch.tensor([1, 10, 30, 49])
    ac = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = ac.sqrt() * x0 + (1 - ac).sqrt() * noise
    assert torch.allclose(L.term_bits(x0, x_t, t, noise, schedule, continuous=True), torch.zeros(4, dtype=torch.float64), atol=1e-9)
    assert (L.term_bits(x0, x_t, t, noise, schedule) > 1).all()  # clipping to [-1, 1] costs bits
    mean, logvar = torch.tensor([0.5]), torch.tensor([math.log(0.25)])
    expected = -torch.distributions.Normal(mean, 0.5).log_prob(torch.tensor([1.0]))
    assert torch.allclose(L.gaussian_nll(torch.tensor([1.0]), mean, logvar), expected)
