"""The `Problem` interface: a finite sum f(x) = (1/n) Σ_i f_i(x) over a fixed data set (THEORY.md §1).

A problem holds its data as NumPy float64 arrays (a pytree whose leaves have a leading axis of size n) and
defines the per-example loss f_i as a pure function of ``(params, example)``. Everything else (the vector of
losses, batch means, gradients) is derived here, vmapped over examples. The data are cast to JAX's current
default float when used, so the same problem runs in float32 or, inside `sam_theory.precision.float64()`, in
float64.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..tree import num_elements

Params = Any
Example = Any


def as_jax(tree):
    """Cast a pytree of NumPy arrays to JAX arrays of the current default dtype (float stays float)."""
    def cast(x):
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.floating):
            return jnp.asarray(x, dtype=jnp.zeros(()).dtype)
        return jnp.asarray(x)
    return jax.tree.map(cast, tree)


def take(data, idx):
    """Rows ``idx`` of every leaf of a data pytree."""
    return jax.tree.map(lambda x: x[idx], data)


class Problem:
    """Base class of the synthetic problems.

    Subclasses set ``self.data`` (pytree, leading axis n), optionally ``self.test_data``, and implement
    `init` and `per_example_loss`. ``per_example_loss`` must be a pure function of its arguments: it may read
    static configuration from ``self`` but never data arrays, so that jit passes the data as arguments.
    """

    name: str = "problem"
    data: Any = None
    test_data: Any = None
    weight_decay: float = 0.0  # explicit penalty R(x) = (weight_decay/2)‖x‖², see `penalty`
    perturb_weight_decay: bool = False  # whether R enters the SAM perturbation (THEORY.md §2)

    # --- to implement -------------------------------------------------------------------------------
    def init(self, key) -> Params:
        raise NotImplementedError

    def per_example_loss(self, params: Params, example: Example):
        """f_i(params) for one example (no leading axis)."""
        raise NotImplementedError

    # --- derived ------------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(jax.tree.leaves(self.data)[0].shape[0])

    @property
    def num_params(self) -> int:
        """p, the number of scalar parameters (THEORY.md §1)."""
        return num_elements(jax.eval_shape(self.init, jax.random.key(0)))

    def batch_losses(self, params: Params, examples) -> jax.Array:
        """(f_i(params))_i over a pytree of examples with a leading axis."""
        return jax.vmap(self.per_example_loss, in_axes=(None, 0))(params, examples)

    def batch_loss(self, params: Params, examples) -> jax.Array:
        """f_ξ = mean of f_i over the examples given (THEORY.md §1)."""
        return jnp.mean(self.batch_losses(params, examples))

    def losses(self, params: Params) -> jax.Array:
        """The vector (f_1, …, f_n) at ``params``."""
        return self.batch_losses(params, as_jax(self.data))

    def loss(self, params: Params, idx=None) -> jax.Array:
        """f(params) = (1/n) Σ_i f_i, or the mean over the indices ``idx`` if given."""
        data = as_jax(self.data)
        if idx is not None:
            data = take(data, jnp.asarray(idx))
        return self.batch_loss(params, data)

    def grad(self, params: Params, idx=None):
        return jax.grad(self.loss)(params, idx)

    def penalty(self, params: Params) -> jax.Array:
        """R(x) = (weight_decay/2)‖x‖², the explicit weight-decay term (not part of f, THEORY.md §2)."""
        return 0.5 * self.weight_decay * sum(jnp.vdot(x, x) for x in jax.tree.leaves(params))

    def test_loss(self, params: Params) -> jax.Array:
        if self.test_data is None:
            raise ValueError(f"{self.name} has no test_data")
        return self.batch_loss(params, as_jax(self.test_data))

    def interpolates(self, params: Params, tol: float = 1e-10) -> bool:
        """True iff every per-example loss is ≤ tol (THEORY.md §1, interpolation)."""
        return bool(jnp.max(self.losses(params)) <= tol)

    def describe(self) -> dict:
        return {"name": self.name, "n": self.n, "num_params": self.num_params}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.describe().items() if k != "name")
        return f"{self.name}({fields})"


LossFn = Callable[[Params, Example], jax.Array]
