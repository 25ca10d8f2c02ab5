"""A finite sum of quadratics with a common minimizer: f_i(w) = ½(w − w★)ᵀH_i(w − w★), H_i ⪰ 0 given.

Every f_i is 0 = min f_i at w★ (interpolation, THEORY.md §1), ∇²f_i = H_i exactly at every w, and USAM on it is
exactly the linearized recursion of Theorem A: e_{t+1} = (I − η(H_ξ + ρH_ξ²)) e_t with e_t = w_t − w★ (§5). The
instance on which the stability operator's predictions are compared with the optimizer itself.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..validation import check_finite_array
from .base import Problem


class QuadraticSum(Problem):
    """Params: a 1-D array ``w`` of shape (p,); data: the stacked H_i (n, p, p); `init` draws w★ + N(0, I/p).

    Example (H_1 = diag(1, 0), H_2 = diag(0, 4), w★ = 0: at w = (1, 1), f = ½(½ + 2) = 1.25):
      >>> import jax.numpy as jnp, numpy as np
      >>> prob = QuadraticSum(np.stack([np.diag([1.0, 0.0]), np.diag([0.0, 4.0])]))
      >>> prob.n, prob.p, float(prob.loss(jnp.ones(2))), prob.init(None).tolist()
      (2, 2, 1.25, [0.0, 0.0])
    """

    name = "quadratic_sum"

    def __init__(self, hessians, w_star=None):
        Hi = np.asarray(hessians, dtype=np.float64)
        if Hi.ndim != 3 or Hi.shape[1] != Hi.shape[2]:
            raise ValueError(f"hessians must have shape (n, p, p), got {Hi.shape}")
        check_finite_array("hessians", Hi)
        if np.abs(Hi - np.swapaxes(Hi, 1, 2)).max() > 1e-12 * max(np.abs(Hi).max(), 1e-300):
            raise ValueError("hessians must be symmetric")
        if np.linalg.eigvalsh(Hi).min() < -1e-12 * np.abs(Hi).max():
            raise ValueError("hessians must be positive semidefinite (w_star must minimize every f_i)")
        self.data = Hi
        self.w_star = np.zeros(Hi.shape[1]) if w_star is None else np.asarray(w_star, dtype=np.float64)
        if self.w_star.shape != (Hi.shape[1],):
            raise ValueError(f"w_star must have shape ({Hi.shape[1]},), got {self.w_star.shape}")
        self.seed = None

    @property
    def p(self) -> int:
        return self.data.shape[1]

    def init(self, key=None):
        if key is None:
            return jnp.asarray(self.w_star)
        return jnp.asarray(self.w_star) + jax.random.normal(key, (self.p,)) / np.sqrt(self.p)

    def per_example_loss(self, w, H):
        d = w - jnp.asarray(self.w_star, dtype=w.dtype)
        return 0.5 * d @ H @ d

    def describe(self) -> dict:
        return {"name": self.name, "n": self.n, "p": self.p, "num_params": self.p}
