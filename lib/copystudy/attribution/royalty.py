"""Royalty shares from a coalition game (Wang et al. 2024) and the baselines beside it.

Shapley Royalty Share: phi_i averaged over a prompt's outputs, negatives clipped to 0, normalised to
sum to 1. Baselines: leave-one-out (v(N) - v(N - i), clipped and normalised the same way) and a
similarity attribution that pays owners by how many of an output's nearest works are theirs.
"""

from __future__ import annotations

import numpy as np

from copystudy.memorization.distances import pairwise_distances
from copystudy.attribution.shapley import exact_shapley, leave_one_out


def royalty_shares(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Clip at 0 and normalise along `axis` (the owner axis) so shares sum to 1.

    When no owner has a positive value nobody has added anything to the output, so every share is 0
    (the revenue stays with the platform); such a row sums to 0, not 1.
    """
    clipped = np.clip(np.asarray(values, dtype=float), 0.0, None)
    total = clipped.sum(axis=axis, keepdims=True)
    return np.divide(clipped, total, out=np.zeros_like(clipped), where=total > 0)


def shapley_royalty_shares(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shapley values and royalty shares for one prompt.

    table: [2**n] or [2**n, n_outputs] utilities (outputs of the same prompt on the last axis).
    Returns (phi [n], shares [n]) with phi averaged over outputs before clipping.
    """
    phi = exact_shapley(np.asarray(table, dtype=float))
    if phi.ndim > 1:
        phi = phi.reshape(phi.shape[0], -1).mean(axis=1)
    return phi, royalty_shares(phi)


def leave_one_out_shares(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out values (averaged over outputs) and their clipped, normalised shares."""
    loo = leave_one_out(np.asarray(table, dtype=float))
    if loo.ndim > 1:
        loo = loo.reshape(loo.shape[0], -1).mean(axis=1)
    return loo, royalty_shares(loo)


def similarity_shares(outputs: np.ndarray, owner_works: list[np.ndarray], k: int = 10) -> np.ndarray:
    """Similarity attribution: an output pays owner i the fraction of its k nearest works (RMS pixel
    distance, over all owners' works pooled) that belong to i; shares are averaged over the outputs.

    A content-based baseline that needs no model: it sees only pixels, not what the model learnt.
    """
    works = np.concatenate([np.asarray(w) for w in owner_works])
    owner_of = np.concatenate([np.full(len(w), i) for i, w in enumerate(owner_works)])
    k = min(k, len(works))
    d = pairwise_distances(outputs, works, kind="l2")
    nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
    votes = np.stack([(owner_of[nearest] == i).mean(axis=1) for i in range(len(owner_works))], axis=1)
    return votes.mean(axis=0)


def prompt_payouts(utilities: np.ndarray, prompt_of_output: np.ndarray, n_prompts: int) -> dict[str, np.ndarray]:
    """Shapley values, royalty shares and leave-one-out shares for every prompt.

    utilities: [2**n, n_outputs] (e.g. log-likelihood in bits); prompt_of_output: [n_outputs] prompt index.
    Returns arrays [n_prompts, n]: 'shapley', 'shares', 'loo', 'loo_shares'."""
    out = {k: [] for k in ("shapley", "shares", "loo", "loo_shares")}
    for p in range(n_prompts):
        table = utilities[:, prompt_of_output == p]
        phi, shares = shapley_royalty_shares(table)
        loo, loo_sh = leave_one_out_shares(table)
        for key, value in zip(out, (phi, shares, loo, loo_sh)):
            out[key].append(value)
    return {k: np.array(v) for k, v in out.items()}


def prompted_owner_metrics(share_matrix: np.ndarray, prompted_owner=None) -> dict[str, float]:
    """How often the owner a prompt names gets the largest share, and its mean share.

    share_matrix [n_prompts, n_owners]; prompted_owner: owner index (or list of indices whose shares
    are summed, e.g. shell companies) per prompt; default prompt p names owner p. A prompt whose
    shares are all 0 counts as a miss."""
    n_prompts = share_matrix.shape[0]
    prompted_owner = range(n_prompts) if prompted_owner is None else prompted_owner
    top, mean = [], []
    for p, owners in enumerate(prompted_owner):
        owners = [owners] if np.isscalar(owners) else list(owners)
        named = share_matrix[p, owners].sum()
        others = np.delete(share_matrix[p], owners)
        top.append(bool(named > 0 and (others.size == 0 or named > others.max())))
        mean.append(named)
    return {"prompted_owner_top_share_rate": float(np.mean(top)), "mean_prompted_share": float(np.mean(mean))}
