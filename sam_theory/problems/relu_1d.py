"""1-D ReLU regression, THEORY.md §3.5: 12 points x = (−5.5, −4.5, …, 5.5)/4 + 0.07,
y = 0.345 + (−2, 1.5, 0, 0, 2, 1, 0, −1, 0, 1, 2, −1); one hidden ReLU layer, 10 (under-) or 100 (over-
parameterized) units: f(x) = Σ_j v_j relu(w_j x + b_j) + c, init w_j, b_j ~ N(0, 1), v_j ~ N(0, 1/m), c = 0,
square loss ½(f − y)². The 12 points are the whole training set. The source has no test distribution; as a
convention of this project (not of the source) the test set is the piecewise-linear interpolant of the 12 points
on ``n_test`` equispaced x in [x_1, x_12], so `test_loss` measures how far the fit departs from the simplest
(minimum-kink) interpolant between the points.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..validation import check_int
from .base import Problem
from .draw import normal
from .masks import apply_mask

X_1D = (np.arange(-5.5, 6.0, 1.0)) / 4 + 0.07
Y_1D = 0.345 + np.array([-2, 1.5, 0, 0, 2, 1, 0, -1, 0, 1, 2, -1], dtype=np.float64)


class ReLU1D(Problem):
    """The 12-point 1-D ReLU regression of THEORY.md §3.5 (module docstring); built by `relu_1d`.

    Params {"w", "b", "v": (width,), "c": ()}: p = 3·width + 1.

    Example:
      >>> prob = ReLU1D(100)
      >>> prob.n, prob.num_params, prob.test_data[0].shape
      (12, 301, (200,))
    """

    name = "relu_1d"

    def __init__(self, width, *, n_test=200, seed=0, sparsity=0.0, pruner="random", weight_decay=0.0,
                 perturb_weight_decay=False):
        self.width, self.seed = check_int("width", width), seed
        self.n_test = check_int("n_test", n_test, minimum=0)
        self.data = (X_1D.copy(), Y_1D.copy())
        x_test = np.linspace(X_1D[0], X_1D[-1], self.n_test)
        self.test_data = (x_test, np.interp(x_test, X_1D, Y_1D)) if self.n_test else None
        self._configure(seed=seed, weight_decay=weight_decay, perturb_weight_decay=perturb_weight_decay,
                        sparsity=sparsity, pruner=pruner)

    def _init(self, key):
        kw, kb, kv = jax.random.split(key, 3)
        m = self.width
        return {"w": normal(kw, (m,)), "b": normal(kb, (m,)),
                "v": normal(kv, (m,)) / np.sqrt(m), "c": jnp.zeros(())}

    @staticmethod
    def _forward(params, x):
        return jnp.dot(params["v"], jax.nn.relu(params["w"] * x + params["b"])) + params["c"]

    def _loss(self, params, example):
        x, y = example
        return 0.5 * (self._forward(params, x) - y) ** 2

    def structured_losses(self, params, examples, ops):
        """Batched f_i: per-example copies of w, b, c (``ops.param``) and the dense output layer v."""
        x, y = examples
        hidden = jax.nn.relu(ops.param("w") * x[:, None] + ops.param("b"))
        return 0.5 * (ops.dense("v", hidden) + ops.param("c") - y) ** 2

    def prediction(self, params, example):
        """ŷ = Σ_j v_j relu(w_j x + b_j) + c at params ⊙ mask.

        Example (v = 0 leaves only the bias: ŷ = c everywhere):
          >>> import jax, jax.numpy as jnp
          >>> prob = ReLU1D(10)
          >>> x = {**prob.init(jax.random.key(0)), "v": jnp.zeros(10), "c": jnp.asarray(0.5)}
          >>> float(prob.prediction(x, (1.0, 0.0))), float(prob.prediction(x, (-1.0, 0.0)))
          (0.5, 0.5)
        """
        return self._forward(apply_mask(params, self.mask), example[0])

    def describe(self) -> dict:
        return {**super().describe(), "width": self.width, "seed": self.seed}


def relu_1d(width, *, n_test=200, seed=0, sparsity=0.0, pruner="random", weight_decay=0.0,
            perturb_weight_decay=False) -> ReLU1D:
    """The 12-point 1-D ReLU regression of THEORY.md §3.5 with ``width`` hidden units (10 under-, 100 over-).

    ``seed`` fixes the sparsity mask's reference init; ``n_test`` grid points of the piecewise-linear interpolant
    form the test set (a project convention, see `ReLU1D`).

    Example:
      >>> prob = relu_1d(10)                                   # 12 fixed points, 10 hidden units
      >>> prob.n
      12
    """
    return ReLU1D(width, n_test=n_test, seed=seed, sparsity=sparsity, pruner=pruner, weight_decay=weight_decay,
                  perturb_weight_decay=perturb_weight_decay)
