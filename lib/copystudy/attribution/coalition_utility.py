"""The royalty game's value: outputs of the full coalition, and their log-likelihood under every coalition.

The paper's utility of coalition S for an output x is log p_S(x), the log-likelihood of x under the
model trained on S's works. Outputs are generated once, from the full coalition's model, for every
owner's prompt; every coalition's model then scores all of them with the same noise plan (common
random numbers), so differences between coalitions are not swamped by Monte Carlo noise.
"""

from __future__ import annotations

import numpy as np

from copystudy.attribution.coalition_game import CoalitionGame


def utility_terms(game: CoalitionGame, images: np.ndarray, labels: np.ndarray, plan, batch_size: int = 512):
    """Variational-bound terms (bits) of every output under every coalition's model, all with the same
    noise plan: a VLBTerms with leading shape [2**n, n_outputs]."""
    from copystudy.compression.likelihood import VLBTerms, vlb_terms

    terms = game.for_each_coalition(lambda mask, model: vlb_terms(model, images, labels, plan, batch_size=batch_size),
                                    desc="coalition likelihoods")
    return VLBTerms.stack(terms)


def generate_outputs(game: CoalitionGame, samples_per_prompt: int, seed: int = 0, num_inference_steps=None,
                     guidance: float = 1.0):
    """Samples from the full-coalition model for every owner's prompt, with classifier-free guidance
    `guidance` (1 = none; a pretrained pipeline uses its own sampler, 50 steps unless told).

    Returns (outputs [N, C, H, W] quantised to 8 bits, prompts [N], prompted owner index [N])."""
    from copystudy.compression.likelihood import quantize

    full = game.model(range(game.n))
    owner = np.repeat(np.arange(game.n), samples_per_prompt)
    labels = np.array(game.prompts(), dtype=object if game.pretrained else np.int64)[owner]
    if game.pretrained:
        outputs = full.sample(len(labels), labels, seed=seed, num_inference_steps=num_inference_steps or 50,
                              guidance=guidance)
    else:
        outputs = full.sample(len(labels), labels, seed=seed, num_inference_steps=num_inference_steps,
                              guidance=guidance, null_label=game.null_id, progress_bar=False)
    return quantize(outputs), labels, owner


def generate_unprompted(game: CoalitionGame, n: int, seed: int = 0, num_inference_steps=None):
    """n samples of the full-coalition model with no prompt (the null id, or the empty text): what the
    model makes of everything it learnt. Returns (outputs quantised to 8 bits, labels [n])."""
    from copystudy.compression.likelihood import quantize

    full = game.model(range(game.n))
    if game.pretrained:
        labels = np.array([""] * n, dtype=object)
        outputs = full.sample(n, labels, seed=seed, num_inference_steps=num_inference_steps or 50, guidance=1.0)
    else:
        labels = np.full(n, game.null_id, np.int64)
        outputs = full.sample(n, labels, seed=seed, num_inference_steps=num_inference_steps, progress_bar=False)
    return quantize(outputs), labels
