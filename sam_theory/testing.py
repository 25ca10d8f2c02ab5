"""Instance generators for checks, tests and benchmarks: random per-example Hessians and constructed minima.

These are not models of anything; they are the fixed, seeded instances on which identities are checked.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .problems import diagonal_linear_net


def random_psd_hessians(n: int, p: int, seed: int, *, noise: float = 1.0, base: bool = False) -> np.ndarray:
    """n non-commuting PSD matrices H_i = (C +) noise·G_iG_iᵀ/p, G_i Gaussian (p, p); C has eigenvalues in
    [0.3, 1] in a random basis when ``base`` (then every H_i is positive definite)."""
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, p, p))
    Hi = noise * G @ np.swapaxes(G, 1, 2) / p
    if base:
        Q = np.linalg.qr(rng.standard_normal((p, p)))[0]
        Hi = Hi + Q @ np.diag(np.linspace(0.3, 1.0, p)) @ Q.T
    return 0.5 * (Hi + np.swapaxes(Hi, 1, 2))


def commuting_hessians(n: int, p: int, seed: int) -> np.ndarray:
    """n diagonal (hence commuting) positive definite H_i with entries in [0.2, 1.8]."""
    rng = np.random.default_rng(seed)
    return np.stack([np.diag(rng.uniform(0.2, 1.8, p)) for _ in range(n)])


def interpolating_diagonal_net(seed: int, n: int = 5, d: int = 8):
    """A diagonal linear network (β = u⊙v) at an interpolating minimum by construction: u_j ∈ [1, 1.5] random,
    v = θ★/u, so β = θ★ and y = Xθ★ is fit exactly (every f_i = 0, THEORY.md §1)."""
    prob = diagonal_linear_net(n=n, d=d, k=2, seed=seed, n_test=0)
    u = 1.0 + 0.5 * np.random.default_rng(seed + 1).random(d)
    return prob, {"u": jnp.asarray(u), "v": jnp.asarray(prob.theta_star / u)}


def low_rank_psd_hessians(n: int, p: int, rank: int, seed: int, *, scale: float = 1.0) -> np.ndarray:
    """n non-commuting PSD matrices H_i = scale·G_iG_iᵀ of rank ``rank``, G_i Gaussian (p, rank)/√p (THEORY.md
    §4.1 verifies the partition formula on rank-2 H_i)."""
    G = np.random.default_rng(seed).standard_normal((n, p, rank)) / np.sqrt(p)
    Hi = scale * G @ np.swapaxes(G, 1, 2)
    return 0.5 * (Hi + np.swapaxes(Hi, 1, 2))
