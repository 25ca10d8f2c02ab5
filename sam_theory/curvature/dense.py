"""Dense Hessians over the raveled parameters (THEORY.md §4), the reference for every matrix-free result."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..problems.base import Problem, as_jax


def flat_fn(fn, params):
    """``fn`` as a function of the raveled parameter vector, and that vector."""
    flat, unravel = ravel_pytree(params)
    return (lambda v: fn(unravel(v))), flat


def hessian(fn, params) -> jax.Array:
    """The (p, p) Hessian ∇²fn(params) over the raveled params, by forward-over-reverse autodiff."""
    f, flat = flat_fn(fn, params)
    return jax.jacfwd(jax.grad(f))(flat)


def per_example_hessians(problem: Problem, params) -> jax.Array:
    """H_i = ∇²f_i(params) for every example, shape (n, p, p), vmapped over examples (THEORY.md §1, §4)."""
    data = as_jax(problem.data)
    one = lambda example: hessian(lambda p: problem.per_example_loss(p, example), params)
    return jax.vmap(one)(data)
