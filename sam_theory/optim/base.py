"""The one init/step interface shared by every optimizer of the SAM family (THEORY.md §2).

An `Optimizer` is a pytree: its hyperparameters (``lr``, ``rho``, …) are leaves, so an optimizer can be built
inside `jax.vmap` (a sweep over hyperparameters is a vmap over optimizers) or passed through `jax.jit`. Its
functions and static options are metadata.

``opt.step(params, state, batch, key)`` receives a `Batch`: the step's examples ξ and the batch-mean loss
f_ξ(x) = (1/b) Σ_{i∈ξ} f_i(x). Ascent and descent use the same batch (THEORY.md §2).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Batch:
    """The data one step sees.

    Attributes:
      examples: pytree of the batch's examples (leading axis b).
      loss_fn: ``loss_fn(params, examples) -> mean loss`` (static).
      full: the whole training set, for methods that perturb with the full gradient (else None).
      extra: an independent batch ξ′ of the same size, for methods that need one (else None).

    Example:
      >>> import jax.numpy as jnp
      >>> batch = Batch(jnp.array([1.0, 3.0]), lambda x, ex: 0.5 * jnp.mean((x - ex) ** 2))
      >>> float(batch.objective(jnp.array(0.0))), float(batch.grad(jnp.array(0.0)))
      (2.5, -2.0)
    """

    examples: Any
    loss_fn: Callable = dataclasses.field(metadata=dict(static=True))
    full: Any = None
    extra: Any = None
    penalty_fn: Callable | None = dataclasses.field(default=None, metadata=dict(static=True))
    perturb_penalty: bool = dataclasses.field(default=False, metadata=dict(static=True))

    def objective(self, params, examples=None):
        """f_ξ(params) + R(params): the batch loss plus the explicit penalty R (e.g. weight decay), if any."""
        examples = self.examples if examples is None else examples
        value = self.loss_fn(params, examples)
        return value if self.penalty_fn is None else value + self.penalty_fn(params)

    def grad(self, params, examples=None):
        """∇(f_ξ + R)(params), or over ``examples`` if given (R = 0 when there is no penalty)."""
        return jax.grad(self.objective)(params, examples)

    def value_and_grad(self, params, examples=None):
        return jax.value_and_grad(self.objective)(params, examples)

    def ascent_grad(self, params, examples=None):
        """The gradient that builds the SAM perturbation: ∇(f_ξ + R) if ``perturb_penalty`` else ∇f_ξ.

        THEORY.md §2: official SAM JAX code perturbs with weight decay inside the loss (perturb_penalty=True);
        the official SAM-overparam code adds weight decay after, unperturbed (perturb_penalty=False).
        """
        if self.penalty_fn is None or self.perturb_penalty:
            return self.grad(params, examples)
        return jax.grad(self.loss_fn)(params, self.examples if examples is None else examples)

    def descent_grad(self, perturbed, params, examples=None):
        """The descent gradient: ∇(f_ξ + R)(x + ε) if ``perturb_penalty``, else ∇f_ξ(x + ε) + ∇R(x)."""
        if self.penalty_fn is None or self.perturb_penalty:
            return self.grad(perturbed, examples)
        g = jax.grad(self.loss_fn)(perturbed, self.examples if examples is None else examples)
        return jax.tree.map(jnp.add, g, jax.grad(self.penalty_fn)(params))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Optimizer:
    """A SAM-family optimizer: ``init(params) -> state`` and ``step(params, state, batch, key) -> (params, state)``.

    Attributes:
      hparams: dict of numeric hyperparameters (pytree leaves; may be tracers inside vmap).
      name: method name (static).
      init_fn: ``init_fn(opt, params) -> state`` (static).
      step_fn: ``step_fn(opt, params, state, batch, key) -> (params, state)`` (static).
      options: hashable tuple of ``(key, value)`` static options (static).
      needs: which extra data the trainer must supply: subset of ``("full", "extra")`` (static).
      update_fn: ``update_fn(opt, params, state, batch, key) -> (updates, state)`` with x ← x + updates (static;
        what `as_optax` exposes), or None.

    Example:
      >>> from sam_theory.optim import sam
      >>> opt = sam(0.1, 0.05)
      >>> opt.name, float(opt.lr), float(opt.rho)
      ('sam', 0.1, 0.05)
    """

    hparams: dict
    name: str = dataclasses.field(metadata=dict(static=True))
    init_fn: Callable = dataclasses.field(metadata=dict(static=True))
    step_fn: Callable = dataclasses.field(metadata=dict(static=True))
    options: tuple = dataclasses.field(default=(), metadata=dict(static=True))
    needs: tuple = dataclasses.field(default=(), metadata=dict(static=True))
    update_fn: Callable | None = dataclasses.field(default=None, metadata=dict(static=True))

    def init(self, params):
        return self.init_fn(self, params)

    def step(self, params, state, batch: Batch, key=None):
        return self.step_fn(self, params, state, batch, key)

    def update(self, params, state, batch: Batch, key=None):
        """The optax-style update u with ``step`` = (x + u, state) (methods built by `core.perturb_then_descend`)."""
        if self.update_fn is None:
            raise ValueError(f"optimizer {self.name!r} defines only step(), not update()")
        return self.update_fn(self, params, state, batch, key)

    def option(self, name: str, default=None):
        return dict(self.options).get(name, default)

    def __getattr__(self, item):
        hp = self.__dict__.get("hparams", {})
        if item in hp:
            return hp[item]
        raise AttributeError(item)

    def describe(self) -> dict:
        def scalar(v):
            try:
                return float(v)
            except (TypeError, jax.errors.ConcretizationTypeError):
                return "traced"
        return {"method": self.name, **{k: scalar(v) for k, v in self.hparams.items()}, **dict(self.options)}


def no_state(opt, params):
    return ()
