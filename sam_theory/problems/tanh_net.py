"""A tiny nonlinear finite sum for the curvature tests, checks and benchmarks (non-commuting, indefinite per-example Hessians)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .base import Problem
from .draw import normal
from ..validation import check_int


class TanhNet(Problem):
    """f_i(W, v) = ½(vᵀ tanh(W x_i) − y_i)² with random data: p = h(d + 1) parameters, n examples.

    Away from a minimum the H_i are indefinite and do not commute, so S_3 can be indefinite (THEORY.md §4).

    Example:
      >>> import jax
      >>> prob = TanhNet(n=6, d=3, width=4, seed=0)            # p = width·(d + 1) = 16
      >>> sum(v.size for v in prob.init(jax.random.key(0)).values())
      16
    """

    name = "tanh_net"

    def __init__(self, n: int = 6, d: int = 3, width: int = 4, seed: int = 0):
        self.d, self.width = check_int("d", d), check_int("width", width)
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((check_int("n", n), d))
        self.data = (x, rng.standard_normal(n))

    def init(self, key):
        kw, kv = jax.random.split(key)
        return {"W": normal(kw, (self.width, self.d)) / jnp.sqrt(self.d),
                "v": normal(kv, (self.width,)) / jnp.sqrt(self.width)}

    def per_example_loss(self, params, example):
        x, y = example
        return 0.5 * (jnp.dot(params["v"], jnp.tanh(params["W"] @ x)) - y) ** 2

    def structured_losses(self, params, examples, ops):
        """Batched f_i: two dense layers, W then v (layer form for structured m-SAM)."""
        x, y = examples
        return 0.5 * (ops.dense("v", jnp.tanh(ops.dense("W", x))) - y) ** 2
