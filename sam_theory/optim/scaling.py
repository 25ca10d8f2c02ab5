"""Perturbation arithmetic that keeps its digits in every float dtype (THEORY.md §2).

Every perturbation of the family is a scaling of a direction d (SAM: d = g; ASAM: T²g; F-SAM: g − σm; LightSAM:
the AdaGrad/Adam-normalized g), computed with four rules:

1. **Accumulation dtype.** Norms, scales and adaptive accumulators are computed in
   ``acc = promote(params dtype, float32)``: float32 for float16/bfloat16 parameters (a float16 square overflows
   above 256 and underflows below 2.4e-4), the params' own dtype for float32 and float64.
2. **Norm without overflow or underflow.** ‖d‖ = 2^e·√Σ(d_j/2^e)² with 2^e the power of two of max_j |d_j|
   (LAPACK's nrm2 idea). Scaling by a power of two is exact, so wherever the plain √Σd_j² neither overflows nor
   underflows the two agree bit for bit.
3. **Guard δ.** A positive δ is applied in the accumulation dtype and raised to that dtype's smallest normal number
   (``finfo(acc).tiny``): δ_eff = max(δ, tiny), so it never rounds to zero (float16 would turn the default 1e-12 into
   0, and the step at an exact stationary point into 0/0 = NaN). δ = 0 stays 0: the unguarded normalization
   g/‖g‖ of THEORY.md §2 (and of optax), NaN at g = 0 by design.
4. **One scaling.** ε = ρ·(d/(‖d‖ + δ_eff)), formed in the accumulation dtype and rounded once to the params'
   dtype. No g + (s − 1)·g: when s = ρ/‖g‖ ≪ 1 that form cancels (float16, ρ = 1e-3: ε = 0). |d_j|/(‖d‖ + δ) ≤ 1,
   so nothing overflows for any ρ or δ, and d = 0 gives ε = 0 exactly.

Resulting error (``tests/test_optim_precision.py`` derives the tolerance): the relative error of ε against an exact
(float64) evaluation on the same inputs is at most one rounding of the params' dtype plus O(log p) roundings of the
accumulation dtype, plus the dtype's subnormal spacing where ε itself is subnormal.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def acc_dtype(dtype):
    """Rule 1: the dtype norms and scales are computed in (at least float32)."""
    return jnp.promote_types(dtype, jnp.float32)


def tree_acc_dtype(tree):
    """The accumulation dtype of a pytree's float leaves."""
    return acc_dtype(jnp.result_type(*jax.tree.leaves(tree)))


def guard(eps, dtype):
    """Rule 3: δ_eff = max(δ, finfo(dtype).tiny) for δ > 0, and 0 for δ = 0 (tracers allowed)."""
    tiny = float(jnp.finfo(dtype).tiny)
    if isinstance(eps, (int, float, np.floating, np.integer)):
        return 0.0 if eps == 0 else max(float(eps), tiny)
    eps = jnp.asarray(eps)
    eps = eps.astype(jnp.promote_types(eps.dtype, dtype))  # compare before rounding: 1e-12 is 0 in float16
    return jnp.where(eps > 0, jnp.maximum(eps, tiny), eps).astype(dtype)


def _power_of_two_scale(m):
    """2^e with m = f·2^e, f ∈ [0.5, 1) (1 for m = 0): dividing by it is exact."""
    _, e = jnp.frexp(m)
    return jnp.ldexp(jnp.ones_like(m), e)


def tree_norm(tree, dtype=None):
    """Rule 2: the Euclidean norm over all leaves, in the accumulation dtype, without overflow or underflow."""
    dtype = tree_acc_dtype(tree) if dtype is None else dtype
    leaves = [jnp.asarray(x).astype(dtype) for x in jax.tree.leaves(tree)]
    m = jnp.max(jnp.stack([jnp.max(jnp.abs(x)) if x.size else jnp.zeros((), dtype) for x in leaves]))
    scale = _power_of_two_scale(m)
    return scale * jnp.sqrt(sum(jnp.sum(jnp.square(x / scale)) for x in leaves))


def rows_norm(x, dtype=None):
    """Rule 2 row-wise: ‖x_i‖ over every axis but the first, for a pytree of (n, …) leaves (per-example norms)."""
    dtype = tree_acc_dtype(x) if dtype is None else dtype
    leaves = [jnp.asarray(v).astype(dtype).reshape(v.shape[0], -1) for v in jax.tree.leaves(x)]
    m = jnp.max(jnp.stack([jnp.max(jnp.abs(v), axis=1) for v in leaves]), axis=0)
    scale = _power_of_two_scale(m)
    return scale * jnp.sqrt(sum(jnp.sum(jnp.square(v / scale[:, None]), axis=1) for v in leaves))


def scale_to(tree, s, like=None):
    """s·x for every leaf, computed in the accumulation dtype and rounded once to the dtype of ``like`` (default
    ``tree``): USAM's ρg, and the last step of every perturbation."""
    like = tree if like is None else like
    return jax.tree.map(lambda x, ref: (s * x.astype(acc_dtype(ref.dtype))).astype(ref.dtype), tree, like)


def normalized(d, rho, eps, like=None):
    """Rule 4: ε = ρ·d/(‖d‖ + δ_eff), one scaling, rounded once to the dtype of ``like`` (default ``d``)."""
    like = d if like is None else like
    dtype = tree_acc_dtype(like)
    d = jax.tree.map(lambda x: x.astype(dtype), d)
    denom = tree_norm(d, dtype) + guard(eps, dtype)
    return jax.tree.map(lambda x, ref: (rho * (x / denom)).astype(ref.dtype), d, like)
