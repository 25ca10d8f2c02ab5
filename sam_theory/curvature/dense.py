"""Dense Hessians over the raveled parameters (THEORY.md §4), the reference for every matrix-free result."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from ..compiler import jit_fast_compile
from ..memory import array_bytes, check_fits
from ..problems.base import Problem, as_jax
from ..validation import CURVATURE_HINT, check_finite_params, check_int
from .operators import hvp


def flat_fn(fn, params):
    """``fn`` as a function of the raveled parameter vector, and that vector.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory.curvature import flat_fn
      >>> params = {"a": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)}
      >>> f, flat = flat_fn(lambda q: jnp.sum(q["a"]) * q["b"], params)
      >>> flat.tolist(), float(f(flat))                         # (1 + 2)·3
      ([1.0, 2.0, 3.0], 9.0)
    """
    flat, unravel = ravel_pytree(params)
    return (lambda v: fn(unravel(v))), flat


def hessian(fn, params, chunk_size: int | None = None, *, memory_budget=None) -> jax.Array:
    """The (p, p) Hessian ∇²fn(params) over the raveled params, by forward-over-reverse autodiff.

    ``chunk_size=None`` builds all p columns at once (``jacfwd(grad)``). With ``chunk_size = c`` the gradient is
    linearized once (`hvp`) and the columns H e_j are built c at a time by a vmapped HVP inside ``lax.map``, so
    the working memory beyond the (p, p) result is O(c·p) plus one set of linearization residuals.
    The p² result is checked against ``memory_budget`` (bytes; None: `sam_theory.memory.default_budget`) before
    anything is built: `ValueError` with the estimate when it does not fit. Non-finite params raise a `ValueError`.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import hessian
      >>> d = jnp.array([1.0, 2.0, 3.0])
      >>> f = lambda x: 0.5 * jnp.sum(d * x**2)                 # ∇²f = diag(d) everywhere
      >>> with float64():
      ...     H = hessian(f, jnp.ones(3))
      >>> H.tolist()
      [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]
      >>> with float64():
      ...     bool(jnp.array_equal(hessian(f, jnp.ones(3), chunk_size=2), H))   # column by column, same H
      True
    """
    check_finite_params("params", params, CURVATURE_HINT)
    flat = ravel_pytree(params)[0]
    check_fits(f"hessian (p = {flat.shape[0]}: a dense p×p matrix)", array_bytes((flat.shape[0],) * 2, flat.dtype),
               memory_budget, "use the matrix-free hvp(fn, params) with lanczos / top_eigenvalues / trace")
    if chunk_size is None:
        return _dense_hessian(fn, params)
    chunk_size = check_int("chunk_size", chunk_size)
    return _chunked_columns(hvp(fn, params), chunk_size)


def _hessian_of(fn, params):
    """jacfwd(grad) over the raveled params."""
    f, flat = flat_fn(fn, params)
    return jax.jacfwd(jax.grad(f))(flat)


# ``fn`` static: a stable ``fn`` (a problem's bound ``loss``) compiles once per shape; a fresh lambda per call.
_dense_hessian = jit_fast_compile(_hessian_of, static_argnums=0)


@jit_fast_compile(static_argnames=("chunk_size",))
def _chunked_columns(op, chunk_size: int):
    p = op.size
    column = lambda j: op.matvec(jax.nn.one_hot(j, p, dtype=op.dtype))
    cols = lax.map(column, jnp.arange(p), batch_size=min(chunk_size, p))  # row j = H e_j
    return cols.T


def per_example_hessians(problem: Problem, params, *, memory_budget=None) -> jax.Array:
    """H_i = ∇²f_i(params) for every example, shape (n, p, p), vmapped over examples (THEORY.md §1, §4).

    The n·p² result is checked against ``memory_budget`` (bytes; None: `sam_theory.memory.default_budget`)
    before anything is built: `ValueError` with the estimate and the matrix-free alternative. Non-finite params
    raise a `ValueError`.

    Example:
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import per_example_hessians
      >>> from sam_theory.problems import LinearRegression
      >>> prob = LinearRegression(X=[[1.0, 0.0], [0.0, 2.0]], y=[0.0, 0.0])   # f_i = ½(a_iᵀw − y_i)²
      >>> with float64():
      ...     Hi = per_example_hessians(prob, np.zeros(2))
      >>> Hi.tolist()                                           # H_i = a_i a_iᵀ
      [[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 4.0]]]
    """
    check_finite_params("params", params, CURVATURE_HINT)
    flat = ravel_pytree(params)[0]
    check_fits(f"per_example_hessians (n = {problem.n}, p = {flat.shape[0]}: n·p² entries)",
               array_bytes((problem.n, flat.shape[0], flat.shape[0]), flat.dtype), memory_budget,
               "use per_example_hvp(problem, params) or BatchCurvature.from_problem(..., method='matrix_free')")
    return _per_example_hessians(problem.per_example_loss, params, as_jax(problem.data))


@jit_fast_compile(static_argnums=0)
def _per_example_hessians(loss, params, data):
    """vmap over examples of jacfwd(grad f_i); ``loss`` (a problem's bound ``per_example_loss``) is static and
    params/data are arguments, so repeated calls on one problem (e.g. along a run) share one compilation."""
    one = lambda example: _hessian_of(lambda p: loss(p, example), params)
    return jax.vmap(one)(data)
