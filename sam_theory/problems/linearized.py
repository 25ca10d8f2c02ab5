"""The linearization of a model at its initialization (THEORY.md §10.5, NTK / lazy training).

For a problem with model output ŷ(θ; x) (`Problem.prediction`) and a loss of the output (`output_loss`), the
linearized model at θ₀ is

  ŷ_lin(θ; x) = ŷ(θ₀; x) + J_θ₀(x)·(θ − θ₀),   f_i^lin(θ) = ℓ(ŷ_lin(θ; x_i), y_i),

computed with `jax.linearize` at θ₀ (one JVP per example). θ₀ is the base problem's initialization of the same
PRNG key, so a linearized run and a network run with the same seed start from the same function. The parameters
are ``{"anchor": θ₀, "delta": θ − θ₀}``: the loss reads the anchor through `jax.lax.stop_gradient`, so its gradient
is exactly zero and no optimizer in the SAM family moves it (ε_anchor = 0 too); ``delta`` starts at 0.
"""
from __future__ import annotations

import jax

from .base import Problem


class Linearized(Problem):
    """The first-order Taylor model of ``base`` at its initialization (module docstring).

    Example (δ = 0 at init: the linearized loss is the base loss at θ₀; only δ trains, so p is the base's):
      >>> import jax, numpy as np
      >>> from sam_theory.problems import two_layer_net
      >>> base = two_layer_net(n=6, d=3, width=4, seed=0)
      >>> lin = Linearized(base)
      >>> x0 = lin.init(jax.random.key(0))
      >>> sorted(x0), lin.num_params == base.num_params
      (['anchor', 'delta'], True)
      >>> bool(np.isclose(float(lin.loss(x0)), float(base.loss(base.init(jax.random.key(0)))), rtol=1e-6))
      True
    """

    name = "linearized"

    def __init__(self, base: Problem):
        if not hasattr(base, "output_loss"):
            raise ValueError(f"base={base.name!r} has no output_loss(prediction, example); cannot linearize it")
        if base.weight_decay:
            raise ValueError("base has weight_decay; the linearized model would decay its anchor θ₀")
        self.base = base
        self.data, self.test_data = base.data, base.test_data
        self.is_classification = base.is_classification

    def init(self, key):
        anchor = self.base.init(key)
        return {"anchor": anchor, "delta": jax.tree.map(lambda x: 0.0 * x, anchor)}

    def prediction(self, params, example):
        """ŷ(θ₀; x) + J_θ₀(x)·δ by `jax.linearize` at θ₀ = stop_gradient(anchor)."""
        anchor = jax.lax.stop_gradient(params["anchor"])
        y0, jvp = jax.linearize(lambda p: self.base.prediction(p, example), anchor)
        return y0 + jvp(params["delta"])

    def per_example_loss(self, params, example):
        return self.base.output_loss(self.prediction(params, example), example)

    def test_accuracy(self, params):
        import jax.numpy as jnp
        X, y = (jnp.asarray(a) for a in self.test_data)
        preds = jax.vmap(lambda x: self.prediction(params, (x.astype(jnp.result_type(float)), None)))(X)
        if preds.ndim == 1:  # binary logit, labels ±1
            return jnp.mean((jnp.where(preds >= 0, 1.0, -1.0) == y).astype(jnp.result_type(float)))
        return jnp.mean((jnp.argmax(preds, axis=-1) == y).astype(jnp.result_type(float)))

    @property
    def num_params(self) -> int:
        """p of the base model (the anchor is frozen, only δ trains)."""
        return self.base.num_params

    @property
    def num_effective_params(self) -> int:
        return self.base.num_effective_params

    def describe(self) -> dict:
        return {"name": self.name, "n": self.n, "num_params": self.num_params, "base": self.base.describe()}
