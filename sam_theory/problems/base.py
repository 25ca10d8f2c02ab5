"""The `Problem` interface: a finite sum f(x) = (1/n) Σ_i f_i(x) over a fixed data set (THEORY.md §1).

A problem holds its data as NumPy float64 arrays (a pytree whose leaves have a leading axis of size n) and
defines the per-example loss f_i as a pure function of ``(params, example)``. Everything else (the vector of
losses, batch means, gradients) is derived here, vmapped over examples. The data are cast to JAX's current
default float when used, so the same problem runs in float32 or, inside `sam_theory.precision.float64()`, in
float64.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..compiler import jit_fast_compile
from ..tree import num_elements
from ..validation import check_choice, check_nonnegative
from .masks import PRUNERS, apply_mask, check_sparsity, make_mask

Params = Any
Example = Any


def stack_trees(trees):
    """Stack a list of pytrees of one structure along a new leading axis (e.g. the data of several seeds, for vmap).

    Example:
      >>> import numpy as np
      >>> stack_trees([{"a": np.zeros(2)}, {"a": np.ones(2)}])["a"].shape
      (2, 2)
    """
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def as_jax(tree):
    """Cast a pytree of NumPy arrays to JAX arrays of the current default dtype (float stays float).

    Example:
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> with float64():
      ...     print(as_jax({"a": np.zeros(2)})["a"].dtype)
      float64
    """
    def cast(x):
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.floating):
            return jnp.asarray(x, dtype=jnp.zeros(()).dtype)
        return jnp.asarray(x)
    return jax.tree.map(cast, tree)


def take(data, idx):
    """Rows ``idx`` of every leaf of a data pytree.

    Example:
      >>> import numpy as np
      >>> take({"x": np.arange(5)}, np.array([0, 2]))["x"]
      array([0, 2])
    """
    return jax.tree.map(lambda x: x[idx], data)


class Problem:
    """Base class of the synthetic problems.

    Subclasses set ``self.data`` (pytree, leading axis n), optionally ``self.test_data``, and implement
    `init` and `per_example_loss`. ``per_example_loss`` must be a pure function of its arguments: it may read
    static configuration from ``self`` but never data arrays, so that jit passes the data as arguments.

    Example:
      >>> import jax
      >>> from sam_theory.problems import linear_regression
      >>> prob = linear_regression(n=4, p=10, seed=0)       # a Problem
      >>> x = prob.init(jax.random.key(0))
      >>> prob.losses(x).shape, prob.grad(x).shape            # per-example losses f_i, full-batch gradient
      ((4,), (10,))
    """

    name: str = "problem"
    data: Any = None
    test_data: Any = None
    weight_decay: float = 0.0  # explicit penalty R(x) = (weight_decay/2)‖x‖², see `penalty`
    perturb_weight_decay: bool = False  # whether R enters the SAM perturbation (THEORY.md §2)
    mask: Any = None  # sparsity mask pytree (0/1), applied inside the loss; see `problems.masks`
    is_classification: bool = False

    # --- to implement: either `init` and `per_example_loss`, or `_init` and `_loss` (then masks work) -----
    def _init(self, key) -> Params:
        raise NotImplementedError

    def _loss(self, params: Params, example: Example):
        raise NotImplementedError

    def init(self, key) -> Params:
        """Initial parameters (masked entries are exactly 0).

        Random entries are drawn in float64 and rounded to the current default float (`problems.draw.normal`), so
        the same key gives the same initial point in float32 and under `float64()`, to float32 precision.
        One compiled program per problem (and precision mode) draws every leaf.
        """
        return _init_params(self, key)

    def per_example_loss(self, params: Params, example: Example):
        """f_i(params ⊙ mask) for one example (no leading axis)."""
        return self._loss(apply_mask(params, self.mask), example)

    def _configure(self, *, seed: int, weight_decay: float = 0.0, perturb_weight_decay: bool = False,
                   sparsity: float = 0.0, pruner: str = "random"):
        """Validate and set the shared options (weight decay, sparsity mask); call once data exist."""
        check_nonnegative("weight_decay", weight_decay)
        self.weight_decay, self.perturb_weight_decay = float(weight_decay), bool(perturb_weight_decay)
        self.sparsity, self.pruner = check_sparsity(sparsity), check_choice("pruner", pruner, PRUNERS)
        self.mask = None
        if self.sparsity > 0:
            from ..precision import float64
            with float64():
                ref = self._init(jax.random.key(seed))
                grad = jax.grad(lambda q: self.batch_loss(q, as_jax(self.data)))(ref) if pruner == "snip" else None
                self.mask = make_mask(ref, self.sparsity, pruner, seed=seed, grad=grad)

    # --- derived ------------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(jax.tree.leaves(self.data)[0].shape[0])

    @property
    def num_params(self) -> int:
        """p, the number of scalar parameters (THEORY.md §1), masked ones included."""
        return num_elements(jax.eval_shape(self.init, jax.random.key(0)))

    @property
    def num_effective_params(self) -> int:
        """The number of parameters the sparsity mask keeps (= num_params without a mask)."""
        if self.mask is None:
            return self.num_params
        return int(sum(np.sum(m) for m in jax.tree.leaves(self.mask)))

    # --- optional: the layer structure, for the structured m-SAM step (`sam_theory.optim.structured`) ---------
    def structured_losses(self, params: Params, examples, ops) -> jax.Array:
        """(f_i)_i over a batch, written with ``ops.dense(name, a)`` / ``ops.param(name)`` (see `LayerOps`).

        A problem built from dense layers implements this so that m-SAM can perturb each dense layer by a sum of
        rank-one terms instead of per-example weight copies (`sam_theory.optim.structured`, THEORY.md §2, §8).
        With ``ops = LayerOps(params, b)`` it must equal `batch_losses` (tested for every problem that has it).
        """
        raise NotImplementedError

    @property
    def supports_structured(self) -> bool:
        """Whether the structured m-SAM step applies: `structured_losses` is defined and there is no sparsity
        mask (a masked dense gradient (g aᵀ) ⊙ M is not rank one)."""
        return type(self).structured_losses is not Problem.structured_losses and self.mask is None

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

    def prediction(self, params: Params, example: Example) -> jax.Array:
        """The model output ŷ_i at ``params`` (mask applied) for a square-loss problem, f_i = ½(ŷ_i − y_i)²; the
        Gauss–Newton matrix is J_iᵀJ_i with J_i = ∇ŷ_i (THEORY.md §4)."""
        raise ValueError(f"{self.name} does not define a prediction for a square loss")

    def test_accuracy(self, params: Params) -> jax.Array:
        """Fraction of test examples classified correctly (classification problems only)."""
        raise ValueError(f"{self.name} is not a classification problem; test_accuracy is undefined")

    def describe(self) -> dict:
        return {"name": self.name, "n": self.n, "num_params": self.num_params,
                "num_effective_params": self.num_effective_params}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.describe().items() if k != "name")
        return f"{self.name}({fields})"


class LayerOps:
    """The plain layer operations of `Problem.structured_losses` on a batch of b examples.

    ``dense(name, a)``: the dense layer z = a Wᵀ with W = params[name] of shape (out, in) (z: (b, out)), or
    z = a w for a vector w = params[name] of shape (in,) (z: (b,)); a: (b, in), one row per example.
    ``name=None`` names the params themselves, when they are a single array (linear regression's w).
    ``param(name)``: params[name] broadcast to (b,) + its shape, one copy per example (for small parameters: biases,
    diagonal weights), so that a problem's batched code reads the same under the perturbed operations of
    `sam_theory.optim.structured`, where each example sees its own micro-batch's perturbation.
    """

    def __init__(self, params: Params, batch_size: int):
        self.params, self.batch_size = params, batch_size

    def dense(self, name, a) -> jax.Array:
        return dense_apply(named_param(self.params, name), a)

    def param(self, name) -> jax.Array:
        x = named_param(self.params, name)
        return jnp.broadcast_to(x, (self.batch_size,) + jnp.shape(x))


def named_param(params: Params, name):
    """params[name], or the params themselves for ``name=None`` (a single-array parameter)."""
    return params if name is None else params[name]


def dense_apply(W, a) -> jax.Array:
    """a Wᵀ for W of shape (out, in), or a w for a vector w of shape (in,); a has shape (b, in)."""
    return a @ W if W.ndim == 1 else a @ W.T


LossFn = Callable[[Params, Example], jax.Array]


@functools.partial(jit_fast_compile, static_argnums=0)
def _init_params(problem: Problem, key) -> Params:
    return apply_mask(problem._init(key), problem.mask)
