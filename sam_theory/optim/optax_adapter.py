"""`as_optax`: the SAM family as an ``optax.GradientTransformationExtraArgs`` for any JAX training loop.

    tx = as_optax("sam", lr=0.1, rho=0.05)
    state = tx.init(params)
    grads = jax.grad(loss)(params, batch)
    updates, state = tx.update(grads, state, params, grad_fn=lambda p: jax.grad(loss)(p, batch))
    params = optax.apply_updates(params, updates)

``update(updates, state, params, *, grad_fn)``: ``updates`` is g = ∇f_ξ(x) at ``params`` (the ascent gradient),
``grad_fn(p) -> ∇f_ξ(p)`` evaluates the gradient on the same batch at the perturbed point x + ε. The update is
exactly the one of the matching `Optimizer` (same generic step, `core.perturb_then_descend`): x ← x + u.

Weight decay: ``weight_decay`` and ``perturb_weight_decay`` add the penalty R(x) = (wd/2)‖x‖² exactly as a
`Problem` does through `Batch` (the user's loss must then not include it): g + ∇R(x) enters the perturbation iff
``perturb_weight_decay``; the descent gradient is ∇f_ξ(x + ε) + ∇R(x + ε) if perturbed, else + ∇R(x).
"""
from __future__ import annotations

from typing import Callable

import optax

from ..tree import tree_add_scaled
from ..validation import check_choice, check_nonnegative
from .lightsam import lightsam
from .sam import sam, usam
from .variants import asam, fsam

OPTAX_METHODS = {"sam": sam, "usam": usam, "asam": asam, "fsam": fsam, "lightsam": lightsam}


class _GradientOracle:
    """The part of `Batch` the generic step uses, backed by a given gradient and a gradient function."""

    examples = None  # the ascent data are the given gradient's: only source="batch" without micro-batches

    def __init__(self, g, grad_fn: Callable, weight_decay, perturb_weight_decay: bool):
        self.g, self.grad_fn = g, grad_fn
        self.weight_decay, self.perturb_penalty = weight_decay, perturb_weight_decay

    def ascent_grad(self, params, examples=None):
        return tree_add_scaled(self.g, params, self.weight_decay) if self.perturb_penalty else self.g

    def descent_grad(self, perturbed, params, examples=None):
        at = perturbed if self.perturb_penalty else params
        return tree_add_scaled(self.grad_fn(perturbed), at, self.weight_decay)


def as_optax(method: str, lr, rho, *, weight_decay=0.0, perturb_weight_decay: bool = False,
             **kwargs) -> optax.GradientTransformationExtraArgs:
    """SAM, USAM, ASAM, F-SAM or LightSAM as an optax transformation whose update needs ``grad_fn``.

    Args:
      method: "sam", "usam", "asam", "fsam" or "lightsam".
      lr, rho: η > 0 and ρ ≥ 0.
      weight_decay, perturb_weight_decay: the explicit penalty R (module docstring); 0 = none.
      **kwargs: the method's other arguments (``kappa``, ``sigma``, ``lmbda``, ``variant``, ``eps``, ``base``,
        ``base_hparams``, …), as for the constructors in `sam_theory.optim`.
    Returns:
      ``GradientTransformationExtraArgs`` with ``init(params)`` and
      ``update(updates, state, params, *, grad_fn) -> (updates, state)``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> f = lambda x: 0.5 * jnp.sum(x ** 2)
      >>> tx = as_optax("sam", 0.1, 0.5)
      >>> x = jnp.array([2.0])
      >>> updates, state = tx.update(jax.grad(f)(x), tx.init(x), x, grad_fn=jax.grad(f))
      >>> round(float(optax.apply_updates(x, updates)[0]), 6)      # the same step as sam(0.1, 0.5).step
      1.75
    """
    check_choice("method", method, tuple(OPTAX_METHODS))
    check_nonnegative("weight_decay", weight_decay)
    opt = OPTAX_METHODS[method](lr, rho, **kwargs)

    def init_fn(params):
        return opt.init(params)

    def update_fn(updates, state, params=None, *, grad_fn: Callable | None = None, **extra):
        if params is None or grad_fn is None:
            raise ValueError("as_optax update needs params and grad_fn=(params -> gradient on the same batch)")
        oracle = _GradientOracle(updates, grad_fn, weight_decay, bool(perturb_weight_decay))
        return opt.update(params, state, oracle, None)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


__all__ = ["as_optax", "OPTAX_METHODS"]
